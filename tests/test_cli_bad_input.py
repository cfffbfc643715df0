"""Bad input to every CLI verb that takes a name, URL or pattern: one line, the README's exit code.

Each row is (arguments, exit code, words the message must contain). ``DS`` stands for a
dataset the fixture ingests; ``FILE`` for a small FASTQ file next to it. The exit codes
are the README's: 2 usage, 3 not found, 4 access denied, 5 configuration.
"""

from __future__ import annotations

import shutil

import pytest

from aifdata.cli import main

USAGE, NOT_FOUND, DENIED, CONFIG = 2, 3, 4, 5

CASES: list[tuple[list[str], int, str]] = [
    # no command, an unknown one, a missing argument, a bad option value: usage, in one line
    (["frobnicate"], USAGE, "No such command 'frobnicate'"),
    (["show"], USAGE, "Missing argument"),
    (["ingest", "FILE", "-d", "x", "--tag", "noeq"], USAGE, "tag 'noeq' is not KEY=VALUE"),
    (["search", "--tag", "=v"], USAGE, "is not KEY=VALUE"),
    # dataset names and NAME@VERSION references
    (["show", "nosuch"], NOT_FOUND, "no dataset 'nosuch'"),
    (["show", "DS@9"], NOT_FOUND, "has no version 9"),
    (["show", "DS@x"], USAGE, "expected NAME or NAME@VERSION"),
    (["show", "DS@0"], USAGE, "a version number from 1"),
    (["show", "@1"], USAGE, "expected NAME or NAME@VERSION"),
    (["show", ""], USAGE, "expected NAME or NAME@VERSION"),
    (["show", "a@1@2"], USAGE, "expected NAME or NAME@VERSION"),
    (["lineage", "nosuch"], NOT_FOUND, "no dataset 'nosuch'"),
    (["lineage", "DS@x"], USAGE, "expected NAME or NAME@VERSION"),
    (["stage", "nosuch", "--to", "pfs"], NOT_FOUND, "no dataset 'nosuch'"),
    (["stage", "DS@-1", "--to", "pfs"], USAGE, "expected NAME or NAME@VERSION"),
    (["stage", "DS", "--to", "nosuchtier"], NOT_FOUND, "no tier 'nosuchtier'"),
    (["ingest", "FILE", "-d", ""], USAGE, "dataset name '' is not valid"),
    (["ingest", "FILE", "-d", "a@1"], USAGE, "none of * ? [ ] @"),
    (["ingest", "FILE", "-d", "../x"], USAGE, "no empty, '.' or '..' segments"),
    (["ingest", "nosuch", "-d", "x"], NOT_FOUND, "nothing to ingest there"),
    # URLs and paths
    (["cat", ""], USAGE, "an empty URL"),
    (["cat", "s3://"], USAGE, "no bucket"),
    (["cat", "aif:/x/y"], USAGE, "did you mean aif://x/y?"),
    (["cat", "s3:bucket/key"], USAGE, "did you mean s3://bucket/key?"),
    (["cat", "http://host/x"], USAGE, "http:// is not supported here"),
    (["cat", "aif://nomount/x"], NOT_FOUND, "no mount holds 'aif://nomount/x'"),
    (["cat", "aif://x/../../etc/passwd"], DENIED, "'..'"),
    (["cat", "nosuch.txt"], NOT_FOUND, "nosuch.txt: no such file or directory"),
    (["ls", "s3://"], USAGE, "no bucket"),
    (["ls", "aif://nomount"], NOT_FOUND, "no mount holds"),
    (["cp", "nosuch", "x"], NOT_FOUND, "nosuch: no such file or directory"),
    (["cp", "FILE", "s3://"], USAGE, "no bucket"),
    (["cp", "FILE", ""], USAGE, "an empty URL"),
    (["partition", "nosuch.fastq"], NOT_FOUND, "nosuch.fastq: no such file or directory"),
    (["partition", "FILE", "--format", "nosuch"], 1, "no format 'nosuch'"),
    (["partition", "s3://"], USAGE, "no bucket"),
    (["export", ""], USAGE, "an empty URL"),
    (["export", "s3://"], USAGE, "no bucket"),
    (["convert", "nosuch.tif", "out.zarr"], NOT_FOUND, "nosuch.tif: no such file or directory"),
    (["convert", "FILE", ""], USAGE, "an empty URL"),
    (["lineage", "DS", "--openlineage", ""], USAGE, "an empty URL"),
    # grants: principals, privileges and patterns
    (["policy", "grant", "bob", "fly", "x"], USAGE, "privilege 'fly' is not one of read, write"),
    (["policy", "grant", "", "read", "x"], USAGE, "principal '' is not user:NAME"),
    (["policy", "grant", "bob", "read", "x@1"], USAGE, "pattern 'x@1' is not accepted"),
    (["policy", "grant", "bob", "read", "["], USAGE, "pattern '[' is not accepted"),
    (["policy", "grant", "bob", "read", "a/**"], USAGE, "a grant names a dataset name"),
    (["policy", "revoke", "bob", "read", "nosuch"], NOT_FOUND, "no grant of read on 'nosuch'"),
    # verify and the catalog's own commands
    (["verify", "nosuch"], NOT_FOUND, "no dataset 'nosuch'"),
    (["verify", "DS@x"], USAGE, "expected NAME or NAME@VERSION"),
    (["verify", "aif://local/nothing-here"], NOT_FOUND, "no recorded copy of a dataset there"),
    (["verify", "DS", "--tier", "nosuchtier"], CONFIG, "nosuchtier"),
    (["catalog", "backup", ""], USAGE, "an empty path"),
    (["catalog", "restore", "nosuch.db"], NOT_FOUND, "nosuch.db"),
    (["catalog", "restore", "FILE"], 1, "r.fastq"),
    # the MCP server: a catalog that is not there is refused before it serves
    (["mcp", "--catalog", "nosuch.db"], NOT_FOUND, "no catalog at nosuch.db"),
]


@pytest.fixture(scope="module")
def made_home(tmp_path_factory):
    """The home of ``home``, made once by the CLI (ingesting takes longer than copying)."""
    folder = tmp_path_factory.mktemp("made-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIFDATA_HOME", str(folder))
        mp.delenv("AIFDATA_CONFIG", raising=False)
        mp.chdir(folder)
        reads = folder / "r.fastq"
        reads.write_text("@r1\nACGT\n+\nIIII\n")
        assert main(["ingest", str(reads), "-d", "good/ds"]) == 0
    return folder


@pytest.fixture
def home(made_home, tmp_path, monkeypatch):
    """A catalog with one dataset (``DS``) and a FASTQ file (``FILE``); cwd is the home.
    A copy of ``made_home`` of its own, so that no test sees another's changes."""
    shutil.copytree(made_home, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("AIFDATA_HOME", str(tmp_path))
    monkeypatch.delenv("AIFDATA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _spelled(args: list[str], home) -> list[str]:
    names = {"FILE": str(home / "r.fastq"), "DS": "good/ds"}
    return [a.replace(a.split("@")[0], names[a.split("@")[0]], 1) if a.split("@")[0] in names
            else a for a in args]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "says"), CASES, ids=lambda v: repr(v)[:40])
def test_bad_input_is_one_line_with_its_exit_code(args, code, says, home, capsysbinary):
    capsysbinary.readouterr()
    got = main(_spelled(args, home))
    err = capsysbinary.readouterr().err.decode()
    assert (got, says in err) == (code, True), err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("aifdata: error: ") and "Traceback" not in err


def test_no_arguments_prints_the_help_as_a_usage_error(capsys):
    assert main([]) == USAGE
    assert "Commands:" in capsys.readouterr().err


def test_refused_input_writes_nothing(home, capsys):
    def state() -> tuple[list[str], str]:
        files = sorted(p.name for p in home.iterdir() if not p.name.startswith("catalog.db-"))
        assert main(["search", "--json"]) == 0
        return files, capsys.readouterr().out

    before = state()
    for args in (["ingest", "FILE", "-d", "../x"], ["export", ""], ["stage", "DS", "--to", "x"]):
        assert main(_spelled(args, home)) != 0
    assert state() == before

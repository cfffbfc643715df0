"""The ``aifdata`` command line: output, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aifdata.cli import main

from .conftest import two_tier_toml


@pytest.fixture
def config_file(tmp_path, pfs_dir, seaweedfs, bucket):
    path = tmp_path / "config.toml"
    path.write_text(two_tier_toml(seaweedfs, f"s3://{bucket}/cli", pfs_dir, "both"))
    return path


def run(capsysbinary, *args):
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_mounts_json(capsysbinary, config_file, bucket):
    code, out, _ = run(capsysbinary, "--config", str(config_file), "mounts", "--json")
    assert code == 0
    mounts = json.loads(out)["mounts"]
    assert mounts[0]["prefix"] == "both"
    assert mounts[0]["read_order"] == ["pfs", "s3"]
    assert {t["kind"] for t in mounts[0]["tiers"]} == {"s3", "pfs"}


def test_cp_ls_cat_where_round_trip(capsysbinary, config_file, tmp_path, pfs_dir):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.txt").write_bytes(b"beta")
    cfg = ["--config", str(config_file)]

    code, _, err = run(capsysbinary, *cfg, "cp", "-r", str(src), "aif://both/")
    assert code == 0, err
    code, out, _ = run(capsysbinary, *cfg, "ls", "aif://both/src", "--json")
    names = sorted(e["name"] for e in json.loads(out))
    assert names == ["both/src/a.txt", "both/src/sub"]
    code, out, _ = run(capsysbinary, *cfg, "ls", "-r", "aif://both/src")
    assert out.decode().split() == ["aif://both/src/a.txt", "aif://both/src/sub/b.txt"]
    code, out, _ = run(capsysbinary, *cfg, "cat", "aif://both/src/sub/b.txt")
    assert out == b"beta"
    code, out, _ = run(
        capsysbinary, *cfg, "cat", "aif://both/src/a.txt", "--start", "1", "--end", "3"
    )
    assert out == b"lp"

    (pfs_dir / "src").mkdir()
    (pfs_dir / "src" / "a.txt").write_bytes(b"ALPHA")  # same size: a valid replica
    code, out, _ = run(capsysbinary, *cfg, "where", "aif://both/src/a.txt", "--json")
    assert json.loads(out)["tier"] == "pfs"
    code, out, _ = run(capsysbinary, *cfg, "where", "aif://both/src/sub/b.txt")
    assert b"-> s3" in out and b"skipped pfs: no copy" in out

    dest = tmp_path / "back"
    code, _, err = run(capsysbinary, *cfg, "cp", "-r", "aif://both/src", str(dest))
    assert code == 0, err
    assert (dest / "a.txt").read_bytes() == b"ALPHA"  # read from the PFS replica
    assert (dest / "sub" / "b.txt").read_bytes() == b"beta"


def test_cp_onto_the_same_file_keeps_it(capsysbinary, config_file, tmp_path, pfs_dir):
    cfg = ["--config", str(config_file)]
    local = tmp_path / "same.txt"
    local.write_bytes(b"keep me")
    code, _, err = run(capsysbinary, "cp", str(local), str(local))
    assert code != 0 and "same file" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsysbinary, "cp", str(local), f"{tmp_path}/")  # into its own folder
    assert code != 0 and "same file" in err
    assert local.read_bytes() == b"keep me"
    replica = pfs_dir / "same.txt"
    replica.write_bytes(b"keep me")  # the PFS tier is read first: the source is this file
    code, _, err = run(capsysbinary, *cfg, "cp", "aif://both/same.txt", str(replica))
    assert replica.read_bytes() == b"keep me"  # written beside it, then renamed over it
    assert not [p for p in pfs_dir.iterdir() if p.name != "same.txt"]  # no temporary left


def test_cp_between_s3_url_and_local(capsysbinary, config_file, bucket, tmp_path):
    local = tmp_path / "one.bin"
    local.write_bytes(b"\x00\x01" * 1000)
    cfg = ["--config", str(config_file)]
    code, _, err = run(capsysbinary, *cfg, "cp", str(local), f"s3://{bucket}/cli/raw/one.bin")
    assert code == 0, err
    code, out, _ = run(capsysbinary, *cfg, "cat", "aif://both/raw/one.bin")
    assert out == local.read_bytes()
    for url in (f"s3://{bucket}/cli/raw/one.bin", "aif://both/raw/one.bin", str(local)):
        # s3fs's cat_file takes a version id before start and end: they are passed by name
        code, out, err = run(capsysbinary, *cfg, "cat", url, "--start", "3", "--end", "9")
        assert (code, out) == (0, local.read_bytes()[3:9]), (url, err)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["cat", "aif://nomount/x"], 3, "known mounts: both"),
        (["cat", "aif://both/missing.txt"], 3, "no copy on any tier"),
        (["ls", "aif://both/../../etc"], 4, "'..' segment"),
        (["cp", "aif://both/"], 2, ""),
        (["frobnicate"], 2, "No such command"),
    ],
)
def test_errors_are_one_line_with_exit_codes(capsysbinary, config_file, args, code, text):
    got, _, err = run(capsysbinary, "--config", str(config_file), *args)
    assert got == code
    assert text in err
    if code != 2:
        assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_config_exit_code(capsysbinary, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[mounts.x.s3]\nurl = 3\n")
    code, _, err = run(capsysbinary, "--config", str(bad), "mounts")
    assert code == 5
    assert str(bad) in err and "mounts.x.s3.url" in err


def test_debug_shows_the_traceback(tmp_path):
    env_home = tmp_path / "home"
    cmd = [sys.executable, "-m", "aifdata", "--debug", "cat", "aif://nomount/x"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={"AIFDATA_HOME": str(env_home)})
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "MountNotFound" in proc.stderr
    proc = subprocess.run(
        cmd[:3] + cmd[4:], capture_output=True, text=True, env={"AIFDATA_HOME": str(env_home)}
    )
    assert proc.returncode == 3
    assert (
        proc.stderr.strip()
        == "aifdata: error: no mount holds 'aif://nomount/x'; known mounts: local (no mount"
        f" table: $AIFDATA_CONFIG is not set and {env_home / 'config.toml'} does not exist;"
        " a worker needs $AIFDATA_CONFIG naming the mount table)"
    )


def test_version_and_bad_partition_counts_are_usage_errors(capsys):
    from aifdata import __version__
    from aifdata.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"aifdata {__version__}"
    assert main(["partition", "whatever.fastq", "--n", "0"]) == 2
    assert main(["partition", "whatever.fastq", "--target-bytes", "-5"]) == 2


@pytest.mark.parametrize(
    "args",
    [["search", "x", "--limit", "0"], ["policy", "audit", "--limit", "-3"],
     ["lineage", "x", "--depth", "-1"], ["ingest", ".", "-d", "x", "--workers", "0"],
     ["stage", "x", "--to", "pfs", "--workers", "-3"]],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)  # fmt: skip
def test_counts_below_their_minimum_are_usage_errors(args, tmp_path, monkeypatch):
    from aifdata.cli import main

    monkeypatch.setenv("AIFDATA_HOME", str(tmp_path))
    assert main(args) == 2
    assert not (tmp_path / "catalog.db").exists()  # refused before anything is opened


def test_an_unknown_format_is_named_even_for_an_empty_file(tmp_path, capsys):
    from aifdata.cli import main

    empty = tmp_path / "empty.fastq"
    empty.write_bytes(b"")
    assert main(["partition", str(empty), "--format", "nosuch"]) == 1
    assert "no format 'nosuch'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("aif:/demo/reads.fq", "did you mean aif://demo/reads.fq?"),
        ("s3:bucket/key", "did you mean s3://bucket/key?"),
        ("http://host/x", "http:// is not supported here: use aif://, s3:// or a path"),
    ],
)
def test_a_mistyped_url_is_named_not_taken_for_a_path(url, says, capsys):
    from aifdata.cli import main

    assert main(["cat", url]) == 2  # a usage error
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert "ValueError" not in err and "--debug" not in err


def test_a_file_where_a_directory_is_needed_is_not_found(tmp_path, capsys):
    from aifdata.cli import main

    (tmp_path / "x.txt").write_bytes(b"x")
    assert main(["cat", str(tmp_path / "x.txt" / "below")]) == 3


def test_file_urls_are_local_paths(tmp_path, capsysbinary):
    from aifdata.cli import main

    (tmp_path / "x.txt").write_bytes(b"local bytes")
    assert main(["cat", f"file://{tmp_path / 'x.txt'}"]) == 0
    assert capsysbinary.readouterr().out == b"local bytes"


def test_cp_reports_what_it_copied(capsysbinary, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.txt").write_bytes(b"beta")
    code, _, err = run(capsysbinary, "cp", "-r", str(src), str(tmp_path / "dest"))
    assert code == 0 and err == "copied 2 file(s), 9 bytes\n"
    code, _, err = run(capsysbinary, "cp", "-q", str(src / "a.txt"), str(tmp_path / "x.txt"))
    assert code == 0 and err == ""
    assert (tmp_path / "x.txt").read_bytes() == b"alpha"
    code, _, err = run(capsysbinary, "cp", str(src), str(tmp_path / "nope"))
    assert code == 1 and "is a directory (use -r to copy it)" in err


def test_command_modules_use_only_the_public_api():
    """Each command module imports its shared helpers from ``_options`` (and the grant
    checks of storage URLs from ``_governed``, the Slurm job step from ``_slurm``) and the library
    through public names: no ``aifdata._x`` or ``aifdata.catalog._x``, no other command's
    privates (the demo and convert applications excepted, loaded when their command runs)."""
    import ast
    from pathlib import Path

    import aifdata.cli

    shared = {"_app", "_options", "_governed", "_slurm"}
    applications = {"_convert", "_demo"}
    for path in Path(aifdata.cli.__file__).parent.glob("_[a-z]*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ""
            if node.level == 1:  # a sibling in aifdata.cli
                names = [module] if module else [a.name for a in node.names]
                assert set(names) <= shared, f"{path.name} imports {names} from the CLI"
            elif node.level == 2:  # aifdata itself
                private = [p for p in module.split(".") if p.startswith("_")]
                assert not private or set(private) <= applications, f"{path.name}: {module}"
            else:
                assert not module.startswith("aifdata"), f"{path.name}: {module}"

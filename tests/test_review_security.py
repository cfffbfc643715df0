"""Holes a review of the merged grants found, each closed: reading a protected dataset through
a symlink in another dataset, re-pointing an outer dataset at a nested one, ``cp -r`` writing
below a checked destination, refusals naming a hidden dataset, and runs read or ended by key.

The world: one mount ``both`` over a PFS directory; boss made the catalog (admin); alice owns
``prot/ds`` at ``outside/prot`` (a local directory outside every mount) and granted nobody.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import aifdata
from aifdata import AccessDenied, Catalog, NotFound
from aifdata.cli import main

SECRET = b"secret\n"
NEUTRAL = "governed by a dataset user:bob may not see"


class World:
    def __init__(self, root: Path, config: Path, catalog: Catalog, capfd) -> None:
        self.root, self.config, self.catalog, self.capfd = root, str(config), catalog, capfd

    def run(self, *args: str) -> tuple[int, bytes, str]:
        self.capfd.readouterr()
        code = main(["--config", self.config, *args])
        out, err = self.capfd.readouterr()
        return code, out.encode(), err.strip()


@pytest.fixture
def world(isolated_home, tmp_path, who, capfd):
    pfs = tmp_path / "pfs"
    pfs.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[mounts.both.pfs]\npath = "{pfs}"\n')
    who("boss")
    catalog = Catalog(isolated_home / "catalog.db", config=aifdata.load_config(config))
    assert catalog.admins() == ["user:boss"]
    prot = tmp_path / "outside" / "prot"
    prot.mkdir(parents=True)
    (prot / "s.txt").write_bytes(SECRET)
    who("alice")
    catalog.ingest(str(prot), "prot/ds")
    return World(tmp_path, config, catalog, capfd)


def test_a_symlink_in_ones_own_dataset_does_not_reach_a_protected_one(world, who):
    """Repro A: bob's own (empty) dataset holds a link to a file of alice's."""
    w = world
    evil = w.root / "x"
    evil.mkdir()
    who("bob")
    assert w.run("ingest", str(evil), "--dataset", "a/evil")[0] == 0
    (evil / "link").symlink_to(w.root / "outside" / "prot" / "s.txt")
    code, out, err = w.run("cat", str(evil / "link"))
    assert code == 4 and SECRET not in out, err
    assert NEUTRAL in err and "prot/ds" not in err
    code, out, _ = w.run("ls", str(evil))
    assert code == 0 and b"link" not in out  # listed only where every dataset allows it
    assert w.catalog.datasets_at(str(evil / "link")) == ["a/evil", "prot/ds"]
    who("alice")
    assert w.catalog.datasets_at(str(evil / "link")) == ["a/evil", "prot/ds"]
    code, out, _ = w.run("cat", str(evil / "link"))
    assert code == 4  # alice may not read bob's a/evil either: every dataset holding it counts
    who("boss")
    assert w.run("cat", str(evil / "link"))[:2] == (0, SECRET)


def test_an_outer_dataset_cannot_be_repointed_at_a_nested_protected_one(world, who):
    """Repro B: bob may write alice's outer a/x, not her nested prot/q."""
    w = world
    outer = w.root / "o2"
    (outer / "q").mkdir(parents=True)
    (outer / "q" / "s.txt").write_bytes(SECRET)
    (outer / "open.txt").write_bytes(b"open\n")
    who("alice")
    w.catalog.ingest(str(outer), "a/x")
    w.catalog.ingest(str(outer / "q"), "prot/q")
    w.catalog.grant("bob", "write", "a/x")
    who("bob")
    code, _, err = w.run("ingest", str(outer / "q"), "--dataset", "a/x")
    assert code == 4 and NEUTRAL in err and "prot/q" not in err, err
    with pytest.raises(AccessDenied, match=NEUTRAL):
        w.catalog.ingest(str(outer / "q" / "s.txt"), "a/x")
    assert w.catalog.versions("a/x") == [1]
    assert SECRET not in w.run("cat", str(outer / "q" / "s.txt"))[1]
    (outer / "more.txt").write_bytes(b"more\n")  # a new version where it was: still his to make
    assert w.run("ingest", str(outer), "--dataset", "a/x")[0] == 0
    assert w.catalog.versions("a/x") == [1, 2]


@pytest.mark.parametrize("inside", ["mount", "outside"])
def test_a_recursive_copy_is_checked_for_every_file_before_any_is_written(world, who, inside):
    """``cp -r src/outside ROOT`` used to check ROOT and ROOT/outside only, then write
    ROOT/outside/prot/s.txt into alice's dataset."""
    w = world
    root = w.root / "pfs" if inside == "mount" else w.root
    if inside == "mount":  # alice's dataset inside the mount's tier too
        (root / "outside" / "prot").mkdir(parents=True)
        (root / "outside" / "prot" / "s.txt").write_bytes(SECRET)
        who("alice")
        w.catalog.ingest(str(root / "outside" / "prot"), "prot/in-mount")
    src = w.root / "src" / "outside"
    (src / "prot").mkdir(parents=True)
    (src / "prot" / "s.txt").write_bytes(b"overwritten\n")
    (src / "a.txt").write_bytes(b"first in the plan\n")
    who("bob")
    code, _, err = w.run("cp", "-q", "-r", str(src), str(root))
    assert code == 4, err
    assert "may not write" in err and NEUTRAL in err
    assert "prot/ds" not in err and "prot/in-mount" not in err
    assert (root / "outside" / "prot" / "s.txt").read_bytes() == SECRET
    assert not (root / "outside" / "a.txt").exists()  # refused before the first write


def test_a_recursive_copy_into_aif_is_checked_for_every_file_first(world, who):
    w = world
    pfs = w.root / "pfs"
    (pfs / "outside" / "prot").mkdir(parents=True)
    (pfs / "outside" / "prot" / "s.txt").write_bytes(SECRET)
    who("alice")
    w.catalog.ingest(str(pfs / "outside" / "prot"), "prot/in-mount")
    src = w.root / "src" / "outside"
    (src / "prot").mkdir(parents=True)
    (src / "prot" / "s.txt").write_bytes(b"overwritten\n")
    (src / "a.txt").write_bytes(b"first in the plan\n")
    who("bob")
    code, _, err = w.run("cp", "-q", "-r", str(src), "aif://both")
    assert code == 4 and NEUTRAL in err, err
    assert (pfs / "outside" / "prot" / "s.txt").read_bytes() == SECRET
    assert not (pfs / "outside" / "a.txt").exists()  # refused before the first write


def test_the_library_copy_calls_check_for_every_planned_file_first(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "d" / "b.txt").write_bytes(b"b")
    seen = []

    def check(source: str, target: str) -> None:
        seen.append((source, target))
        if target.endswith("b.txt"):
            raise PermissionError(target)

    with pytest.raises(PermissionError):
        aifdata.copy(str(src), str(tmp_path / "dst"), recursive=True, check=check)
    assert [t.rsplit("/", 2)[-2:] for _, t in seen] == [["dst", "a.txt"], ["d", "b.txt"]]
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("verb", ["cat", "cp", "partition"])
def test_a_refusal_of_a_storage_path_does_not_name_a_hidden_dataset(world, who, verb):
    w = world
    path = str(w.root / "outside" / "prot" / "s.txt")
    args = {
        "cat": ["cat", path],
        "cp": ["cp", "-q", path, str(w.root / "copy.txt")],
        "partition": ["partition", path, "--n", "2"],
    }[verb]
    who("bob")
    code, out, err = w.run(*args)
    assert code == 4 and SECRET not in out
    assert NEUTRAL in err and "prot/ds" not in err and "alice" not in err, err
    assert len(err.splitlines()) == 1
    who("alice")
    w.catalog.grant("bob", "read", "prot/ds")
    who("bob")  # may read, not write: named
    code, _, err = w.run("cp", "-q", str(w.root / "copy.txt"), path)
    assert code == 4 and "dataset prot/ds (owner alice)" in err


@pytest.fixture
def alices_run(world, who):
    """A run of alice's that read prot/ds (which bob may not read)."""
    who("alice")
    key, _ = world.catalog.begin_run("r1", "job", ["prot/ds"], {}, None, None)
    return key


def test_a_run_record_by_key_is_redacted(world, who, alices_run):
    who("bob")
    record = world.catalog.run_record(alices_run)
    assert record.inputs == () and record.hidden_inputs == 1
    with pytest.raises(NotFound):
        world.catalog.run_record(alices_run + 100)
    who("alice")
    assert world.catalog.run_record(alices_run).inputs == (("prot/ds", 1),)


def test_only_the_runs_user_adds_to_or_ends_it(world, who, alices_run, tmp_path):
    w = world
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "f.txt").write_bytes(b"x")
    who("bob")
    w.catalog.ingest(str(mine), "bob/out")
    with pytest.raises(AccessDenied, match="run r1"):
        w.catalog.add_run_dataset(alices_run, "bob/out", "output")
    with pytest.raises(AccessDenied, match="run r1"):
        w.catalog.end_run(alices_run, "FAIL", "ended by bob")
    who("alice")
    record = w.catalog.end_run(alices_run, "COMPLETE")
    assert record.state == "COMPLETE" and record.outputs == ()
    who("boss")  # an admin may
    key, _ = w.catalog.begin_run("r2", "job", ["prot/ds"], {}, None, None)
    who("alice")
    with pytest.raises(AccessDenied):
        w.catalog.end_run(key, "COMPLETE")
    who("boss")
    assert w.catalog.end_run(key, "COMPLETE").state == "COMPLETE"


def test_lineage_runs_of_the_library_still_work(world, who, tmp_path):
    from aifdata import lineage

    out = tmp_path / "derived"
    out.mkdir()
    (out / "f.txt").write_bytes(b"d")
    who("alice")
    with lineage.run("job", ["prot/ds"], catalog=world.catalog) as run:
        run.output("prot/derived", source=str(out))
    assert world.catalog.lineage("prot/derived")["upstream"]


def test_a_refused_catalog_admin_action_says_what_would_allow_it(world, who):
    w = world
    who("bob")
    code, _, err = w.run("policy", "audit")
    assert code == 4 and len(err.splitlines()) == 1
    assert "policy grant" not in err  # no grant makes an admin: that command is refused
    assert "aifdata.Catalog().add_admin('user:bob')" in err
    who("boss")
    w.catalog.add_admin("user:bob")  # what the refusal says works
    who("bob")
    assert w.run("policy", "audit")[0] == 0


def test_the_same_bytes_ingested_from_a_new_place_govern_that_place(world, who):
    """A copy of a dataset re-ingested from elsewhere is a new version: the new place is
    recorded and governed, not left open because the bytes did not change."""
    import shutil

    w = world
    moved = w.root / "moved" / "prot"
    shutil.copytree(w.root / "outside" / "prot", moved)
    who("alice")
    ds = w.catalog.ingest(str(moved), "prot/ds")
    assert ds.version == 2 and ds.source == str(moved)
    assert w.catalog.ingest(str(moved), "prot/ds").version == 2  # the same place: no new one
    who("bob")
    code, out, err = w.run("cat", str(moved / "s.txt"))
    assert code == 4 and SECRET not in out, err

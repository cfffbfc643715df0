"""One owner per location: a dataset cannot take over, nest into or wrap another's location.

The scenario of issue 12, over the CLI in this process: alice ingests ``prot/`` (on the write
tier: S3 in the s3 lane, a PFS directory in the unit lane) and grants only herself; bob records
the same location under a name that sorts first (``a/steal``). He used to become its governing
dataset: he read it, alice was refused her own data, and bob could grant ``*``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aifdata import AccessDenied, BadName, Catalog
from aifdata.cli import main

DATA = b"@r1\nACGT\n+\nIIII\n"
NEUTRAL = "the location is governed by a dataset user:bob may not see"


class Scene:
    """The mount ``both`` as a config file, the catalog, and the CLI run in this process."""

    def __init__(self, tiers, config: Path, catalog: Catalog, capfd) -> None:
        self.tiers, self.config, self.catalog, self.capfd = tiers, str(config), catalog, capfd

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capfd.readouterr()
        code = main(["--config", self.config, *args])
        out, err = self.capfd.readouterr()
        return code, out, err.strip()

    def url(self, rel: str) -> str:
        """``rel`` on the write tier, as a user would type it (``s3://...`` or a path)."""
        return self.tiers.url(self.tiers.write, rel)

    def rows(self, table: str) -> int:
        return self.catalog.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def scene(tiers, isolated_home, tmp_path, who, capfd):
    """boss made the catalog (admin); alice ingested ``prot/`` as ``prot/ds`` over the CLI
    and granted only herself."""
    tiers.place("prot/reads.fq", write=DATA)
    tiers.place("prot/sub/more.fq", write=DATA)
    config = tmp_path / "config.toml"
    config.write_text(tiers.toml("both"))
    who("boss")
    catalog = Catalog(isolated_home / "catalog.db", config=tiers.fs.config)
    assert catalog.admins() == ["user:boss"]
    s = Scene(tiers, config, catalog, capfd)
    who("alice")
    code, _, err = s.run("ingest", s.url("prot"), "--dataset", "prot/ds")
    assert code == 0, err
    assert s.run("policy", "grant", "alice", "admin", "prot/ds")[0] == 0
    return s


def test_bob_cannot_take_over_alices_location(scene, who):
    s = scene
    versions = s.rows("versions")
    who("bob")
    code, _, err = s.run("ingest", s.url("prot"), "--dataset", "a/steal")
    assert code == 4, err
    assert err.splitlines() == [err] and NEUTRAL in err
    assert "prot/ds" not in err and "alice" not in err  # bob may not see alice's dataset
    assert s.rows("versions") == versions  # nothing recorded
    who("boss")
    assert s.catalog.datasets() == ["prot/ds"]
    who("bob")  # without a dataset of his own there, he can grant nothing on it
    assert s.run("policy", "grant", "*", "read", "a/steal")[0] == 4
    assert s.run("cat", "aif://both/prot/reads.fq")[0] == 4
    who("alice")  # and alice still reads her own data
    code, out, _ = s.run("cat", "aif://both/prot/reads.fq")
    assert (code, out) == (0, DATA.decode())


SPELLINGS = {
    "same": lambda s: s.url("prot"),
    "trailing-slash": lambda s: s.url("prot") + "/",
    "inside": lambda s: s.url("prot/sub"),
    "one-file": lambda s: s.url("prot/reads.fq"),
    "around": lambda s: s.url("").rstrip("/"),
    "aif": lambda s: "aif://both/prot",
    "other-tier": lambda s: str(s.tiers.pfs_dir / "prot"),  # the PFS tier of the same mount
}


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_no_spelling_nesting_or_wrapping_reaches_an_owned_location(scene, who, spelling):
    s = scene
    s.tiers.place("prot/reads.fq", pfs=DATA)  # a copy on the PFS tier too
    who("bob")
    code, _, err = s.run("ingest", SPELLINGS[spelling](s), "--dataset", "a/steal")
    assert code == 4, err
    assert "user:bob may not" in err and "prot/ds" not in err
    who("boss")
    assert s.catalog.datasets() == ["prot/ds"]


def test_a_symlink_to_an_owned_directory_is_the_same_location(scene, who, tmp_path):
    s = scene
    s.tiers.place("prot/reads.fq", pfs=DATA)
    link = tmp_path / "innocent"
    link.symlink_to(s.tiers.pfs_dir / "prot")
    who("bob")
    code, _, err = s.run("ingest", str(link), "--dataset", "a/steal")
    assert code == 4 and NEUTRAL in err, err


def test_a_reader_is_told_the_owner_and_a_writer_or_admin_may_share_the_location(scene, who):
    s = scene
    who("alice")
    assert s.run("policy", "grant", "carol", "read", "prot/ds")[0] == 0
    assert s.run("policy", "grant", "dave", "write", "prot/ds")[0] == 0
    who("carol")  # may read prot/ds: the refusal names it and its owner
    code, _, err = s.run("ingest", s.url("prot/sub"), "--dataset", "carol/sub")
    assert code == 4
    assert "governed by dataset prot/ds (owner alice), which user:carol may not write" in err
    who("alice")  # the owner may re-register her own location under another name
    assert s.run("ingest", s.url("prot"), "--dataset", "prot/again")[0] == 0
    who("dave")  # may write prot/ds and prot/again: may record a part of it under another name
    assert s.run("policy", "list")[1].count("dave") == 0  # administers nothing, sees no grant
    assert s.run("ingest", s.url("prot/sub"), "--dataset", "dave/sub")[0] == 4  # prot/again
    who("alice")
    assert s.run("policy", "grant", "dave", "write", "prot/again")[0] == 0
    who("dave")
    assert s.run("ingest", s.url("prot/sub"), "--dataset", "dave/sub")[0] == 0
    who("alice")  # a new version of her own dataset, with dave's inside it: still hers to make
    s.tiers.place("prot/new.fq", write=DATA)
    code, out, err = s.run("ingest", s.url("prot"), "--dataset", "prot/ds")
    assert code == 0 and "prot/ds@2" in out, err
    who("boss")  # a catalog admin may too
    assert s.run("ingest", s.url("prot"), "--dataset", "boss/mirror")[0] == 0
    who("alice")  # and then alice needs write on boss/mirror as well: one owner per location
    assert s.run("ingest", s.url("prot"), "--dataset", "prot/third")[0] == 4


def test_the_library_refuses_with_a_permission_error_before_reading(scene, who, monkeypatch):
    from aifdata.catalog import _catalog

    s = scene

    def no_scan(*args, **kwargs):
        raise AssertionError("the source was read before the refusal")

    monkeypatch.setattr(_catalog, "scan", no_scan)
    who("bob")
    with pytest.raises(PermissionError, match=NEUTRAL) as raised:
        s.catalog.ingest(s.url("prot"), "a/steal")
    assert isinstance(raised.value, AccessDenied)
    rows = s.catalog.conn.execute(
        "SELECT action, resource FROM audit WHERE principal = 'user:bob' AND allowed = 0"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("ingest", "prot/ds")]  # audited for the admins


def test_overlapping_locations_need_every_datasets_grant(scene, who):
    """A catalog admin may record a location twice; reads then need each dataset's grant,
    whatever the names' order (``a/...`` sorts before ``prot/...``)."""
    s = scene
    who("boss")
    assert s.run("ingest", s.url("prot"), "--dataset", "a/mirror")[0] == 0
    assert s.run("policy", "grant", "*", "read", "a/mirror")[0] == 0
    who("bob")  # a/mirror lets everyone read, prot/ds does not: refused
    assert s.run("cat", "aif://both/prot/reads.fq")[0] == 4
    assert s.run("ls", "aif://both")[1].count("prot") == 0
    who("alice")  # prot/ds is hers and a/mirror lets everyone read
    assert s.run("cat", "aif://both/prot/reads.fq")[0:2] == (0, DATA.decode())
    who("alice")
    assert s.run("policy", "grant", "bob", "read", "prot/ds")[0] == 0
    who("bob")  # now both allow it
    assert s.run("cat", "aif://both/prot/reads.fq")[0:2] == (0, DATA.decode())


BAD_PATTERNS = ["name@1", "[", "a/**", "", " ", " a/*", "gen*", "a/*/b", "*/x", "a/../b", "a/"]


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_grant_patterns_are_a_name_a_prefix_star_or_star(scene, who, pattern):
    s = scene
    who("boss")
    with pytest.raises(BadName, match=r"a grant names a dataset name .* PREFIX/\* .* \* "):
        s.catalog.grant("bob", "read", pattern)
    code, _, err = s.run("policy", "grant", "bob", "read", pattern)
    assert code == 2 and len(err.splitlines()) == 1  # a usage error
    assert f"pattern {pattern!r} is not accepted" in err and "PREFIX/*" in err
    assert [g.pattern for g in s.catalog.grants()] == ["prot/ds"]  # alice's own, no other


@pytest.mark.parametrize("pattern", ["prot/ds", "prot/*", "*"])
def test_the_accepted_patterns_are_granted(scene, who, pattern):
    s = scene
    who("boss")
    assert s.run("policy", "grant", "bob", "read", pattern)[0] == 0
    out = s.run("policy", "list", "--json")[1]
    listed = [(g["principal"], g["pattern"]) for g in json.loads(out)["grants"]]
    assert ("user:bob", pattern) in listed

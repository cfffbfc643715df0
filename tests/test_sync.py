"""``sync``: what changed on the write tier (S3) and the PFS becomes a new version, and
routing serves the new bytes at once.

Each test runs twice (the ``tiers`` fixture): over PFS + S3 on SeaweedFS (lane s3) and
over two PFS directories (lane unit), where the write tier is a directory ``archive``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

import aifdata
from aifdata import AccessDenied, Catalog, CatalogError, NotFound
from aifdata.cli import main
from aifdata.managed import SyncReport, sync

from .conftest import S3_ONLY, TwoTiers

A, B = b"A" * 1000, b"B" * 2000


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Synced:
    """Dataset ``ds`` at ``aif://both/ds`` (a.bin, b.bin) ingested and staged to the PFS."""

    catalog: Catalog
    fs: aifdata.AifFileSystem  # governed by the catalog: routes by its replicas
    tiers: TwoTiers

    @property
    def write(self) -> str:
        return self.tiers.write

    def on_write_tier(self, name: str, data: bytes | None) -> None:
        """Write (or, with None, delete) the write tier's copy of ``ds/name``."""
        conn = self.tiers.fs.connector(self.tiers.fs.config.mount("both"), self.write)
        if data is None:
            conn.rm_file(f"ds/{name}")
        else:
            conn.pipe_file(f"ds/{name}", data)

    def write_tier_bytes(self, name: str) -> bytes:
        conn = self.tiers.fs.connector(self.tiers.fs.config.mount("both"), self.write)
        return bytes(conn.cat_file(f"ds/{name}"))

    def on_pfs(self, name: str, data: bytes | None) -> None:
        target = self.tiers.pfs_dir / "ds" / name
        if data is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def rows(self) -> dict[str, tuple[int, str, list[str]]]:
        """The latest version's files: path -> (size, checksum, tiers of its replicas)."""
        ds = self.catalog.dataset("ds")
        return {f.path: (f.size, f.checksum, sorted(t for t, _ in f.replicas)) for f in ds.files}

    def served(self, name: str) -> tuple[str, bytes]:
        """(tier, bytes) that a read of ``aif://both/ds/NAME`` gets."""
        return self.fs.where(f"both/ds/{name}").tier, self.fs.cat(f"both/ds/{name}")

    def sync(self, prefer: str | None = None, dry_run: bool = False) -> SyncReport:
        return sync(self.catalog, "aif://both/ds", prefer, dry_run=dry_run)


@pytest.fixture
def ds(tiers: TwoTiers, catalog_url) -> Synced:
    catalog = Catalog(catalog_url, config=tiers.fs.config)
    fs = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    fs.pipe({"both/ds/a.bin": A, "both/ds/b.bin": B})
    catalog.ingest("aif://both/ds", "ds")
    catalog.stage("ds", to="pfs")
    synced = Synced(catalog, fs, tiers)
    assert synced.served("a.bin") == ("pfs", A)
    return synced


def changes(report: SyncReport) -> list[tuple[str, str, str]]:
    return [(c.path, c.change, c.side) for c in report.changes]


def both(write: str) -> list[str]:
    return sorted(["pfs", write])


def test_nothing_changed_is_up_to_date(ds):
    report = ds.sync()
    assert report.up_to_date and report.changes == () and report.versions == ()
    assert ds.catalog.versions("ds") == [1]


def test_a_metadata_only_change_on_the_pfs_is_no_change(ds):
    copy = ds.tiers.pfs_dir / "ds" / "a.bin"
    os.chmod(copy, 0o600)  # the ctime moves, the bytes do not
    os.utime(copy, (1, 1))
    report = ds.sync()
    assert report.up_to_date and report.versions == ()
    assert ds.catalog.versions("ds") == [1]
    assert ds.served("a.bin") == ("pfs", A)


def test_a_new_file_on_the_write_tier(ds):
    ds.on_write_tier("c.bin", b"new on the write tier")
    report = ds.sync()
    assert changes(report) == [("c.bin", "new", ds.write)]
    assert report.versions == ("ds@2",)
    rows = ds.rows()
    assert rows["c.bin"] == (21, sha(b"new on the write tier"), [ds.write])
    assert rows["a.bin"] == (1000, sha(A), both(ds.write))
    assert rows["b.bin"] == (2000, sha(B), both(ds.write))
    assert ds.served("c.bin") == (ds.write, b"new on the write tier")
    assert ds.served("a.bin") == ("pfs", A)


def test_a_new_file_on_the_pfs(ds):
    ds.on_pfs("sub/d.fastq", b"@r1\nACGT\n+\nIIII\n")
    report = ds.sync()
    assert changes(report) == [("sub/d.fastq", "new", "pfs")]
    rows = ds.rows()
    assert rows["sub/d.fastq"] == (16, sha(b"@r1\nACGT\n+\nIIII\n"), ["pfs"])
    assert ds.catalog.dataset("ds").files[-1].format == "fastq"  # sniffed as ingest does
    assert ds.served("sub/d.fastq") == ("pfs", b"@r1\nACGT\n+\nIIII\n")


def test_a_file_changed_on_the_write_tier(ds):
    new = b"a" * 1000  # the same size: the ETag (or the inode and ctime) tells
    ds.on_write_tier("a.bin", new)
    report = ds.sync()
    assert changes(report) == [("a.bin", "changed", ds.write)]
    assert report.versions == ("ds@2",) and report.exported == ()
    rows = ds.rows()
    assert rows["a.bin"] == (1000, sha(new), [ds.write])  # the stale PFS copy is not named
    assert rows["b.bin"] == (2000, sha(B), both(ds.write))
    assert ds.served("a.bin") == (ds.write, new)
    assert (ds.tiers.pfs_dir / "ds" / "a.bin").read_bytes() == A  # left, skipped by routing
    assert ds.catalog.versions("ds") == [1, 2]


def test_a_file_changed_on_the_pfs(ds):
    new = b"p" * 1000  # the same size: the inode and ctime tell
    ds.on_pfs("a.bin", new)
    report = ds.sync()
    assert changes(report) == [("a.bin", "changed", "pfs")]
    url = ds.tiers.url(ds.write, "ds/a.bin")
    assert report.exported == (url,)  # the write tier, the reference, holds the new bytes
    assert ds.write_tier_bytes("a.bin") == new
    assert ds.rows()["a.bin"] == (1000, sha(new), both(ds.write))
    assert ds.served("a.bin") == ("pfs", new)


def test_a_file_deleted_everywhere(ds):
    ds.on_write_tier("b.bin", None)
    ds.on_pfs("b.bin", None)
    report = ds.sync()
    assert changes(report) == [("b.bin", "deleted", "+".join(both(ds.write)))]
    assert report.versions == ("ds@2",)
    assert set(ds.rows()) == {"a.bin"}
    assert ds.catalog.dataset("ds", 1).files[1].path == "b.bin"  # the old version keeps it
    with pytest.raises(FileNotFoundError):
        ds.fs.where("both/ds/b.bin")


def test_a_file_gone_from_the_write_tier_only_is_kept(ds):
    ds.on_write_tier("b.bin", None)
    report = ds.sync()
    assert changes(report) == [("b.bin", "gone", ds.write)]
    assert report.up_to_date and report.versions == ()
    assert ds.served("b.bin") == ("pfs", B)


def test_a_conflict_records_nothing_without_prefer(ds):
    ds.on_write_tier("a.bin", b"from the write tier")
    ds.on_pfs("a.bin", b"from the pfs")
    report = ds.sync()
    assert [c.path for c in report.conflicts] == ["a.bin"]
    sides = {s.tier: (s.size, s.checksum) for s in report.conflicts[0].sides}
    assert sides == {
        ds.write: (19, sha(b"from the write tier")),
        "pfs": (12, sha(b"from the pfs")),
    }
    assert report.versions == () and not report.ok
    assert ds.catalog.versions("ds") == [1]
    assert ds.write_tier_bytes("a.bin") == b"from the write tier"  # nothing written either


@pytest.mark.parametrize("side", ["write", "pfs"])
def test_a_conflict_resolved_by_prefer(ds, side):
    ds.on_write_tier("a.bin", b"from the write tier")
    ds.on_pfs("a.bin", b"from the pfs")
    prefer = ds.write if side == "write" else "pfs"
    report = ds.sync(prefer=prefer)
    assert changes(report) == [("a.bin", "conflict", f"{prefer} (preferred)")]
    assert report.ok and report.versions == ("ds@2",)
    if side == "write":
        assert ds.rows()["a.bin"] == (19, sha(b"from the write tier"), [ds.write])
        assert ds.served("a.bin") == (ds.write, b"from the write tier")
        assert report.exported == ()
    else:
        assert ds.rows()["a.bin"] == (12, sha(b"from the pfs"), both(ds.write))
        assert ds.served("a.bin") == ("pfs", b"from the pfs")
        assert ds.write_tier_bytes("a.bin") == b"from the pfs"


@pytest.mark.parametrize("side", ["write", "pfs"])
def test_deleted_on_the_write_tier_and_changed_on_the_pfs_is_a_conflict(ds, side):
    ds.on_write_tier("a.bin", None)
    ds.on_pfs("a.bin", b"edited on the pfs")
    report = ds.sync()
    sides = {s.tier: s.size for s in report.conflicts[0].sides}
    assert sides == {ds.write: None, "pfs": 17}  # deleted there, edited here
    assert ds.catalog.versions("ds") == [1]
    prefer = ds.write if side == "write" else "pfs"
    report = ds.sync(prefer=prefer)
    assert report.versions == ("ds@2",)
    if side == "write":
        assert set(ds.rows()) == {"b.bin"}  # deleted
    else:
        assert ds.rows()["a.bin"] == (17, sha(b"edited on the pfs"), ["pfs"])
        assert ds.served("a.bin") == ("pfs", b"edited on the pfs")


@S3_ONLY
def test_prefer_s3_names_the_remote_side(ds):
    ds.on_write_tier("a.bin", b"from s3")
    ds.on_pfs("a.bin", b"from the pfs")
    report = ds.sync(prefer="s3")
    assert ds.rows()["a.bin"] == (7, sha(b"from s3"), ["s3"])
    assert ds.served("a.bin") == ("s3", b"from s3")
    assert report.versions == ("ds@2",)


def test_a_dry_run_records_and_writes_nothing(ds):
    ds.on_pfs("a.bin", b"p" * 1000)
    report = ds.sync(dry_run=True)
    assert changes(report) == [("a.bin", "changed", "pfs")]
    assert report.versions == () and report.exported == ()
    assert ds.catalog.versions("ds") == [1]
    assert ds.write_tier_bytes("a.bin") == A


def test_new_changed_and_deleted_at_once_make_one_version(ds):
    ds.on_write_tier("c.bin", b"c")
    ds.on_write_tier("a.bin", b"a2")
    ds.on_write_tier("b.bin", None)
    ds.on_pfs("b.bin", None)
    report = ds.sync()
    assert sorted(changes(report)) == [
        ("a.bin", "changed", ds.write),
        ("b.bin", "deleted", "+".join(both(ds.write))),
        ("c.bin", "new", ds.write),
    ]
    assert report.versions == ("ds@2",)
    assert ds.rows() == {"a.bin": (2, sha(b"a2"), [ds.write]), "c.bin": (1, sha(b"c"), [ds.write])}
    assert ds.sync().up_to_date  # and again: nothing more


def test_a_reader_may_not_sync(ds, who):
    ds.catalog.grant("user:bob", "read", "ds")
    who("bob")
    ds.on_write_tier("c.bin", b"c")
    with pytest.raises(AccessDenied, match="bob may not write"):
        ds.sync()
    assert ds.catalog.versions("ds") == [1]


def test_a_prefix_inside_a_dataset_compares_only_that_part(ds):
    ds.fs.pipe("both/ds/sub/x.bin", b"x")
    ds.catalog.ingest("aif://both/ds", "ds")  # version 2: a.bin, b.bin, sub/x.bin
    ds.catalog.stage("ds", to="pfs")
    ds.on_write_tier("sub/x.bin", b"x2")
    ds.on_write_tier("a.bin", b"a2")  # outside the prefix: not compared
    report = sync(ds.catalog, "aif://both/ds/sub")
    assert changes(report) == [("sub/x.bin", "changed", ds.write)]
    assert report.versions == ("ds@3",)
    rows = ds.rows()
    assert rows["sub/x.bin"] == (2, sha(b"x2"), [ds.write])
    assert rows["a.bin"] == (1000, sha(A), both(ds.write))  # its rows kept as they were
    assert ds.served("sub/x.bin") == (ds.write, b"x2")


def test_only_datasets_the_caller_may_write_are_recorded(ds, who):
    ds.fs.pipe("both/other/o.bin", b"o")
    ds.catalog.ingest("aif://both/other", "other")
    ds.catalog.grant("user:bob", "write", "ds")
    ds.catalog.grant("user:bob", "read", "other")
    ds.on_write_tier("c.bin", b"c")
    ds.fs.pipe("both/other/p.bin", b"p")
    who("bob")
    report = sync(ds.catalog, "aif://both")
    assert report.versions == ("ds@2",) and report.skipped == ("other",)
    assert changes(report) == [("c.bin", "new", ds.write)]
    assert ds.catalog.versions("other") == [1]


def test_all_or_nothing_when_a_version_is_recorded_meanwhile(ds, monkeypatch):
    from aifdata.managed import _sync

    ds.fs.pipe("both/other/o.bin", b"o")
    ds.catalog.ingest("aif://both/other", "other")
    ds.on_write_tier("c.bin", b"c")
    ds.fs.pipe("both/other/p.bin", b"p")
    real = _sync.record

    def late(catalog, plans):  # another writer records 'other' between compare and record
        catalog.ingest("aif://both/other", "other")
        return real(catalog, plans)

    monkeypatch.setattr(_sync, "record", late)
    with pytest.raises(CatalogError, match="was recorded while sync compared version 1"):
        sync(ds.catalog, "aif://both")
    assert ds.catalog.versions("ds") == [1]  # 'ds' was fine, and is not recorded either


def test_an_unknown_prefix_is_not_found(ds):
    with pytest.raises(NotFound, match="no mount holds"):
        sync(ds.catalog, "aif://nomount/x")
    with pytest.raises(NotFound, match="no dataset recorded there"):
        sync(ds.catalog, "aif://both/elsewhere")


# -- the command line ----------------------------------------------------------


@pytest.fixture
def cli(ds, tmp_path, capsysbinary):
    config = tmp_path / "config.toml"
    config.write_text(ds.tiers.toml("both"))
    base = ["--config", str(config)]

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*base, "sync", *args, "--catalog", str(ds.catalog.path)])
        out, err = capsysbinary.readouterr()
        return code, out.decode(), err.decode()

    return run


def test_cli_conflicts_exit_1_with_a_summary_and_the_table(ds, cli):
    ds.on_write_tier("a.bin", b"from the write tier")
    ds.on_pfs("a.bin", b"from the pfs")
    code, out, _ = cli("aif://both/ds")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("1 conflict under aif://both/ds: nothing was recorded")
    assert lines[1].split() == ["PATH", "CHANGE", "SIDE"]
    assert lines[2].split() == ["a.bin", "conflict", "+".join(both(ds.write))]
    assert any(sha(b"from the pfs") in line for line in lines)
    assert ds.catalog.versions("ds") == [1]
    code, out, _ = cli("aif://both/ds", "--prefer", "pfs", "--json")
    assert code == 0
    assert json.loads(out)["versions"] == ["ds@2"]


def test_cli_table_dry_run_and_up_to_date(ds, cli):
    ds.on_write_tier("c.bin", b"c")
    code, out, _ = cli("aif://both/ds", "--dry-run")
    assert code == 0 and "c.bin" in out and "nothing recorded (dry run)" in out
    code, out, _ = cli("aif://both/ds")
    assert code == 0 and out.splitlines()[-1] == "aif://both/ds: recorded ds@2"
    code, out, _ = cli("aif://both/ds")
    assert (code, out) == (0, "aif://both/ds: up to date\n")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["aif://nomount/x"], 3, "no mount holds 'aif://nomount/x'"),
        (["aif://both/elsewhere"], 3, "no dataset recorded there"),
        (["both/ds"], 2, "sync takes an aif:// prefix"),
        (["aif://both/ds", "--prefer", "tape"], 2, "expected s3, pfs or a tier name"),
    ],
)
def test_cli_bad_input_is_one_line(cli, args, code, words):
    got, out, err = cli(*args)
    assert got == code and out == ""
    assert err.count("\n") == 1 and err.startswith("aifdata: error:") and words in err


@pytest.mark.e2e
def test_the_command_in_a_process_names_an_unknown_prefix(ds, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(ds.tiers.toml("both"))
    proc = subprocess.run(
        [sys.executable, "-m", "aifdata", "--config", str(config), "sync", "aif://nomount/x",
         "--catalog", str(ds.catalog.path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 3
    assert proc.stderr == (
        f"aifdata: error: no mount holds 'aif://nomount/x'; known mounts: both"
        f" (mount table: {config})\n"
    )

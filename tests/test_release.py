"""``release``: copies on managed tiers are freed, least recently read first, only where the
write tier holds the same bytes; never the only copy, never a pinned dataset."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import aifdata
from aifdata import Catalog, CatalogError, ConfigError, UnknownDataset
from aifdata._filesystem import MountedFileSystem
from aifdata.cli import main
from aifdata.managed import Manager
from aifdata.managed._metrics import Metrics
from aifdata.managed._release import release
from aifdata.managed._space import make_room

from .conftest import S3_ONLY


def _layout(tiers, catalog_url, **rules):
    """The ``tiers`` layout with ``rules`` on its PFS tier; a catalog; a reading filesystem."""
    base = tiers.fs.config.mounts[0]
    pfs = aifdata.Tier.pfs(tiers.pfs_dir, **rules)
    mount = aifdata.Mount("both", (pfs, tiers.write_tier), ("pfs", tiers.write), tiers.write)
    assert base.prefix == mount.prefix
    config = aifdata.Config((mount,))
    catalog = Catalog(catalog_url, config=config)
    return config, catalog


def _ingest(tiers, catalog, name, n=3, size=200):
    for i in range(n):
        tiers.place(f"{name}/f{i}.bin", write=bytes([i + 1]) * size)
    catalog.ingest(f"aif://both/{name}", name)
    catalog.stage(name, to="pfs")


def _rows(catalog, tier="pfs"):
    return sorted(
        r[0] for r in catalog.conn.execute("SELECT url FROM replicas WHERE tier = ?", (tier,))
    )


def _on_pfs(tiers):
    return sorted(str(p.relative_to(tiers.pfs_dir)) for p in tiers.pfs_dir.rglob("*.bin"))


def _read_at(catalog, name, when):
    catalog.conn.execute(
        "UPDATE replicas SET last_access = ? WHERE tier = 'pfs' AND url LIKE ?",
        (when, f"%/{name}"),
    )


def test_release_frees_copies_the_write_tier_holds(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set")
    report = release(catalog, config)
    assert len(report.released) == 3 and report.ok
    assert report.bytes_released == 600
    assert _on_pfs(tiers) == [] and _rows(catalog) == []
    fs = MountedFileSystem(config, records=catalog.replica_records)
    assert fs.where("both/set/f0.bin").tier == tiers.write
    assert fs.cat("both/set/f0.bin") == b"\x01" * 200  # still served, from the write tier


@S3_ONLY
def test_release_never_removes_the_only_copy(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set")
    fs = MountedFileSystem(config)
    fs.connector(config.mounts[0], tiers.write).rm_file("set/f1.bin")  # the S3 object is gone
    report = release(catalog, config)
    (refused,) = report.refused
    assert refused.path == "aif://both/set/f1.bin" and refused.outcome == "refused"
    assert "is gone: this is the only copy" in refused.reason
    assert "s3://" in refused.reason
    assert (tiers.pfs_dir / "set" / "f1.bin").read_bytes() == b"\x02" * 200
    assert _on_pfs(tiers) == ["set/f1.bin"]
    assert _rows(catalog) == [str(tiers.pfs_dir / "set" / "f1.bin")]


def test_release_refuses_where_the_write_tier_copy_is_gone(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set")
    MountedFileSystem(config).connector(config.mounts[0], tiers.write).rm_file("set/f0.bin")
    report = release(catalog, config)
    assert [c.path for c in report.refused] == ["aif://both/set/f0.bin"]
    assert len(report.released) == 2 and not report.ok
    assert (tiers.pfs_dir / "set" / "f0.bin").exists()


@S3_ONLY
def test_release_refuses_where_the_s3_object_changed(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set", n=1)
    tiers.fs.pipe("both/set/f0.bin", b"\x09" * 200)  # same size, other bytes, new ETag
    (refused,) = release(catalog, config).refused
    assert "changed since the catalog recorded it" in refused.reason
    assert (tiers.pfs_dir / "set" / "f0.bin").read_bytes() == b"\x01" * 200


def test_a_copy_changed_on_the_pfs_is_not_released(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set", n=1)
    (tiers.pfs_dir / "set" / "f0.bin").write_bytes(b"new work, not on the write tier")
    (refused,) = release(catalog, config).refused
    assert "may hold changes the write tier lacks" in refused.reason
    assert (tiers.pfs_dir / "set" / "f0.bin").exists()


def test_dry_run_changes_nothing(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set")
    files, rows = _on_pfs(tiers), _rows(catalog)
    stats = [os.stat(tiers.pfs_dir / f) for f in files]
    report = release(catalog, config, dry_run=True)
    assert {c.outcome for c in report.copies} == {"would release"}
    assert report.bytes_released == 600 and report.dry_run
    assert (_on_pfs(tiers), _rows(catalog)) == (files, rows)
    assert [os.stat(tiers.pfs_dir / f) for f in files] == stats


def test_pinned_datasets_survive_to_low_water(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url, capacity=1000, low_water="50%")
    _ingest(tiers, catalog, "keep")  # 600 bytes
    _ingest(tiers, catalog, "lose")  # 600 bytes: 1200 in use, low water is 500
    _read_at(catalog, "keep/%", 1000.0)  # the pinned copies are the least recently read
    _read_at(catalog, "lose/%", 2000.0)
    assert catalog.pin("keep")
    report = release(catalog, config, to_low_water=True)
    assert report.pinned == 3
    assert {c.path.split("/")[3] for c in report.released} == {"lose"}
    assert _on_pfs(tiers) == ["keep/f0.bin", "keep/f1.bin", "keep/f2.bin"]
    assert catalog.unpin("keep")
    report = release(catalog, config, to_low_water=True)
    assert len(report.released) == 1  # 600 in use, 500 the goal: one copy (the oldest) goes
    assert _on_pfs(tiers) == ["keep/f1.bin", "keep/f2.bin"]


def test_to_low_water_releases_the_least_recently_read_first(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url, capacity=1000, low_water="50%")
    _ingest(tiers, catalog, "set", n=5)  # 1000 bytes in use
    for i, when in enumerate([500.0, 100.0, 400.0, None, 300.0]):
        catalog.conn.execute(
            "UPDATE replicas SET last_access = ? WHERE tier = 'pfs' AND url LIKE ?",
            (when, f"%/f{i}.bin"),
        )
    report = release(catalog, config, to_low_water=True)
    assert [c.path[-6:] for c in report.released] == ["f1.bin", "f4.bin", "f2.bin"]
    assert _on_pfs(tiers) == ["set/f0.bin", "set/f3.bin"]  # f3: never read, but just staged


def test_older_than_and_release_after(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url, release_after="1h")
    _ingest(tiers, catalog, "set")
    _read_at(catalog, "f0.bin", time.time() - 7200)
    report = release(catalog, config)  # the tier's rule: not read for an hour
    assert [c.path for c in report.released] == ["aif://both/set/f0.bin"]
    assert release(catalog, config, older_than=86400).copies == ()
    assert release(catalog, config, older_than="1d").copies == ()
    assert len(release(catalog, config, older_than=0).released) == 2  # any age


def test_dataset_and_prefix_narrow_what_is_released(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "a")
    _ingest(tiers, catalog, "b")
    assert len(release(catalog, config, dataset="a").released) == 3
    assert _on_pfs(tiers)[0].startswith("b/")
    report = release(catalog, config, target="aif://both/b/f1.bin")
    assert [c.path for c in report.released] == ["aif://both/b/f1.bin"]


def test_never_the_write_tier_and_never_an_unknown_one(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set", n=1)
    with pytest.raises(CatalogError, match="write tier"):
        release(catalog, config, tier=tiers.write)
    with pytest.raises(aifdata.NotFound, match="no tier 'nosuch'"):
        release(catalog, config, tier="nosuch")
    with pytest.raises(UnknownDataset, match="no dataset 'nosuch'"):
        release(catalog, config, dataset="nosuch")


def test_release_needs_write_on_the_dataset(catalog_url, tiers, tmp_path, who):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set", n=1)
    catalog.grant("user:bob", "read", "set")
    who("bob")
    with pytest.raises(aifdata.AccessDenied, match="may not write"):
        release(catalog, config, dataset="set")
    assert release(catalog, config).copies == ()  # copies of what bob may not write: untouched
    assert _on_pfs(tiers) == ["set/f0.bin"]


def test_make_room_says_when_a_file_cannot_fit(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url, capacity="1KiB")
    manager = Manager(catalog, config)
    router = MountedFileSystem(config)._router(config.mounts[0])
    why = make_room(manager, router, "pfs", 4 * 2**20)
    assert why == "capacity 1.0 KiB is smaller than the file (4.0 MiB)"
    assert make_room(manager, router, "pfs", 100) is None


def test_make_room_releases_past_high_water_down_to_low_water(catalog_url, tiers, tmp_path):
    rules = {"capacity": 1000, "high_water": "90%", "low_water": "50%"}
    config, catalog = _layout(tiers, catalog_url, **rules)
    _ingest(tiers, catalog, "set", n=4)  # 800 in use
    catalog.pin("set")
    manager = Manager(catalog, config)
    router = MountedFileSystem(config)._router(config.mounts[0])
    assert make_room(manager, router, "pfs", 50) is None  # 850: under high water
    assert "full" in (make_room(manager, router, "pfs", 300) or "")  # pinned: nothing goes
    catalog.unpin("set")
    assert make_room(manager, router, "pfs", 300) is None  # 1100 > 900: down to 500 - 300
    assert len(_on_pfs(tiers)) == 1


def test_a_release_rule_that_does_not_parse_names_its_key():
    with pytest.raises(ConfigError, match="release_after"):
        aifdata.parse_config('[mounts.m.pfs]\npath = "/tmp/x"\nrelease_after = "soon"\n')
    with pytest.raises(ConfigError, match="low_water"):
        aifdata.Tier.pfs("/tmp/x", low_water="lots")


def test_cli_release_prints_a_table_and_a_summary(catalog_url, tiers, tmp_path, capsys):
    _config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set", n=2)
    path = tmp_path / "config.toml"
    path.write_text(tiers.toml("both"))
    args = ["--config", str(path), "release", "--catalog", str(catalog.path)]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "aif://both/set/f0.bin  [pfs]  200 B" in out and "would release" in out
    assert "2 copies would be released (400 bytes), 0 refused, 0 kept by a pin" in out
    assert main([*args, "--older-than", "soon"]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err.startswith("aifdata: error: older_than: expected seconds or a string such as")
    assert main(["--config", str(path), "pin", "set", "--catalog", str(catalog.path)]) == 0
    assert main(["--config", str(path), "pins", "--catalog", str(catalog.path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("set  pinned by ")
    assert main([*args, "--json"]) == 0
    assert '"pinned": 2' in capsys.readouterr().out


@pytest.mark.e2e
def test_cli_release_of_an_unknown_dataset_exits_3_with_one_line(tmp_path):
    env = {**os.environ, "AIFDATA_HOME": str(tmp_path)}
    reads = tmp_path / "r.fastq"
    reads.write_text("@r1\nACGT\n+\nIIII\n")
    cli = [sys.executable, "-m", "aifdata"]
    subprocess.run([*cli, "ingest", str(reads), "-d", "good/ds"], env=env, check=True)
    for args in (["release", "--dataset", "nosuch"], ["pin", "nosuch"], ["unpin", "nosuch"]):
        proc = subprocess.run([*cli, *args], env=env, capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.startswith("aifdata: error: no dataset 'nosuch' in "), line


def test_releases_are_counted_per_tier(catalog_url, tiers, tmp_path):
    config, catalog = _layout(tiers, catalog_url)
    _ingest(tiers, catalog, "set", n=2)
    counted = []

    class Counting(Metrics):
        def count(self, router, tier, rel, name, n=1):
            counted.append((tier, rel, name, n))

    release(catalog, config, metrics=Counting(catalog, config))
    assert sorted(counted) == [
        ("pfs", "set/f0.bin", "bytes_released", 200),
        ("pfs", "set/f0.bin", "releases", 1),
        ("pfs", "set/f1.bin", "bytes_released", 200),
        ("pfs", "set/f1.bin", "releases", 1),
    ]


def test_make_room_with_a_read_only_catalog_releases_nothing(
    catalog_url, tiers, tmp_path, monkeypatch
):
    rules = {"capacity": 1000, "high_water": "90%", "low_water": "50%"}
    config, catalog = _layout(tiers, catalog_url, **rules)
    _ingest(tiers, catalog, "set", n=4)  # 800 in use
    monkeypatch.setattr(Catalog, "read_only", property(lambda self: True))
    manager = Manager(catalog, config)
    router = MountedFileSystem(config)._router(config.mounts[0])
    assert "full" in (make_room(manager, router, "pfs", 300) or "")
    assert len(_on_pfs(tiers)) == 4 and len(_rows(catalog)) == 4

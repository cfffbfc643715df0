"""Room on a managed tier while reads hydrate it, and release of what they left, end to end
over SeaweedFS with the node index (runs once the hydrating manager is in the tree)."""

from __future__ import annotations

import pytest

import aifdata
from aifdata import Catalog
from aifdata._filesystem import MountedFileSystem
from aifdata.managed import Manager, release

from .conftest import s3_tier

RULES = {"capacity": 1000, "high_water": "90%", "low_water": "50%"}


def _layout(tmp_path, seaweedfs, bucket, kind, **rules):
    """Mount ``both``: a ``kind`` tier ``fast`` read first, S3 the write tier, hydrate on
    read; five files of 300 bytes ingested; a filesystem whose reads hydrate."""
    local = tmp_path / "fast"
    fast = aifdata.Tier(kind, str(local), "fast", rules)
    mount = aifdata.Mount(
        "both", (fast, s3_tier(seaweedfs, bucket)), ("fast", "s3"), "s3", hydrate="on-read"
    )
    config = aifdata.Config((mount,))
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    plain = MountedFileSystem(config)
    for i in range(5):
        plain.pipe(f"both/set/f{i}.bin", bytes([i + 1]) * 300)
    catalog.ingest("aif://both/set", "set")
    manager = Manager(catalog, config)
    fs = MountedFileSystem(config, records=manager.records, manager=manager)
    return config, catalog, manager, fs, local


def _held(local):
    return sorted(p.name for p in local.rglob("*.bin"))


@pytest.mark.parametrize("kind", ["pfs", "cache"])
def test_reads_past_high_water_release_the_least_recently_read(tmp_path, seaweedfs, bucket, kind):
    config, catalog, manager, fs, local = _layout(tmp_path, seaweedfs, bucket, kind, **RULES)
    for i in range(5):  # the fourth finds 900 + 300 > 900: f0..f2 go (down to 300 + 300)
        assert fs.cat(f"both/set/f{i}.bin") == bytes([i + 1]) * 300
    assert _held(local) == ["f3.bin", "f4.bin"]
    assert fs.cat("both/set/f3.bin") == b"\x04" * 300  # read again: now the most recent
    assert fs.where("both/set/f3.bin").tier == "fast"
    manager.flush()
    if kind == "pfs":
        rows = catalog.conn.execute("SELECT COUNT(*) FROM replicas WHERE tier = 'fast'")
        assert rows.fetchone()[0] == 2
    report = release(catalog, config, to_low_water=True)  # 600 in use, 500 the goal
    assert [c.path for c in report.released] == ["aif://both/set/f4.bin"]
    assert _held(local) == ["f3.bin"]
    assert fs.cat("both/set/f4.bin") == b"\x05" * 300  # served again (and hydrated again)


@pytest.mark.parametrize("kind", ["pfs", "cache"])
def test_a_hydrated_copy_whose_s3_object_is_gone_is_kept(tmp_path, seaweedfs, bucket, kind):
    config, catalog, _manager, fs, local = _layout(tmp_path, seaweedfs, bucket, kind)
    fs.cat("both/set/f0.bin")
    assert _held(local) == ["f0.bin"]
    fs.connector(config.mounts[0], "s3").rm_file("set/f0.bin")
    report = release(catalog, config)
    (refused,) = report.refused
    assert "is gone: this is the only copy" in refused.reason
    assert _held(local) == ["f0.bin"]


def test_a_file_larger_than_the_capacity_is_read_from_s3(tmp_path, seaweedfs, bucket):
    _config, _catalog, _manager, fs, local = _layout(
        tmp_path, seaweedfs, bucket, "pfs", capacity=100
    )
    with pytest.warns(RuntimeWarning, match=r"'fast'.*capacity 100 B is smaller than the file"):
        assert fs.cat("both/set/f1.bin") == b"\x02" * 300
    assert _held(local) == []

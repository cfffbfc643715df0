"""Release and last access on a node-local cache tier, whose copies its node's index records
(a stand-in index here, with the interface of ``managed._cache_index.CacheIndex``)."""

from __future__ import annotations

import os
import shutil
from typing import NamedTuple

import pytest

import aifdata
from aifdata import Catalog
from aifdata._filesystem import MountedFileSystem
from aifdata._router import ReplicaRecord, Route
from aifdata.connectors import FileStat
from aifdata.managed import _access, _release_tier
from aifdata.managed._release import release


class Copy(NamedTuple):
    url: str
    size: int
    last_access: float


class Index:
    """A node index in memory: url -> (size, checksum, stat, source etag, last access)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, str | None, FileStat, str | None, float]] = {}
        self.touched: dict[str, float] = {}
        self.forgotten: list[str] = []

    def lru(self, limit=None):
        copies = [Copy(u, r[0], r[4]) for u, r in self.rows.items()]
        return sorted(copies, key=lambda c: (c.last_access, c.url))

    def records(self, urls):
        return {
            u: ReplicaRecord(r[0], r[1], r[2].mtime, None, r[2].inode, r[2].device, r[2].ctime_ns)
            for u, r in self.rows.items()
            if u in urls
        }

    def source_etags(self, urls):
        return {u: self.rows[u][3] for u in urls if u in self.rows}

    def touch(self, times):
        self.touched.update(times)

    def forget(self, urls):
        for url in urls:
            self.forgotten.append(url)
            self.rows.pop(url, None)

    def used_bytes(self):
        return sum(r[0] for r in self.rows.values())


@pytest.fixture
def cached(tiers, tmp_path, monkeypatch):
    """Mount ``both`` with a cache tier read first; a dataset of three files whose copies
    the cache holds (read at times 100, 300, 200)."""
    cache_dir = tmp_path / "cache"
    cache = aifdata.Tier("cache", str(cache_dir), "cache", {"capacity": 1000, "low_water": "50%"})
    mount = aifdata.Mount("both", (cache, tiers.write_tier), ("cache", tiers.write), tiers.write)
    config = aifdata.Config((mount,))
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    for i in range(3):
        tiers.place(f"set/f{i}.bin", write=bytes([i + 1]) * 300)
    catalog.ingest("aif://both/set", "set")
    fs = MountedFileSystem(config)
    write = fs.connector(mount, tiers.write)
    local = fs.connector(mount, "cache")
    index = Index()
    for i, when in enumerate((100.0, 300.0, 200.0)):
        rel = f"set/f{i}.bin"
        target = cache_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open(f"both/{rel}", "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        checksum = catalog.dataset("set").files[i].checksum
        stat = local.stats([rel])[rel]
        etag = write.stats([rel])[rel].etag
        index.rows[local.url(rel)] = (300, checksum, stat, etag, when)
    monkeypatch.setattr(_release_tier, "node_index", lambda root: index)
    return config, catalog, index, cache_dir, fs


def test_cache_copies_are_released_oldest_first_down_to_low_water(cached):
    config, catalog, index, cache_dir, _ = cached
    report = release(catalog, config, to_low_water=True)  # 900 in use, 500 the goal
    assert [c.path for c in report.released] == ["aif://both/set/f0.bin", "aif://both/set/f2.bin"]
    assert sorted(p.name for p in cache_dir.rglob("*.bin")) == ["f1.bin"]
    assert [os.path.basename(u) for u in index.forgotten] == ["f0.bin", "f2.bin"]
    rows = catalog.conn.execute("SELECT COUNT(*) FROM replicas WHERE tier = 'cache'")
    assert rows.fetchone()[0] == 0  # the catalog never held them


def test_a_cache_copy_of_a_gone_object_is_refused(cached, tiers):
    config, catalog, _index, cache_dir, fs = cached
    fs.connector(config.mounts[0], tiers.write).rm_file("set/f1.bin")
    report = release(catalog, config)
    assert [c.path for c in report.refused] == ["aif://both/set/f1.bin"]
    assert "only copy" in report.refused[0].reason
    assert (cache_dir / "set" / "f1.bin").exists()


def test_a_pinned_dataset_keeps_its_cache_copies(cached):
    config, catalog, _index, cache_dir, _ = cached
    catalog.pin("set")
    report = release(catalog, config, to_low_water=True)
    assert report.released == () and report.pinned == 3
    assert len(list(cache_dir.rglob("*.bin"))) == 3


def test_reads_of_cache_copies_go_to_the_node_index_not_the_catalog(cached):
    config, catalog, index, cache_dir, fs = cached
    log = _access.AccessLog(catalog, config, index=lambda root: index)
    router = fs._router(config.mounts[0])
    route = Route("both/set/f0.bin", "cache", str(cache_dir / "set/f0.bin"), "")
    statements: list[str] = []
    catalog.conn.set_trace_callback(statements.append)
    for _ in range(10):
        log.note(router, route)
    log.flush()
    assert list(index.touched) == [str(cache_dir / "set/f0.bin")]
    assert statements == []

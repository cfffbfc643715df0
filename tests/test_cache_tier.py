"""The node-local cache tier: its own index beside the copies, hidden from listings,
and a copy served only while it is verified against the write tier's version."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pytest

import aifdata
from aifdata import Catalog, Config, Mount, Tier
from aifdata.connectors import FileStat, connector_for
from aifdata.managed._cache_index import CacheIndex
from aifdata.testing import ConnectorTests


class TestCacheConnector(ConnectorTests):
    """The cache kind passes every connector's conformance suite, with an index present."""

    @pytest.fixture
    def tier(self, tmp_path: Path) -> Tier:
        root = tmp_path / "cache"
        CacheIndex(root).record(f"{root}/x", 1, None, FileStat(1), None)
        return Tier("cache", str(root), "cache")


def _stat(path: Path) -> FileStat:
    st = path.stat()
    return FileStat(st.st_size, st.st_mtime, None, st.st_ino, st.st_dev, st.st_ctime_ns)


def test_the_index_lives_inside_the_root_and_records_copies(tmp_path: Path) -> None:
    copy = tmp_path / "a.bin"
    copy.write_bytes(b"x" * 10)
    index = CacheIndex(tmp_path)
    index.record(str(copy), 10, "sha256:ab", _stat(copy), '"etag1"')
    assert (tmp_path / ".aifdata" / "index.db").exists()
    record = CacheIndex(tmp_path).records([str(copy), str(tmp_path / "other")])
    assert list(record) == [str(copy)]
    assert record[str(copy)].checksum == "sha256:ab"
    assert record[str(copy)].matches(_stat(copy))
    assert index.source_etags([str(copy)]) == {str(copy): '"etag1"'}


def test_lru_used_bytes_touch_and_forget(tmp_path: Path) -> None:
    index = CacheIndex(tmp_path)
    stat = FileStat(1)
    for name, size in (("a", 100), ("b", 200), ("c", 300)):
        index.record(f"{tmp_path}/{name}", size, "sha256:x", stat, None)
    index.touch({f"{tmp_path}/a": 3e9, f"{tmp_path}/b": 1.0, f"{tmp_path}/c": 2.0})
    assert [c.url.rsplit("/", 1)[1] for c in index.lru()] == ["b", "c", "a"]
    assert [c.size for c in index.lru(limit=1)] == [200]
    assert index.used_bytes() == 600
    index.forget([f"{tmp_path}/b"])
    assert index.used_bytes() == 400
    assert f"{tmp_path}/b" not in index.records([f"{tmp_path}/b"])


def test_a_bad_hash_forgets_the_copy(tmp_path: Path) -> None:
    index = CacheIndex(tmp_path)
    url = f"{tmp_path}/a"
    index.record(url, 1, "sha256:x", FileStat(1), None)
    report = index.records([url])[url].report
    assert report is not None
    report(FileStat(1), "hashed again to other bytes")
    assert index.records([url]) == {}


def test_listings_hide_the_index_and_leases(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    conn = connector_for(Tier("cache", str(root), "cache"))
    conn.pipe_file("d/f.bin", b"1")
    CacheIndex(root).record(conn.url("d/f.bin"), 1, None, FileStat(1), None)
    (root / "d" / ".f.bin.aif-lease").write_text("host 1 token")
    assert [i["name"] for i in conn.ls("")] == ["d"]
    assert [i["name"] for i in conn.ls("d")] == ["d/f.bin"]
    assert list(conn.find("")) == ["d/f.bin"]
    assert sorted(conn.find("", withdirs=True)) == ["d", "d/f.bin"]
    with pytest.raises(FileNotFoundError):
        conn.info(".aifdata/index.db")
    assert conn.find(".aifdata") == {}


def _managed(tmp_path: Path) -> tuple[aifdata.AifFileSystem, Catalog, str, Path]:
    remote = f"memory://cache-{uuid.uuid4().hex[:8]}/data"
    cache = tmp_path / "cache"
    mount = Mount(
        "m", (Tier("cache", str(cache), "cache"), Tier.fsspec(remote, name="s3")),
        read_order=("cache", "s3"), write_tier="s3", hydrate="on-read",
    )  # fmt: skip
    config = Config((mount,))
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    return aifdata.AifFileSystem(config, catalog=catalog), catalog, remote, cache


def test_cache_copies_are_kept_in_the_node_index_not_the_catalog(tmp_path: Path) -> None:
    fs, catalog, remote, cache = _managed(tmp_path)
    fsspec.filesystem("memory").pipe(f"{remote}/f.bin", b"abc" * 100)
    catalog.ingest(remote, "ds")
    assert fs.cat_file("m/f.bin") == b"abc" * 100
    assert fs.where("m/f.bin").tier == "cache"
    url = f"{cache}/f.bin"
    assert catalog.replica_records([url]) == {}
    assert list(CacheIndex(cache).records([url])) == [url]
    assert fs.ls("m", detail=False) == ["m/f.bin"]


def test_a_cache_copy_of_a_file_ingested_without_checksum_is_dropped_when_s3_changes(
    tmp_path: Path,
) -> None:
    fs, catalog, remote, cache = _managed(tmp_path)
    mem = fsspec.filesystem("memory")
    mem.pipe(f"{remote}/f.bin", b"old!" * 100)
    catalog.ingest(remote, "ds", checksum=False)
    index = CacheIndex(cache)
    stat = FileStat(400, None, None, None, None, None)
    index.record(f"{cache}/f.bin", 400, None, stat, '"an etag S3 no longer has"')
    os.makedirs(cache, exist_ok=True)
    (cache / "f.bin").write_bytes(b"new!" * 100)
    manager = fs._tier_manager()
    assert f"{cache}/f.bin" not in manager.records([f"{cache}/f.bin"])


def test_an_unreadable_or_missing_index_serves_nothing_and_makes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    assert CacheIndex(root).records([f"{root}/a"]) == {}
    assert not root.exists()  # a lookup makes no index
    (root / ".aifdata").mkdir(parents=True)
    (root / ".aifdata" / "index.db").write_bytes(b"not a database" * 100)
    assert CacheIndex(root).records([f"{root}/a"]) == {}

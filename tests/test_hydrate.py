"""Hydrate on read: a read that the remote tier serves leaves a verified copy on the
mount's PFS or node-local cache tier, and the next read is served from it.

Unit tests use an in-memory fsspec tier as the remote write tier ("s3"); the
tests marked ``s3`` run the same path against SeaweedFS.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest

import aifdata
from aifdata import Catalog, Config, Mount, Tier
from aifdata.connectors.fsspec_tier import FsspecConnector
from aifdata.managed import _hydrate, _space

MiB = 2**20


@dataclass
class Managed:
    """A mount ``m``: the hydration tier ``fast`` read first, the remote write tier ``s3``."""

    fs: aifdata.AifFileSystem
    catalog: Catalog
    fast: Path
    remote: str  # the write tier's URL
    config: Config

    def put(self, rel: str, data: bytes) -> None:
        """Write ``data`` to the remote tier (not through the mount: no copy anywhere else)."""
        fsspec.filesystem("memory").pipe(f"{self.remote}/{rel}", data)

    def ingest(self) -> None:
        self.catalog.ingest(self.remote, "ds")

    def tier(self, rel: str) -> str:
        return self.fs.where(f"m/{rel}").tier

    def copy(self, rel: str) -> Path:
        return self.fast / rel


def make_managed(tmp_path: Path, kind: str, remote: str | None = None, **mount: Any) -> Managed:
    fast = tmp_path / kind
    remote = remote or f"memory://hydrate-{uuid.uuid4().hex[:8]}/data"
    remote_tier = (
        Tier.fsspec(remote, name="s3") if remote.startswith("memory://") else Tier.s3(remote)
    )
    fast_tier = Tier(kind, str(fast), "fast", {"create": True} if kind == "pfs" else {})
    fast.mkdir(exist_ok=True)
    m = Mount(
        "m", (fast_tier, remote_tier), read_order=("fast", "s3"), write_tier="s3",
        hydrate="on-read", **mount,
    )  # fmt: skip
    config = Config((m,))
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    return Managed(aifdata.AifFileSystem(config, catalog=catalog), catalog, fast, remote, config)


@pytest.fixture(params=["pfs", "cache"])
def managed(request: pytest.FixtureRequest, tmp_path: Path) -> Managed:
    return make_managed(tmp_path, request.param)


@pytest.fixture
def pfs_managed(tmp_path: Path) -> Managed:
    return make_managed(tmp_path, "pfs", hydrate_ranged_max=1000)


def _data(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


def test_a_read_from_s3_leaves_a_copy_that_serves_the_next_read(managed: Managed) -> None:
    data = _data(100_000)
    managed.put("a/x.bin", data)
    managed.ingest()
    assert managed.tier("a/x.bin") == "s3"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert managed.fs.cat_file("m/a/x.bin") == data
    route = managed.fs.where("m/a/x.bin")
    assert route.tier == "fast", route
    assert managed.copy("a/x.bin").read_bytes() == data
    assert managed.fs.cat_file("m/a/x.bin") == data


def test_nothing_but_the_copy_is_left_and_listings_show_only_the_file(managed: Managed) -> None:
    managed.put("a/x.bin", b"x" * 1000)
    managed.ingest()
    managed.fs.cat_file("m/a/x.bin")
    assert sorted(os.listdir(managed.fast / "a")) == ["x.bin"]  # no lease, no temporary
    assert managed.fs.ls("m", detail=False) == ["m/a"]


def test_a_copy_of_an_old_version_is_never_served(managed: Managed) -> None:
    managed.put("x.bin", _data(5000, seed=1))
    managed.ingest()
    managed.fs.cat_file("m/x.bin")
    assert managed.tier("x.bin") == "fast"
    new = _data(5000, seed=2)  # the same size: only the checksum tells them apart
    managed.put("x.bin", new)
    managed.catalog.ingest(managed.remote, "ds")
    assert managed.tier("x.bin") == "s3"
    assert managed.copy("x.bin").read_bytes() != new  # the old copy is still there ...
    assert managed.fs.cat_file("m/x.bin") == new  # ... and never served
    assert managed.tier("x.bin") == "fast"  # the read hydrated the new version
    assert managed.copy("x.bin").read_bytes() == new


def test_a_changed_object_not_yet_recorded_is_read_from_s3_and_not_copied(
    managed: Managed,
) -> None:
    managed.put("x.bin", _data(5000, seed=1))
    managed.ingest()
    changed = _data(5000, seed=3)
    managed.put("x.bin", changed)
    with pytest.warns(RuntimeWarning, match="'fast'.*checksum"):
        assert managed.fs.cat_file("m/x.bin") == changed
    assert not managed.copy("x.bin").exists()
    assert sorted(os.listdir(managed.fast)) in ([], [".aifdata"])


def test_a_file_the_catalog_does_not_record_is_read_as_before(managed: Managed) -> None:
    managed.put("x.bin", b"unrecorded")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert managed.fs.cat_file("m/x.bin") == b"unrecorded"
    assert not managed.copy("x.bin").exists()


def test_small_files_hydrate_on_a_ranged_read(pfs_managed: Managed) -> None:
    data = _data(1000)  # hydrate_ranged_max
    pfs_managed.put("small.bin", data)
    pfs_managed.ingest()
    assert pfs_managed.fs.cat_file("m/small.bin", start=10, end=20) == data[10:20]
    assert pfs_managed.tier("small.bin") == "fast"
    assert pfs_managed.copy("small.bin").read_bytes() == data


def test_large_files_hydrate_only_on_a_whole_read(pfs_managed: Managed) -> None:
    data = _data(1001)
    pfs_managed.put("big.bin", data)
    pfs_managed.ingest()
    assert pfs_managed.fs.cat_file("m/big.bin", start=10, end=20) == data[10:20]
    assert pfs_managed.fs.cat_ranges(["m/big.bin"], [0], [5]) == [data[:5]]
    with pfs_managed.fs.open("m/big.bin", "rb") as f:
        assert f.read(3) == data[:3]
    assert pfs_managed.tier("big.bin") == "s3"
    assert pfs_managed.fs.cat("m/big.bin") == data
    assert pfs_managed.tier("big.bin") == "fast"


def test_open_of_a_small_file_reads_the_copy(pfs_managed: Managed) -> None:
    data = _data(800)
    pfs_managed.put("f.bin", data)
    pfs_managed.ingest()
    with pfs_managed.fs.open("m/f.bin", "rb") as f:
        assert f.read() == data
    assert pfs_managed.tier("f.bin") == "fast"


def test_a_failed_hydration_warns_once_naming_the_tier_and_the_read_succeeds(
    managed: Managed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_hydrate, "make_room", lambda *a: "the tier is full (test)")
    data = _data(3000)
    managed.put("f.bin", data)
    managed.ingest()
    with pytest.warns(RuntimeWarning, match=r"m/f.bin: not hydrated onto tier 'fast'.*full"):
        assert managed.fs.cat_file("m/f.bin") == data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per file per process
        assert managed.fs.cat_file("m/f.bin") == data
    assert not managed.copy("f.bin").exists()


def test_capacity_smaller_than_one_file_skips_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = make_managed(tmp_path, "pfs")
    tier = Tier("pfs", str(m.fast), "fast", {"capacity": "1KiB"})
    mount = Mount(
        "m", (tier, m.config.mounts[0].tier("s3")), read_order=("fast", "s3"), write_tier="s3",
        hydrate="on-read",
    )  # fmt: skip
    config = Config((mount,))
    fs = aifdata.AifFileSystem(config, catalog=Catalog(tmp_path / "catalog.db", config=config))
    data = _data(4096)
    m.put("f.bin", data)
    m.ingest()
    router = fs._router(mount)
    if _space.make_room(fs._tier_manager(), router, "fast", 4096) is None:  # still the stub
        reason = "capacity 1.0 KiB is smaller than the file (4.0 KiB)"
        monkeypatch.setattr(_hydrate, "make_room", lambda *a: reason)
    with pytest.warns(RuntimeWarning, match=r"tier 'fast' \(capacity .* smaller than the file"):
        assert fs.cat_file("m/f.bin") == data
    assert not (m.fast / "f.bin").exists()


def test_threads_reading_one_file_copy_it_once(
    managed: Managed, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(200_000)
    managed.put("f.bin", data)
    managed.ingest()
    opened = []
    for method in ("open_read", "cat_file"):  # a small file is fetched whole
        real = getattr(FsspecConnector, method)

        def counted(self: FsspecConnector, rel: str, *a: Any, real: Any = real, **k: Any) -> Any:
            opened.append(rel)
            return real(self, rel, *a, **k)

        monkeypatch.setattr(FsspecConnector, method, counted)
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(managed.fs.cat_file("m/f.bin")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [data] * 8
    assert opened == ["f.bin"]


def test_hydrate_file_reports_what_it_did(managed: Managed) -> None:
    managed.put("f.bin", b"p" * 5000)
    managed.put("other.bin", b"q")
    managed.ingest()
    managed.put("unrecorded.bin", b"r")
    manager = managed.fs._tier_manager()
    router = managed.fs._router(managed.config.mounts[0])
    first = manager.hydrate_file(router, "f.bin")
    assert (first.outcome, first.bytes) == ("hydrated", 5000)
    assert manager.hydrate_file(router, "f.bin").outcome == "present"
    skipped = manager.hydrate_file(router, "unrecorded.bin")
    assert skipped.outcome == "skipped" and "records no such file" in skipped.reason


def test_counters_are_kept(managed: Managed, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[tuple[str, str, str, int]] = []
    manager = managed.fs._tier_manager()
    monkeypatch.setattr(
        manager.metrics,
        "count",
        lambda r, tier, rel, name, n=1: counted.append((tier, rel, name, n)),
    )
    managed.put("f.bin", b"z" * 10)
    managed.ingest()
    managed.fs.cat_file("m/f.bin")
    assert counted == [("fast", "f.bin", "hydrations", 1), ("fast", "f.bin", "bytes_hydrated", 10)]


# -- against SeaweedFS -----------------------------------------------------------


@pytest.fixture
def s3_managed(
    seaweedfs: Any, bucket: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Managed:
    kind = getattr(request, "param", "pfs")
    m = make_managed(tmp_path, kind, remote=f"s3://{bucket}/data")
    tiers = tuple(
        Tier.s3(t.url, name="s3", **seaweedfs.storage_options) if t.name == "s3" else t
        for t in m.config.mounts[0].tiers
    )
    mount = Mount("m", tiers, read_order=("fast", "s3"), write_tier="s3", hydrate="on-read")
    config = Config((mount,))
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    return Managed(
        aifdata.AifFileSystem(config, catalog=catalog), catalog, m.fast, m.remote, config
    )


def _s3_put(m: Managed, rel: str, data: bytes) -> None:
    m.fs.connector(m.config.mounts[0], "s3").pipe_file(rel, data)


@pytest.mark.parametrize("s3_managed", ["pfs", "cache"], indirect=True)
def test_s3_read_hydrates_and_a_new_version_is_hydrated_again(s3_managed: Managed) -> None:
    m = s3_managed
    old, new = _data(3 * MiB, 1), _data(3 * MiB, 2)
    _s3_put(m, "d/f.bin", old)
    m.ingest()
    assert m.fs.cat_file("m/d/f.bin") == old
    assert m.tier("d/f.bin") == "fast"
    _s3_put(m, "d/f.bin", new)  # behind aifdata's back: the recorded version still serves
    assert m.fs.cat_file("m/d/f.bin") == old
    m.ingest()  # what ``aifdata sync`` does: the new bytes become a version
    assert m.tier("d/f.bin") == "s3"
    assert m.fs.cat_file("m/d/f.bin") == new
    assert m.tier("d/f.bin") == "fast"
    assert m.copy("d/f.bin").read_bytes() == new


@pytest.mark.parametrize("s3_managed", ["pfs", "cache"], indirect=True)
def test_every_read_checking_serves_a_change_behind_aifdatas_back(s3_managed: Managed) -> None:
    m = s3_managed
    mount = dataclasses.replace(m.config.mounts[0], hydrate_check="every-read")
    fs = aifdata.AifFileSystem(Config((mount,)), catalog=m.catalog)
    old, new = _data(3 * MiB, 1), _data(3 * MiB, 2)
    _s3_put(m, "d/f.bin", old)
    m.ingest()
    assert fs.cat_file("m/d/f.bin") == old
    assert fs.where("m/d/f.bin").tier == "fast"
    _s3_put(m, "d/f.bin", new)
    with pytest.warns(RuntimeWarning, match="changed since the catalog recorded it"):
        assert fs.cat_file("m/d/f.bin") == new  # changed, not recorded: S3 serves it


def test_a_write_through_aif_is_read_back_at_once_in_every_process(managed: Managed) -> None:
    managed.put("x.bin", _data(5000, seed=1))
    managed.ingest()
    assert managed.fs.cat_file("m/x.bin") == _data(5000, seed=1)  # hydrated
    assert managed.fs.cat_file("m/x.bin") == _data(5000, seed=1)  # a known route
    other = aifdata.AifFileSystem(managed.config, catalog=Catalog(managed.catalog.path))
    assert other.cat_file("m/x.bin") == _data(5000, seed=1)  # known there too
    new = _data(5000, seed=2)
    managed.fs.pipe_file("m/x.bin", new)
    assert managed.fs.cat_file("m/x.bin") == new
    assert other.cat_file("m/x.bin") == new  # another catalog connection: seen at once
    assert managed.tier("x.bin") == "s3"  # the old copy never serves; the new one is unrecorded


def test_a_file_ingested_without_a_checksum_is_verified_by_size(managed: Managed) -> None:
    data = _data(7000)
    managed.put("f.bin", data)
    managed.catalog.ingest(managed.remote, "ds", checksum=False)
    assert managed.fs.cat_file("m/f.bin") == data
    assert managed.tier("f.bin") == "fast"
    assert managed.copy("f.bin").read_bytes() == data


def test_a_read_only_catalog_hydrates_nothing_onto_a_shared_tier(
    pfs_managed: Managed, tmp_path: Path
) -> None:
    data = _data(500)
    pfs_managed.put("f.bin", data)
    pfs_managed.ingest()
    pfs_managed.catalog.export(str(tmp_path / "export"))
    snapshot = Catalog.from_parquet(str(tmp_path / "export"), config=pfs_managed.config)
    fs = aifdata.AifFileSystem(pfs_managed.config, catalog=snapshot)
    with pytest.warns(RuntimeWarning, match="tier 'fast' .*read-only"):
        assert fs.cat_file("m/f.bin") == data
    assert not pfs_managed.copy("f.bin").exists()


def test_a_large_file_is_fetched_in_windows(managed: Managed, monkeypatch) -> None:
    monkeypatch.setattr(_hydrate, "WHOLE_FETCH_MAX", 1000)  # 5,500 bytes: six windows
    data = _data(5500, seed=3)
    managed.put("big.bin", data)
    managed.ingest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert managed.fs.cat_file("m/big.bin") == data
    assert managed.tier("big.bin") == "fast"
    assert managed.copy("big.bin").read_bytes() == data


def test_a_large_file_cut_short_behind_aifdatas_back_is_not_hydrated(
    managed: Managed, monkeypatch
) -> None:
    monkeypatch.setattr(_hydrate, "WHOLE_FETCH_MAX", 1000)
    managed.put("big.bin", _data(5500, seed=3))
    managed.ingest()
    managed.put("big.bin", _data(2500, seed=3))
    with pytest.warns(RuntimeWarning, match="changed since the catalog recorded it"):
        assert managed.fs.cat_file("m/big.bin") == _data(2500, seed=3)
    assert not managed.copy("big.bin").exists()
    assert sorted(os.listdir(managed.fast)) in ([], [".aifdata"])  # no temporary left

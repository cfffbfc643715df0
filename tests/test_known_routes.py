"""A hydrated copy, once routed to, is served without asking the remote tier again,
for as long as the catalog records no new version and the copy's stat holds."""

from __future__ import annotations

import dataclasses
import os
import uuid

import fsspec
import pytest

import aifdata
from aifdata import Catalog, parse_config


@pytest.fixture
def hydrated(tmp_path, monkeypatch):
    bucket = f"known-{uuid.uuid4().hex[:8]}"
    mem = fsspec.filesystem("memory")
    for i in range(3):
        mem.pipe(f"/{bucket}/d/f{i}.bin", bytes([i]) * 1000)
    config = parse_config(
        f"""
[mounts.b]
hydrate = "on-read"
hydrate_check = "on-sync"
[mounts.b.mem]
kind = "fsspec"
url = "memory://{bucket}"
[mounts.b.pfs]
path = "{tmp_path / "pfs"}"
create = true
"""
    )
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    catalog.ingest("aif://b/d", "known/d")
    fs = aifdata.filesystem(config, catalog=catalog)
    for i in range(3):
        assert fs.cat_file(f"b/d/f{i}.bin") == bytes([i]) * 1000  # hydrates
    assert fs.where("b/d/f0.bin").tier == "pfs"
    yield catalog, fs, mem, bucket
    mem.rm(f"/{bucket}", recursive=True)


def _remote_stats(fs, monkeypatch) -> list[str]:
    mount = fs.config.mount("b")
    remote = fs.connector(mount, "mem")
    asked: list[str] = []
    real = remote.stats

    def counting(rels):
        rels = list(rels)
        asked.extend(rels)
        return real(rels)

    monkeypatch.setattr(remote, "stats", counting)
    return asked


def test_the_catalog_is_trusted_until_sync_by_default(tmp_path):
    assert aifdata.Mount("m", (aifdata.Tier.pfs(tmp_path),)).hydrate_check == "on-sync"


def test_a_known_route_asks_no_remote_tier(hydrated, monkeypatch):
    _catalog, fs, _mem, _bucket = hydrated
    fs.cat_file("b/d/f1.bin")  # routed once more: now known
    asked = _remote_stats(fs, monkeypatch)
    for _ in range(5):
        assert fs.cat_file("b/d/f1.bin") == bytes([1]) * 1000
        assert fs.cat_file("b/d/f1.bin", 10, 20) == bytes([1]) * 10
    assert asked == []


def test_a_new_version_forgets_known_routes(hydrated):
    catalog, fs, mem, bucket = hydrated
    fs.cat_file("b/d/f2.bin")
    mem.pipe(f"/{bucket}/d/f2.bin", b"new bytes")
    catalog.ingest("aif://b/d", "known/d")  # version 2: f2 has other bytes
    assert fs.cat_file("b/d/f2.bin") == b"new bytes"


def test_a_replaced_local_copy_is_routed_again(hydrated, tmp_path):
    _catalog, fs, _mem, _bucket = hydrated
    fs.cat_file("b/d/f0.bin")
    copy = tmp_path / "pfs" / "d" / "f0.bin"
    other = tmp_path / "other.bin"
    other.write_bytes(b"X" * 1000)  # same size, other bytes, another inode
    os.replace(other, copy)
    assert fs.cat_file("b/d/f0.bin") == bytes([0]) * 1000


def test_a_new_process_serves_a_verified_copy_without_asking_the_remote_tier(hydrated, monkeypatch):
    catalog, fs, _mem, _bucket = hydrated
    fresh = aifdata.AifFileSystem(fs.config, catalog=Catalog(catalog.path, config=fs.config))
    asked = _remote_stats(fresh, monkeypatch)
    assert fresh.cat_file("b/d/f2.bin") == bytes([2]) * 1000
    assert fresh.where("b/d/f2.bin").tier == "pfs"
    assert asked == []


def test_a_file_only_the_remote_tier_holds_is_read_without_a_stat_first(hydrated, monkeypatch):
    catalog, fs, mem, bucket = hydrated
    mem.pipe(f"/{bucket}/d/f9.bin", b"nine" * 100)
    catalog.ingest("aif://b/d", "known/d")
    fresh = aifdata.AifFileSystem(fs.config, catalog=Catalog(catalog.path, config=fs.config))
    asked = _remote_stats(fresh, monkeypatch)
    route = fresh.where("b/d/f9.bin")
    assert (route.tier, route.size) == ("mem", 400)
    assert "the catalog records" in route.reason
    assert asked == []


def test_every_read_asks_the_remote_tier_each_time(hydrated, monkeypatch):
    catalog, fs, _mem, _bucket = hydrated
    mount = dataclasses.replace(fs.config.mount("b"), hydrate_check="every-read")
    every = aifdata.AifFileSystem(aifdata.Config((mount,)), catalog=catalog)
    asked = _remote_stats(every, monkeypatch)
    for _ in range(3):
        assert every.cat_file("b/d/f1.bin") == bytes([1]) * 1000
    assert asked == ["d/f1.bin"] * 3


def test_a_generation_counts_its_own_commits_at_once_and_others_once_asked(tmp_path):
    ours, theirs = Catalog(tmp_path / "c.db"), Catalog(tmp_path / "c.db")
    mark = ours.generation(max_age=60)
    with theirs.conn:
        theirs.conn.execute("UPDATE overwrites SET count = count + 1")
    assert ours.generation(max_age=60) == mark  # asked SQLite a moment ago
    assert ours.generation() != mark  # asked now: another connection committed
    mark = ours.generation(max_age=60)
    with ours.conn:
        ours.conn.execute("UPDATE overwrites SET count = count + 1")
    assert ours.generation(max_age=60) != mark  # its own commit counts at once


def test_a_file_grown_behind_aifdatas_back_is_never_read_cut_short(hydrated):
    catalog, fs, mem, bucket = hydrated
    mem.pipe(f"/{bucket}/d/f9.bin", b"nine" * 100)
    catalog.ingest("aif://b/d", "known/d")
    mem.pipe(f"/{bucket}/d/f9.bin", b"NINE" * 200)  # not synced: the record says 400 bytes
    fresh = aifdata.AifFileSystem(fs.config, catalog=Catalog(catalog.path, config=fs.config))
    changed = pytest.warns(RuntimeWarning, match="changed since the catalog recorded it")
    with changed, fresh.open("b/d/f9.bin") as f:
        assert f.read() == b"NINE" * 200

"""Last access of managed copies: noted in memory, written in batches (never a write per read)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from aifdata import Catalog
from aifdata._filesystem import MountedFileSystem
from aifdata.managed import Manager, _access


@pytest.fixture
def staged(catalog_url, tiers):
    """A dataset of three files on the write tier, staged onto ``pfs``; a filesystem whose
    reads go through a manager; the statements the catalog runs."""
    config = tiers.fs.config
    catalog = Catalog(catalog_url, config=config)
    for i in range(3):
        tiers.place(f"set/f{i}.bin", write=bytes([i]) * 100)
    catalog.ingest("aif://both/set", "set")
    catalog.stage("set", to="pfs")
    manager = Manager(catalog, config)
    fs = MountedFileSystem(config, records=catalog.replica_records, manager=manager)
    plain = MountedFileSystem(config, records=catalog.replica_records)
    for i in range(3):  # routing hashes each staged copy once (its seal moved the ctime)
        plain.cat(f"both/set/f{i}.bin")
    statements: list[str] = []
    catalog.conn.set_trace_callback(statements.append)
    return catalog, fs, manager, statements


def _last_access(catalog: Catalog) -> dict[str, float | None]:
    rows = catalog.conn.execute(
        "SELECT f.path, r.last_access FROM replicas r JOIN files f ON f.id = r.file_id"
        " WHERE r.tier = 'pfs'"
    )
    return dict(rows)


def _writes(statements: list[str]) -> int:
    return sum(s.startswith("BEGIN") for s in statements)  # IMMEDIATE on SQLite


def test_many_reads_cost_one_write_at_the_flush(staged):
    catalog, fs, manager, statements = staged
    before = time.time()
    for _ in range(200):
        for i in range(3):
            assert fs.cat(f"both/set/f{i}.bin") == bytes([i]) * 100
    assert fs.where("both/set/f0.bin").tier == "pfs"
    assert _writes(statements) == 0  # nothing written by the reads themselves
    assert manager.access.pending() == 3  # one entry per copy, whatever the reads
    manager.access.flush()  # the counters (manager.flush) write their own transaction
    assert _writes(statements) == 1  # one transaction for the whole batch
    times = _last_access(catalog)
    assert all(t is not None and t >= before for t in times.values()), times


def test_a_time_that_moved_less_than_a_minute_is_not_written_again(staged):
    catalog, fs, manager, statements = staged
    fs.cat("both/set/f0.bin")
    manager.access.flush()  # the counters (manager.flush) write their own transaction
    first = _last_access(catalog)["f0.bin"]
    fs.cat("both/set/f0.bin")
    manager.access.flush()  # the counters (manager.flush) write their own transaction
    assert _writes(statements) == 1
    assert _last_access(catalog)["f0.bin"] == first


def test_another_process_time_within_a_minute_is_kept(staged):
    catalog, fs, manager, _statements = staged
    recent = time.time() - 10
    catalog.conn.execute("UPDATE replicas SET last_access = ?", (recent,))
    fs.cat("both/set/f1.bin")
    manager.access.flush()  # the counters (manager.flush) write their own transaction
    assert _last_access(catalog)["f1.bin"] == recent  # the row was not rewritten


def test_reads_flush_by_themselves_after_the_interval(staged, monkeypatch):
    catalog, fs, manager, statements = staged
    clock = [1000.0]
    monkeypatch.setattr(_access, "monotonic", lambda: clock[0])
    log = manager.access
    log._next = clock[0] + log.every
    for _ in range(50):
        fs.cat("both/set/f2.bin")
    assert _writes(statements) == 0
    clock[0] += _access.FLUSH_EVERY
    fs.cat("both/set/f2.bin")
    assert _writes(statements) == 1
    assert _last_access(catalog)["f2.bin"] is not None


def test_reads_of_the_write_tier_are_not_noted(staged):
    _catalog, fs, manager, _statements = staged
    router = fs._router(fs.config.mounts[0])
    pfs = router.route("set/f0.bin")
    assert pfs.tier == "pfs"
    write = pfs.__class__(pfs.path, fs.config.mounts[0].write_tier, "x", "because")
    manager.access.note(router, write)
    assert manager.access.pending() == 0
    manager.access.note(router, pfs)
    assert manager.access.pending() == 1


def test_a_read_only_catalog_keeps_nothing_quietly(staged, tmp_path):
    catalog, fs, _manager, _statements = staged
    snapshot = tmp_path / "snap"
    catalog.export(str(snapshot))
    frozen = Catalog.from_parquet(str(snapshot), config=fs.config)
    log = _access.AccessLog(frozen, fs.config)
    router = fs._router(fs.config.mounts[0])
    log.note(router, router.route("set/f0.bin"))
    assert log.pending() == 0
    log.flush()


def test_a_busy_catalog_keeps_the_times_for_the_next_flush(staged, monkeypatch):
    catalog, fs, manager, _statements = staged
    fs.cat("both/set/f0.bin")
    monkeypatch.setattr(_access, "write_briefly", lambda conn, write: False)
    manager.access.flush()  # the counters (manager.flush) write their own transaction
    assert manager.access.pending() == 1
    monkeypatch.undo()
    manager.access.flush()  # the counters (manager.flush) write their own transaction
    assert manager.access.pending() == 0
    assert _last_access(catalog)["f0.bin"] is not None


def test_at_exit_live_logs_are_flushed_and_dead_ones_are_not_kept(staged):
    catalog, fs, _manager, _statements = staged
    fs.cat("both/set/f0.bin")
    _access._flush_at_exit()
    assert _last_access(catalog)["f0.bin"] is not None
    log = _access.AccessLog(catalog, fs.config)
    assert log in set(_access._LOGS)
    del log
    assert all(isinstance(x, _access.AccessLog) for x in _access._LOGS)
    assert len([x for x in _access._LOGS if x.catalog is catalog]) == 1  # only the manager's


@pytest.mark.e2e
def test_a_forked_worker_writes_its_times_when_it_ends(staged):
    catalog, fs, manager, _ = staged
    ctx = multiprocessing.get_context("fork")

    def read() -> None:
        fs.cat("both/set/f2.bin")  # noted in the worker's memory; it ends with os._exit

    worker = ctx.Process(target=read)
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert manager.access.pending() == 0  # the parent noted nothing
    assert _last_access(catalog)["f2.bin"] is not None


@pytest.mark.parametrize("catalog_backend", ["sqlite"])  # about the file
def test_a_removed_catalog_is_not_made_again_by_a_flush(staged):
    catalog, fs, manager, _statements = staged
    fs.cat("both/set/f0.bin")
    catalog.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{catalog.path}{suffix}").unlink(missing_ok=True)
    manager.access.flush()
    assert not Path(catalog.path).exists()

"""This process's writers of a catalog file queue on a lock (not SQLite's sleeping busy
handler): every write lands, and a child forked while a thread of its parent holds the
lock does not wait for it."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from aifdata import Catalog
from aifdata.catalog import Principal
from aifdata.catalog._store import _queued
from aifdata.catalog._writer_lock import queued

WHO = Principal("bob", ())


def audit_rows(catalog: Catalog) -> int:
    return int(catalog.conn.execute("SELECT count(*) FROM audit").fetchone()[0])


def test_writers_of_many_threads_all_land(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    before = audit_rows(catalog)

    def write() -> None:
        for _ in range(25):
            catalog.record_audit(WHO, "open", "aif://x", "read", "x", allowed=True)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert audit_rows(catalog) == before + 200


def _write_once(location: str, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    started = time.monotonic()
    Catalog(location).record_audit(WHO, "open", "aif://child", "read", "x", allowed=True)
    done.put(time.monotonic() - started)


@pytest.mark.e2e
def test_a_child_forked_while_a_thread_queues_writes_once_its_parent_has(tmp_path: Path) -> None:
    """The lock a parent's thread holds at the fork is not the child's: the child waits
    for its parent's write as any other process does (on the lock file), and writes as
    soon as that ends, not after the busy timeout."""
    catalog = Catalog(tmp_path / "catalog.db")
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with _queued(catalog.conn):
            inside.set()
            leave.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(30)
    try:
        context = multiprocessing.get_context("fork")
        done = context.Queue()
        child = context.Process(target=_write_once, args=(str(catalog.path), done))
        child.start()
        time.sleep(1.0)
        assert done.empty()  # queued behind the parent's writer
        leave.set()
        took = done.get(timeout=40)  # the busy timeout (60 s) would be the wait otherwise
        child.join(10)
    finally:
        leave.set()
        holder.join()
    assert child.exitcode == 0 and took < 30
    rows = catalog.conn.execute("SELECT count(*) FROM audit WHERE target = 'aif://child'")
    assert rows.fetchone()[0] == 1


def _write_many(location: str, tag: str, count: int) -> None:
    catalog = Catalog(location)
    for i in range(count):
        catalog.record_audit(WHO, "open", f"aif://{tag}/{i}", "read", "x", allowed=True)


@pytest.mark.e2e
def test_writers_of_many_processes_all_land_through_the_lock_file(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    before = audit_rows(catalog)
    assert (tmp_path / "catalog.db-lock").exists()  # a WAL catalog: processes queue on it
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_write_many, args=(str(catalog.path), f"p{i}", 50)) for i in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [c.exitcode for c in children] == [0] * 4
    assert audit_rows(catalog) == before + 200


def test_a_writer_that_cannot_get_the_lock_file_in_time_goes_on(tmp_path: Path) -> None:
    """SQLite's own lock still decides: the queue only saves its sleeping."""
    catalog = Catalog(tmp_path / "catalog.db")
    assert catalog.datasets() == []  # opened (and its lock file made)
    other = os.open(tmp_path / "catalog.db-lock", os.O_RDWR)  # another holder of it
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with queued(catalog.conn.identity, catalog.conn.lock_file, timeout=0.2):
            catalog.conn.execute("SELECT 1")
    finally:
        os.close(other)


def test_no_lock_file_descriptor_is_kept_between_writes(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    for _ in range(3):
        catalog.record_audit(WHO, "open", "aif://x", "read", "x", allowed=True)
    lock_file = catalog.conn.lock_file
    assert lock_file == str(tmp_path / "catalog.db-lock")
    held = [fd for fd in os.listdir("/proc/self/fd") if _names(fd, lock_file)]
    assert held == []


def _names(fd: str, path: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == path
    except OSError:
        return False


def test_a_relative_catalog_path_queues_on_its_own_lock_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    catalog = Catalog("catalog.db")
    assert catalog.datasets() == []
    monkeypatch.chdir("/")  # a later chdir does not move the lock file
    assert catalog.conn.lock_file == str(tmp_path / "catalog.db-lock")

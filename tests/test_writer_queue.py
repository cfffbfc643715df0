"""This process's writers of a catalog file queue on a lock (not SQLite's sleeping busy
handler): every write lands, and a child forked while a thread of its parent holds the
lock does not wait for it."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from aifdata import Catalog
from aifdata.catalog import Principal
from aifdata.catalog._store import _queued

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
def test_a_child_forked_while_a_thread_queues_writes_at_once(tmp_path: Path) -> None:
    """The lock a parent's thread holds at the fork is not the child's (its SQLite lock
    is none: only this process's queue is held here)."""
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
        took = done.get(timeout=40)  # the busy timeout (60 s) would be the wait otherwise
        child.join(10)
    finally:
        leave.set()
        holder.join()
    assert child.exitcode == 0 and took < 30
    rows = catalog.conn.execute("SELECT count(*) FROM audit WHERE target = 'aif://child'")
    assert rows.fetchone()[0] == 1

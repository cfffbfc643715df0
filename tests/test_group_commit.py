"""Group commit: rows appended by many threads at once are written a batch per
transaction, each caller answered only once its row is committed, a failed batch
reported to each of its callers and nothing of it kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aifdata import Catalog
from aifdata.catalog import Principal
from aifdata.catalog._group_commit import GroupCommit


class Store:
    """Batches written, slowly (so that rows queue behind a write), failing on request."""

    def __init__(self, seconds: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.seconds = seconds
        self.fail_on: set[int] = set()
        self.lock = threading.Lock()

    def write(self, rows: Sequence[int]) -> None:
        time.sleep(self.seconds)
        if self.fail_on & set(rows):
            raise OSError(f"disk full writing {sorted(rows)}")
        with self.lock:
            self.batches.append(list(rows))

    def rows(self) -> list[int]:
        return sorted(r for b in self.batches for r in b)


def append_from_threads(commit: GroupCommit[int], rows: range) -> dict[int, Any]:
    """Each row appended from its own thread, all at once: what each call returned or raised."""
    outcome: dict[int, Any] = {}
    start = threading.Barrier(len(rows))

    def one(row: int) -> None:
        start.wait()
        outcome[row] = outcome_of(commit, row)

    threads = [threading.Thread(target=one, args=(r,)) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcome


def test_alone_a_row_is_written_at_once() -> None:
    store = Store(0)
    commit = GroupCommit(store.write)
    commit.append(1)
    commit.append(2)
    assert store.batches == [[1], [2]]


def test_rows_of_many_threads_share_transactions_and_none_is_lost() -> None:
    store = Store()
    commit = GroupCommit(store.write)
    outcome = append_from_threads(commit, range(32))
    assert outcome == dict.fromkeys(range(32), "committed")
    assert store.rows() == list(range(32))
    assert len(store.batches) < 32  # rows waited for a running write, then went together


def test_a_caller_returns_only_once_its_row_is_committed() -> None:
    store = Store()
    seen_committed: list[bool] = []
    commit = GroupCommit(store.write)
    lock = threading.Lock()

    def one(row: int) -> None:
        commit.append(row)
        with lock:
            seen_committed.append(row in store.rows())

    threads = [threading.Thread(target=one, args=(r,)) for r in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen_committed == [True] * 16


def test_a_failed_batch_fails_each_of_its_callers_and_keeps_nothing() -> None:
    store = Store()
    store.fail_on = set(range(100))
    commit = GroupCommit(store.write)
    outcome = append_from_threads(commit, range(8))
    assert all(isinstance(v, OSError) and "disk full" in str(v) for v in outcome.values())
    assert store.batches == []
    store.fail_on = set()
    commit.append(100)  # the next batch is written
    assert store.batches == [[100]]


def test_only_the_failed_batch_fails() -> None:
    store = Store(0)
    writing, release = threading.Event(), threading.Event()

    def write(rows: Sequence[int]) -> None:
        if 0 in rows:  # row 0 is written alone, and fails once the others queue behind it
            writing.set()
            release.wait(30)
            raise OSError("disk full")
        store.write(rows)

    commit = GroupCommit(write)
    first: list[Any] = []
    leader = threading.Thread(target=lambda: first.append(outcome_of(commit, 0)))
    leader.start()
    writing.wait(30)
    threading.Timer(0.05, release.set).start()
    outcome = append_from_threads(commit, range(1, 9))
    leader.join(30)
    assert isinstance(first[0], OSError)
    assert outcome == dict.fromkeys(range(1, 9), "committed")
    assert store.rows() == list(range(1, 9))


def outcome_of(commit: GroupCommit[int], row: int) -> Any:
    try:
        commit.append(row)
    except OSError as exc:
        return exc
    return "committed"


def test_audit_rows_of_many_threads_are_all_recorded(catalog_url: Any, tmp_path: Path) -> None:
    catalog = Catalog(catalog_url)
    before = catalog.conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    start = threading.Barrier(16)

    def record(i: int) -> None:
        start.wait()
        for j in range(10):
            who = Principal(f"user{i}")
            catalog.record_audit(who, "presign", f"aif://x/{i}/{j}", "read", "x", allowed=True)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    rows = catalog.conn.execute("SELECT principal, target FROM audit ORDER BY id").fetchall()[
        before:
    ]
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        (f"user:user{i}", f"aif://x/{i}/{j}") for i in range(16) for j in range(10)
    )


def test_each_caller_of_a_failed_batch_gets_its_own_error_and_none_is_kept() -> None:
    store = Store()
    store.fail_on = set(range(100))
    commit = GroupCommit(store.write)
    outcome = append_from_threads(commit, range(8))
    errors = list(outcome.values())
    assert len({id(e) for e in errors}) == 8  # no traceback shared between threads
    assert all(str(e).startswith("disk full") for e in errors)
    assert commit._failures == {}  # each told once, then forgotten

"""Group commit: rows that many threads append at once, written in one transaction.

A service records an audit row for each request (each presigned URL, each refusal); with
one transaction per row its requests queue on the catalog's single writer. Here the first
thread to find no write running becomes the leader: it takes every row waiting and writes
them in one transaction, while rows that arrive meanwhile wait for the next one. Each
caller returns only once the transaction holding its row has committed (or raises what
that transaction raised), so nothing is acknowledged before it is on disk. Alone, a
thread writes its own row at once, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Row = TypeVar("Row")

#: Failures kept for the waiters of recent batches (older waiters have long been told).
_KEEP_FAILURES = 64


class GroupCommit(Generic[Row]):
    """Append rows from many threads; ``write(rows)`` commits a batch of them at a time."""

    def __init__(self, write: Callable[[Sequence[Row]], None]) -> None:
        self._write = write
        self._ready = threading.Condition()
        self._pending: list[Row] = []
        self._filling = 0  # the batch rows appended now belong to
        self._committed = -1  # the last batch written (or failed)
        self._writing = False
        self._failures: dict[int, BaseException] = {}

    def append(self, row: Row) -> None:
        """Return once ``row`` is committed; raise what its batch's transaction raised."""
        with self._ready:
            batch = self._filling
            self._pending.append(row)
            while self._committed < batch and self._writing:
                self._ready.wait()
            if self._committed >= batch:
                failure = self._failures.get(batch)
                if failure is not None:
                    raise failure
                return
            rows, self._pending = self._pending, []
            self._writing, self._filling = True, batch + 1
        failure = None
        try:
            self._write(rows)
        except BaseException as exc:
            failure = exc
        with self._ready:
            self._writing, self._committed = False, batch
            if failure is not None:
                self._failures[batch] = failure
                for old in [b for b in self._failures if b <= batch - _KEEP_FAILURES]:
                    del self._failures[old]
            self._ready.notify_all()
        if failure is not None:
            raise failure

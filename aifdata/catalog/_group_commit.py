"""Group commit: rows that many threads append at once, written in one transaction.

A service records an audit row for each request (each presigned URL, each refusal); with
one transaction per row its requests queue on the catalog's single writer. Here the first
thread to find no write running becomes the leader: it takes every row waiting and writes
them in one transaction, while rows that arrive meanwhile wait for the next one. Each
caller returns only once the transaction holding its row has committed (or raises what
that transaction raised), so nothing is acknowledged before it is committed. Alone, a
thread writes its own row at once, as before.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Row = TypeVar("Row")


class _Failed:
    """A batch whose transaction failed: its error, and how many of its callers have not
    been told yet (each is told once, then it is forgotten)."""

    def __init__(self, error: BaseException, untold: int) -> None:
        self.error, self.untold = error, untold


class GroupCommit(Generic[Row]):
    """Append rows from many threads; ``write(rows)`` commits a batch of them at a time."""

    def __init__(self, write: Callable[[Sequence[Row]], None]) -> None:
        self._write = write
        self._ready = threading.Condition()
        self._pending: list[Row] = []
        self._filling = 0  # the batch rows appended now belong to
        self._committed = -1  # the last batch written (or failed)
        self._writing = False
        self._failures: dict[int, _Failed] = {}

    def append(self, row: Row) -> None:
        """Return once ``row`` is committed; raise what its batch's transaction raised."""
        with self._ready:
            batch = self._filling
            self._pending.append(row)
            while self._committed < batch and self._writing:
                self._ready.wait()
            if self._committed >= batch:
                failed = self._failures.get(batch)
                if failed is None:
                    return
                failed.untold -= 1
                if failed.untold == 0:
                    del self._failures[batch]
                raise _own_copy(failed.error) from failed.error
            rows, self._pending = self._pending, []
            self._writing, self._filling = True, batch + 1
        failure = None
        try:
            self._write(rows)
        except BaseException as exc:
            failure = exc
        with self._ready:
            self._writing, self._committed = False, batch
            if failure is not None and len(rows) > 1:  # the others are told as they wake
                self._failures[batch] = _Failed(failure, len(rows) - 1)
            self._ready.notify_all()
        if failure is not None:
            raise failure


def _own_copy(error: BaseException) -> BaseException:
    """The same error for another waiting thread, as an object of its own (its traceback
    and message changes are not the others')."""
    try:
        return copy.copy(error).with_traceback(None)
    except Exception:
        return error

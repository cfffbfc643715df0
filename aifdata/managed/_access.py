"""Last access of managed copies, recorded at far less than a write per read.

Clusters mount with ``noatime``, so a copy's last read is kept by aifdata. Each
process notes the reads of local copies in memory (a dict: one entry per copy,
whatever the number of reads) and writes them in batches: at most every
:data:`FLUSH_EVERY` seconds from the read path, on :meth:`Manager.flush`, and at
exit. A PFS copy's time goes to ``replicas.last_access`` in the catalog (one
short transaction per flush, and only for rows whose time moved by more than
:data:`MOVED`); a node-local cache copy's goes to its node's index. A flush
that cannot take the catalog's write lock at once keeps its times for the next.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing.util
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

from .._config import Config
from .._errors import AifDataError
from .._router import Route, Router
from ..catalog import Catalog
from ..catalog._verify import write_briefly

#: Seconds between two flushes started by reads (per process).
FLUSH_EVERY = 30.0
#: A copy's recorded time is rewritten only when it moved by more than this (seconds).
MOVED = 60.0

#: A cache root's node index (``CacheIndex``: ``touch(url -> time)``).
IndexOf = Callable[[str], Any]


class AccessLog:
    """Notes which local copies were read, and writes the times in batches."""

    def __init__(
        self,
        catalog: Catalog,
        config: Config,
        *,
        index: IndexOf | None = None,
        every: float = FLUSH_EVERY,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.every = every
        self._index = index or node_index
        self._shared: dict[str, float] = {}  # PFS copy URL -> last read
        self._cached: dict[str, dict[str, float]] = {}  # cache root -> copy URL -> last read
        self._written: dict[str, float] = {}  # what this process wrote last, per URL
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._next = monotonic() + every
        self._keeps_shared: bool | None = None
        _LOGS.add(self)

    def note(self, router: Router, route: Route) -> None:
        """A read of ``route`` was served (remembered in memory; written in batches)."""
        tier = router.mount.tier(route.tier)
        if not tier.local or tier.name == router.mount.write_tier:
            return  # only copies that may be released need their last read
        now = time.time()
        if tier.storage_kind.node_local:
            with self._lock:
                self._cached.setdefault(tier.url, {})[route.url] = now
        elif self._keeps_times():
            if now - self._written.get(route.url, 0.0) <= MOVED:
                return  # written less than a minute ago: nothing to add
            with self._lock:
                self._shared[route.url] = now
        if monotonic() >= self._next:
            self.flush()

    def pending(self) -> int:
        """How many copies' times wait in memory."""
        with self._lock:
            return len(self._shared) + sum(len(t) for t in self._cached.values())

    def flush(self) -> None:
        """Write the last-access times noted so far (a flush already running: skipped)."""
        if not self._flushing.acquire(blocking=False):
            return
        try:
            self._next = monotonic() + self.every
            with self._lock:
                shared, self._shared = self._shared, {}
                cached, self._cached = self._cached, {}
            # a catalog removed meanwhile (a temporary home cleaned up) is never made anew
            if shared and self.catalog.exists():
                self._flush_shared(shared)
            for root, times in cached.items():
                self._index(root).touch(times)
        finally:
            self._flushing.release()

    def _flush_shared(self, times: Mapping[str, float]) -> None:
        rows = [(t, u, t - MOVED) for u, t in times.items()]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE replicas SET last_access = ?"
                " WHERE url = ? AND (last_access IS NULL OR last_access < ?)",
                rows,
            )

        if write_briefly(self.catalog.conn, write):
            self._written.update(times)
        else:  # the catalog is busy: keep the times for the next flush
            with self._lock:
                for url, t in times.items():
                    self._shared[url] = max(t, self._shared.get(url, 0.0))

    def _keeps_times(self) -> bool:
        """Whether the catalog can be written (a read-only one keeps nothing, quietly)."""
        if self._keeps_shared is None:
            try:
                self._keeps_shared = not self.catalog.read_only
            except (AifDataError, sqlite3.Error, OSError):
                self._keeps_shared = False
        return self._keeps_shared


def node_index(root: str) -> Any:
    """The node index of the cache tier rooted at ``root`` (one per root per process)."""
    index = _INDEXES.get(root)
    if index is None:
        from ._cache_index import CacheIndex

        index = _INDEXES[root] = CacheIndex(root)
    return index


_INDEXES: dict[str, Any] = {}
_LOGS: weakref.WeakSet[AccessLog] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Write what every live access log holds (a manager already gone holds nothing)."""
    for log in list(_LOGS):
        # exiting: a time not written only makes its copy look older
        with contextlib.suppress(AifDataError, sqlite3.Error, OSError):
            log.flush()


def _in_forked_child(_: object) -> None:
    """A forked multiprocessing worker (a DataLoader's) ends with ``os._exit``, which
    runs no atexit handler: its finalizers run, so it flushes through one."""
    multiprocessing.util.Finalize(None, _flush_at_exit, exitpriority=10)


class _ForkHook:
    pass


_FORK_HOOK = _ForkHook()  # kept alive: multiprocessing holds its fork hooks weakly
multiprocessing.util.register_after_fork(_FORK_HOOK, _in_forked_child)

"""The node's own record of what a node-local cache tier holds.

A cache tier's copies belong to one node (another node's cache at the same path
holds other files), so they are recorded beside them, in
``<root>/.aifdata/index.db`` (SQLite in WAL mode: the root is local disk, shared
by every process of the node), never in the site catalog. Each row is what the
catalog's replica rows are for a shared tier: the copy's size, checksum and
what identifies it unread (inode, ctime), plus the ETag of the write tier's
object it was copied from and when it was last read (for LRU release).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from .._router import ReplicaRecord
from ..connectors import FileStat
from ..connectors.cache import INDEX_DIR

_SCHEMA = """
CREATE TABLE IF NOT EXISTS copies (
    url         TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    checksum    TEXT,
    mtime       REAL,
    inode       INTEGER,
    device      INTEGER,
    ctime_ns    INTEGER,
    source_etag TEXT,
    recorded    REAL NOT NULL,
    last_access REAL NOT NULL
)
"""


class CachedCopy(NamedTuple):
    """One copy in a cache, for LRU release: its URL, size and last read."""

    url: str
    size: int
    last_access: float


class CacheIndex:
    """The index of one cache root (one connection per thread and process)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self.path = os.path.join(self.root, INDEX_DIR, "index.db")
        self._local = threading.local()

    @property
    def conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            local.conn, local.pid = conn, os.getpid()
        result: sqlite3.Connection = local.conn
        return result

    def record(
        self, url: str, size: int, checksum: str | None, stat: FileStat, source_etag: str | None
    ) -> None:
        """Record (or replace) a verified copy at ``url``."""
        now = time.time()
        self.conn.execute(
            "INSERT OR REPLACE INTO copies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (url, size, checksum or None, stat.mtime, stat.inode, stat.device,
             stat.ctime_ns, source_etag, now, now),
        )  # fmt: skip

    def records(self, urls: Sequence[str]) -> dict[str, ReplicaRecord]:
        """The records of the ``urls`` this cache holds, for routing (none when the
        index cannot be read: then no copy here is served)."""
        try:
            return self._records(urls) if os.path.exists(self.path) else {}
        except (OSError, sqlite3.Error):
            return {}

    def _records(self, urls: Sequence[str]) -> dict[str, ReplicaRecord]:
        out: dict[str, ReplicaRecord] = {}
        unique = list(dict.fromkeys(urls))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for url, size, checksum, mtime, inode, device, ctime_ns in self.conn.execute(
                "SELECT url, size, checksum, mtime, inode, device, ctime_ns"
                f" FROM copies WHERE url IN ({marks})",
                chunk,
            ):
                report = functools.partial(self._hashed, url)
                out[url] = ReplicaRecord(
                    size, checksum, mtime, None, inode, device, ctime_ns, report=report
                )
        return out

    def source_etags(self, urls: Sequence[str]) -> dict[str, str | None]:
        """The write tier's ETag (None: unknown) of the object each copy was made from."""
        marks = ",".join("?" * len(urls))
        sql = f"SELECT url, source_etag FROM copies WHERE url IN ({marks})"
        return dict(self.conn.execute(sql, list(urls)).fetchall())

    def touch(self, times: Mapping[str, float]) -> None:
        """Set the last read of these copies (url -> time)."""
        self.conn.executemany(
            "UPDATE copies SET last_access = ? WHERE url = ?", [(t, u) for u, t in times.items()]
        )

    def forget(self, urls: Iterable[str]) -> None:
        """Drop the records of these copies (released, or found bad)."""
        self.conn.executemany("DELETE FROM copies WHERE url = ?", [(u,) for u in urls])

    def lru(self, limit: int | None = None) -> list[CachedCopy]:
        """The copies, least recently read first."""
        sql = "SELECT url, size, last_access FROM copies ORDER BY last_access, url"
        rows = self.conn.execute(sql + ("" if limit is None else f" LIMIT {int(limit)}"))
        return [CachedCopy(*row) for row in rows]

    def used_bytes(self) -> int:
        """The bytes of every recorded copy."""
        return int(self.conn.execute("SELECT COALESCE(SUM(size), 0) FROM copies").fetchone()[0])

    def close(self) -> None:
        if getattr(self._local, "pid", None) == os.getpid():
            self._local.conn.close()
        self._local = threading.local()

    def _hashed(self, url: str, stat: FileStat, problem: str | None) -> None:
        """What routing found on hashing a copy again: bad copies are forgotten,
        good ones recorded with their new stat."""
        if problem is not None:
            self.forget([url])
            return
        self.conn.execute(
            "UPDATE copies SET mtime = ?, inode = ?, device = ?, ctime_ns = ? WHERE url = ?",
            (stat.mtime, stat.inode, stat.device, stat.ctime_ns, url),
        )

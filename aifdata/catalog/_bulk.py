"""Write a version's file and replica rows in bulk.

A version may hold millions of files: their rows go in with one
``executemany`` per table, inside the caller's transaction, while Python's
cycle collector is held (:func:`aifdata._gc.gc_paused`). On PostgreSQL they
go in with ``COPY ... FROM STDIN`` instead, the fastest way in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ._ingest import SourceFile
from ._schema import is_postgres


def insert_files(
    conn: sqlite3.Connection,
    version_id: int,
    first_id: int,
    files: Sequence[SourceFile],
    recorded: float,
) -> None:
    """Rows ``first_id``, ``first_id + 1``, ... in ``files`` and their replicas."""
    if is_postgres(conn):
        _copy_files(conn, version_id, first_id, files, recorded)
        return
    conn.executemany(
        "INSERT INTO files (id, version_id, path, size, checksum, format, mtime, etag)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (first_id + i, version_id, f.path, f.size, f.checksum, f.format, f.mtime, f.etag)
            for i, f in enumerate(files)
        ),
    )
    conn.executemany(
        "INSERT INTO replicas (file_id, tier, url, size, checksum, mtime, etag, recorded)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (first_id + i, f.tier, f.url, f.size, f.checksum or None, f.mtime, f.etag, recorded)
            for i, f in enumerate(files)
        ),
    )


FILE_COLUMNS = ("id", "version_id", "path", "size", "checksum", "format", "mtime", "etag")
REPLICA_COLUMNS = ("file_id", "tier", "url", "size", "checksum", "mtime", "etag", "recorded")


def _copy_files(
    conn: sqlite3.Connection,
    version_id: int,
    first_id: int,
    files: Sequence[SourceFile],
    recorded: float,
) -> None:
    copy = conn.copy_rows  # type: ignore[attr-defined]
    copy(
        "files",
        FILE_COLUMNS,
        (
            (first_id + i, version_id, f.path, f.size, f.checksum, f.format, f.mtime, f.etag)
            for i, f in enumerate(files)
        ),
    )
    copy(
        "replicas",
        REPLICA_COLUMNS,
        (
            (first_id + i, f.tier, f.url, f.size, f.checksum or None, f.mtime, f.etag, recorded)
            for i, f in enumerate(files)
        ),
    )

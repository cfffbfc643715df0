"""Write a version's file and replica rows in bulk.

A version may hold millions of files: their rows go in with one
``executemany`` per table, inside the caller's transaction, while Python's
cycle collector is held (:func:`gc_paused`).
"""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from collections.abc import Iterator, Sequence

from ._ingest import SourceFile


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold Python's cycle collector while a listing's rows are made and written.

    Each pass of the collector walks every live container, and a listing of
    many files makes a pass every few hundred new dicts over an ever larger
    heap: a third of an ingest's time. The rows hold no reference cycles.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def insert_files(
    conn: sqlite3.Connection,
    version_id: int,
    first_id: int,
    files: Sequence[SourceFile],
    recorded: float,
) -> None:
    """Rows ``first_id``, ``first_id + 1``, ... in ``files`` and their replicas."""
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

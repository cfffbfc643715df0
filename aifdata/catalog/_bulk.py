"""Write a version's file and replica rows in bulk.

A version may hold millions of files. Binding rows one at a time from Python
costs more than SQLite's own work, so the rows travel as one JSON array and
SQLite's ``json_each`` unpacks them in C (SQLite 3.38+, or any build with
JSON1); ``executemany`` is the fallback.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from ._ingest import SourceFile

_FILES_JSON = (
    "INSERT INTO files (id, version_id, path, size, checksum, format, mtime, etag)"
    " SELECT ? + key, ?, json_extract(value, '$[0]'), json_extract(value, '$[2]'),"
    " json_extract(value, '$[3]'), json_extract(value, '$[7]'), json_extract(value, '$[4]'),"
    " json_extract(value, '$[5]') FROM json_each(?)"
)
_REPLICAS_JSON = (
    "INSERT INTO replicas (file_id, tier, url, size, checksum, mtime, etag, recorded)"
    " SELECT ? + key, json_extract(value, '$[6]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), nullif(json_extract(value, '$[3]'), ''),"
    " json_extract(value, '$[4]'), json_extract(value, '$[5]'), ? FROM json_each(?)"
)


def has_json(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT count(*) FROM json_each('[1]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def insert_files(
    conn: sqlite3.Connection,
    version_id: int,
    first_id: int,
    files: Sequence[SourceFile],
    recorded: float,
) -> None:
    """Rows ``first_id``, ``first_id + 1``, ... in ``files`` and their replicas."""
    if has_json(conn):
        payload = json.dumps(files)  # each SourceFile is a tuple: a JSON array
        conn.execute(_FILES_JSON, (first_id, version_id, payload))
        conn.execute(_REPLICAS_JSON, (first_id, recorded, payload))
        return
    conn.executemany(
        "INSERT INTO files (id, version_id, path, size, checksum, format, mtime, etag)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (first_id + i, version_id, f.path, f.size, f.checksum, f.format, f.mtime, f.etag)
            for i, f in enumerate(files)
        ],
    )
    conn.executemany(
        "INSERT INTO replicas (file_id, tier, url, size, checksum, mtime, etag, recorded)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (first_id + i, f.tier, f.url, f.size, f.checksum or None, f.mtime, f.etag, recorded)
            for i, f in enumerate(files)
        ],
    )

"""The catalog's tables, and the migrations that build them (``PRAGMA user_version``).

Tables (the Parquet export keeps the same names and columns):

``datasets``   id, name (unique, e.g. ``genomics/run42``), description, owner, created
``tags``       dataset_id, key, value
``versions``   id, dataset_id, number (1, 2, ...), source, created, file_count, total_bytes,
               digest (sha256 over the sorted (path, size, checksum) rows: equal data, equal digest)
``files``      id, version_id, path (relative to the version's source), size,
               checksum (``sha256:<hex>``), format, mtime, etag
``replicas``   file_id, tier, url, size, checksum, mtime, etag, recorded
``search_text`` dataset_id, name, description, tags ("k=v ..."), formats (of the latest version);
               mirrored into the FTS5 table ``search_fts`` where SQLite has FTS5
"""

from __future__ import annotations

import sqlite3

from .._errors import CatalogError

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE datasets (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        owner       TEXT NOT NULL,
        created     REAL NOT NULL
    );
    CREATE TABLE tags (
        dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (dataset_id, key)
    );
    CREATE TABLE versions (
        id          INTEGER PRIMARY KEY,
        dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        number      INTEGER NOT NULL,
        source      TEXT NOT NULL,
        created     REAL NOT NULL,
        file_count  INTEGER NOT NULL,
        total_bytes INTEGER NOT NULL,
        digest      TEXT NOT NULL,
        UNIQUE (dataset_id, number)
    );
    CREATE TABLE files (
        id          INTEGER PRIMARY KEY,
        version_id  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
        path        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        checksum    TEXT NOT NULL,
        format      TEXT NOT NULL DEFAULT 'unknown',
        mtime       REAL,
        etag        TEXT,
        UNIQUE (version_id, path)
    );
    CREATE TABLE replicas (
        file_id     INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        tier        TEXT NOT NULL,
        url         TEXT NOT NULL,
        size        INTEGER NOT NULL,
        checksum    TEXT,
        mtime       REAL,
        etag        TEXT,
        recorded    REAL NOT NULL,
        PRIMARY KEY (file_id, tier)
    );
    CREATE INDEX replicas_by_url ON replicas(url);
    """,
    """
    CREATE TABLE search_text (
        dataset_id  INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        description TEXT NOT NULL,
        tags        TEXT NOT NULL,
        formats     TEXT NOT NULL
    );
    """,
)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this file is missing (inside the caller's transaction)."""
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise CatalogError(
            f"catalog schema version {current} is newer than this aifdata ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")

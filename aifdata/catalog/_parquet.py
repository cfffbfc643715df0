"""Parquet snapshots of the catalog, for readers without the SQLite file (or the
PostgreSQL server: a snapshot of either is the same).

``export`` writes one Parquet file per table (``datasets``, ``tags``,
``versions``, ``files``, ``replicas``, ``grants``, ``admins``, ``runs``,
``run_datasets``, each as ``NAME.parquet``) with the columns of
:mod:`._schema`, plus ``_snapshot.json`` (schema version, time). The audit
table stays in the SQLite file: a snapshot enforces grants but records nothing.
Each file is written whole and then renamed (PFS) or PUT (S3), so a reader
never sees half a table.
``load`` rebuilds an in-memory, read-only SQLite catalog from such a snapshot,
so the same queries serve both.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from fsspec import AbstractFileSystem

import aifdata.catalog._postgres as _postgres

from .._errors import CatalogError
from ._schema import is_postgres, migrate, schema_version
from ._search import ensure_index, reindex

TABLES = (
    "datasets",
    "tags",
    "versions",
    "files",
    "replicas",
    "grants",
    "admins",
    "runs",
    "run_datasets",
)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise CatalogError("Parquet export needs pyarrow: pip install aifdata[dataframe]") from exc
    return pa, pq


def export(conn: sqlite3.Connection, fs: AbstractFileSystem, root: str) -> list[str]:
    """Write every table under ``root``; return the paths written."""
    pa, pq = _pyarrow()
    fs.makedirs(root, exist_ok=True)
    written = []
    for table in TABLES:
        cursor = conn.execute(f"SELECT * FROM {table}")
        columns = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
        data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        arrow = pa.table(data, schema=_arrow_schema(pa, conn, table, columns))
        path = f"{root.rstrip('/')}/{table}.parquet"
        with fs.open(path, "wb") as f:
            pq.write_table(arrow, f)
        written.append(path)
    meta = {"schema_version": schema_version(conn), "exported": time.time(), "tables": TABLES}
    fs.pipe(f"{root.rstrip('/')}/_snapshot.json", json.dumps(meta).encode())
    return written


def _arrow_schema(pa: Any, conn: sqlite3.Connection, table: str, columns: list[str]) -> Any:
    """Arrow types from the SQLite declared types (so empty tables keep their schema)."""
    if is_postgres(conn):
        declared = _postgres.column_types(conn, table)  # type: ignore[arg-type]
    else:
        declared = {
            r["name"]: r["type"].upper() for r in conn.execute(f"PRAGMA table_info({table})")
        }
    kinds = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    return pa.schema([(c, kinds.get(declared.get(c, "TEXT"), pa.string())) for c in columns])


def load(fs: AbstractFileSystem, root: str) -> sqlite3.Connection:
    """An in-memory SQLite catalog holding a snapshot's tables."""
    _, pq = _pyarrow()
    base = root.rstrip("/")
    try:
        meta = json.loads(fs.cat_file(f"{base}/_snapshot.json"))
    except FileNotFoundError:
        raise CatalogError(
            f"{base}: no catalog snapshot here (_snapshot.json is missing)"
        ) from None
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.row_factory = sqlite3.Row
    migrate(conn)
    found, expected = meta.get("schema_version"), schema_version(conn)
    if found != expected:
        raise CatalogError(
            f"{base}: snapshot schema {found} differs from this aifdata's {expected}"
        )
    for table in TABLES:
        with fs.open(f"{base}/{table}.parquet", "rb") as f:
            arrow = pq.read_table(f)
        if arrow.num_rows == 0:
            continue
        columns = arrow.column_names
        marks = ",".join("?" * len(columns))
        rows = zip(*(arrow.column(c).to_pylist() for c in columns), strict=True)
        conn.executemany(f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", rows)
    ensure_index(conn)
    for (dataset_id,) in conn.execute("SELECT id FROM datasets").fetchall():
        reindex(conn, dataset_id)
    conn.commit()
    conn.execute("PRAGMA query_only = ON")
    return conn

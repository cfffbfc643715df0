"""The catalog: datasets, their immutable versions, files and replicas."""

from __future__ import annotations

import getpass
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import Config, aifdata_home, load_config
from .._errors import CatalogError, NotFound
from .._router import ReplicaRecord
from .._urls import resolve_url
from ..connectors._base import FileStat
from ._ingest import SourceFile, scan
from ._search import SearchHit, reindex, search
from ._store import connect, write_transaction


def current_user() -> str:
    """The principal: ``$AIFDATA_USER``, else the OS user."""
    return os.environ.get("AIFDATA_USER") or getpass.getuser()


@dataclass(frozen=True)
class StageReport:
    """What ``stage`` did: files copied, files already in place, bytes copied."""

    copied: tuple[str, ...]
    present: tuple[str, ...]
    bytes_copied: int


@dataclass(frozen=True)
class FileRecord:
    """One file of a dataset version."""

    id: int
    path: str
    size: int
    checksum: str
    format: str
    mtime: float | None
    etag: str | None
    replicas: tuple[tuple[str, str], ...] = ()  # (tier, url)


@dataclass(frozen=True)
class Dataset:
    """One version of a dataset, with its files."""

    name: str
    version: int
    description: str
    owner: str
    tags: Mapping[str, str]
    source: str
    created: float
    digest: str
    files: tuple[FileRecord, ...] = field(repr=False)
    lineage: tuple[Any, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class Catalog:
    """The embedded catalog: one SQLite file, ``$AIFDATA_HOME/catalog.db`` by default."""

    def __init__(self, path: str | os.PathLike[str] | None = None, config: Config | None = None):
        self.path = Path(path) if path is not None else aifdata_home() / "catalog.db"
        self._config = config
        self._local = threading.local()
        self._snapshot: sqlite3.Connection | None = None  # set by from_parquet

    @classmethod
    def from_parquet(cls, source: str, config: Config | None = None) -> Catalog:
        """A read-only catalog from a Parquet snapshot (a directory, ``s3://`` or ``aif://``)."""
        from ._parquet import load

        catalog = cls(Path(source), config=config)
        fs, root = resolve_url(source, catalog.config)
        catalog._snapshot = load(fs, root)
        return catalog

    @property
    def read_only(self) -> bool:
        """True for a Parquet snapshot."""
        return self._snapshot is not None

    def export(self, dest: str) -> list[str]:
        """Write the catalog's tables as Parquet under ``dest``; return the files written."""
        from ._parquet import export

        fs, root = resolve_url(dest, self.config)
        return export(self.conn, fs, root)

    def _writable(self) -> None:
        if self._snapshot is not None:
            raise CatalogError(f"{self.path}: a Parquet snapshot is read-only")

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._snapshot is not None:
            return Catalog.from_parquet, (str(self.path), self._config)
        return Catalog, (self.path, self._config)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config()
        return self._config

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: handles must not cross one)."""
        if self._snapshot is not None:
            return self._snapshot
        local = self._local
        if getattr(local, "conn", None) is None or local.pid != os.getpid():
            local.conn, local.pid = connect(self.path), os.getpid()
        return local.conn

    def close(self) -> None:
        if getattr(self._local, "conn", None) is not None:
            self._local.conn.close()
            self._local.conn = None

    # -- replicas ------------------------------------------------------------

    def replica_records(self, urls: Sequence[str]) -> dict[str, ReplicaRecord]:
        """The newest record of each physical URL the catalog knows."""
        out: dict[str, ReplicaRecord] = {}
        unique = list(dict.fromkeys(urls))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT url, size, checksum, mtime, etag FROM replicas WHERE url IN ({marks})"
                " ORDER BY recorded",
                chunk,
            ):
                out[row["url"]] = ReplicaRecord(
                    row["size"], row["checksum"], row["mtime"], row["etag"]
                )
        return out

    def stage(
        self, name: str, to: str, version: int | None = None, workers: int = 8
    ) -> StageReport:
        """Copy a dataset version's files to tier ``to`` of their mount, verify, record.

        Missing or stale copies are written atomically while their SHA-256 is
        checked against the catalog; good copies are only recorded.
        """
        from ._stage import stage_version

        self._writable()
        ds = self.dataset(name, version)
        return stage_version(self, ds, to, workers)

    def record_replica(
        self, file_id: int, tier: str, url: str, size: int, checksum: str, stat: FileStat
    ) -> None:
        """Record (or replace) the copy of one file on one tier."""
        with write_transaction(self.conn) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO replicas"
                " (file_id, tier, url, size, checksum, mtime, etag, recorded)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (file_id, tier, url, size, checksum, stat.mtime, stat.etag, time.time()),
            )

    # -- ingest --------------------------------------------------------------

    def ingest(
        self,
        source: str,
        dataset: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        workers: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> Dataset:
        """Record the files under ``source`` as a new version of ``dataset``.

        Files are listed and checksummed first; then one transaction records the
        dataset, the version, the files and their replicas. Unchanged data makes
        no new version; a failure part-way records nothing.
        """
        self._writable()
        fs, root = resolve_url(source, self.config)
        files = scan(fs, root, workers=workers, progress=progress)
        digest = version_digest(files)
        with write_transaction(self.conn) as conn:
            dataset_id = self._dataset_id(conn, dataset, description, tags, owner)
            latest = conn.execute(
                "SELECT number, digest FROM versions WHERE dataset_id = ? "
                "ORDER BY number DESC LIMIT 1",
                (dataset_id,),
            ).fetchone()
            if latest is None or latest["digest"] != digest:
                number = 1 if latest is None else latest["number"] + 1
                self._insert_version(conn, dataset_id, number, source, digest, files)
            reindex(conn, dataset_id)
        return self.dataset(dataset)

    def _dataset_id(
        self,
        conn: sqlite3.Connection,
        name: str,
        description: str | None,
        tags: Mapping[str, str] | None,
        owner: str | None,
    ) -> int:
        row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
        if row is None:
            cursor = conn.execute(
                "INSERT INTO datasets (name, description, owner, created) VALUES (?, ?, ?, ?)",
                (name, description or "", owner or current_user(), time.time()),
            )
            dataset_id = int(cursor.lastrowid or 0)
        else:
            dataset_id = int(row["id"])
            if description is not None:
                conn.execute(
                    "UPDATE datasets SET description = ? WHERE id = ?", (description, dataset_id)
                )
        if tags:
            conn.executemany(
                "INSERT OR REPLACE INTO tags (dataset_id, key, value) VALUES (?, ?, ?)",
                [(dataset_id, k, str(v)) for k, v in tags.items()],
            )
        return dataset_id

    def _insert_version(
        self,
        conn: sqlite3.Connection,
        dataset_id: int,
        number: int,
        source: str,
        digest: str,
        files: Sequence[SourceFile],
    ) -> None:
        now = time.time()
        cursor = conn.execute(
            "INSERT INTO versions (dataset_id, number, source, created, file_count, total_bytes,"
            " digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dataset_id, number, source, now, len(files), sum(f.size for f in files), digest),
        )
        version_id = cursor.lastrowid
        for f in files:
            file_id = conn.execute(
                "INSERT INTO files (version_id, path, size, checksum, format, mtime, etag)"
                " VALUES (?, ?, ?, ?, 'unknown', ?, ?)",
                (version_id, f.path, f.size, f.checksum, f.mtime, f.etag),
            ).lastrowid
            conn.execute(
                "INSERT INTO replicas (file_id, tier, url, size, checksum, mtime, etag, recorded)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (file_id, f.tier, f.url, f.size, f.checksum, f.mtime, f.etag, now),
            )

    # -- reading -------------------------------------------------------------

    def search(
        self,
        query: str = "",
        *,
        format: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        limit: int = 50,
    ) -> list[SearchHit]:
        """Datasets whose name, description, tags or formats match every word, best first."""
        return search(self.conn, query, format=format, tags=tags, owner=owner, limit=limit)

    def datasets(self) -> list[str]:
        """Names of all datasets, sorted."""
        rows = self.conn.execute("SELECT name FROM datasets ORDER BY name").fetchall()
        return [r["name"] for r in rows]

    def versions(self, name: str) -> list[int]:
        """Version numbers of a dataset, oldest first."""
        rows = self.conn.execute(
            "SELECT v.number FROM versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE d.name = ? ORDER BY v.number",
            (name,),
        ).fetchall()
        return [r["number"] for r in rows]

    def dataset(self, name: str, version: int | None = None) -> Dataset:
        """A dataset at ``version`` (default: the latest)."""
        conn = self.conn
        meta = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
        if meta is None:
            raise NotFound(f"no dataset {name!r} in {self.path}")
        query = "SELECT * FROM versions WHERE dataset_id = ?"
        args: tuple[Any, ...] = (meta["id"],)
        if version is not None:
            query, args = query + " AND number = ?", (*args, version)
        row = conn.execute(query + " ORDER BY number DESC LIMIT 1", args).fetchone()
        if row is None:
            known = ", ".join(map(str, self.versions(name))) or "none"
            raise NotFound(f"dataset {name!r} has no version {version}; versions: {known}")
        tags = dict(
            conn.execute(
                "SELECT key, value FROM tags WHERE dataset_id = ?", (meta["id"],)
            ).fetchall()
        )
        return Dataset(
            name=name,
            version=row["number"],
            description=meta["description"],
            owner=meta["owner"],
            tags=tags,
            source=row["source"],
            created=row["created"],
            digest=row["digest"],
            files=self._files(row["id"]),
        )

    def _files(self, version_id: int) -> tuple[FileRecord, ...]:
        replicas: dict[int, list[tuple[str, str]]] = {}
        for r in self.conn.execute(
            "SELECT r.file_id, r.tier, r.url FROM replicas r JOIN files f ON f.id = r.file_id"
            " WHERE f.version_id = ?",
            (version_id,),
        ):
            replicas.setdefault(r["file_id"], []).append((r["tier"], r["url"]))
        rows = self.conn.execute(
            "SELECT * FROM files WHERE version_id = ? ORDER BY path", (version_id,)
        ).fetchall()
        return tuple(_file_record(r, replicas.get(r["id"], [])) for r in rows)


def _file_record(row: sqlite3.Row, replicas: list[tuple[str, str]]) -> FileRecord:
    return FileRecord(
        id=row["id"],
        path=row["path"],
        size=row["size"],
        checksum=row["checksum"],
        format=row["format"],
        mtime=row["mtime"],
        etag=row["etag"],
        replicas=tuple(replicas),
    )


def version_digest(files: Sequence[SourceFile]) -> str:
    """SHA-256 over the sorted (path, size, checksum) rows: same data, same digest."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.size}\0{f.checksum}\n".encode())
    return digest.hexdigest()


def open_dataset(name: str, version: int | None = None, catalog: Catalog | None = None) -> Dataset:
    """A dataset from the catalog (``$AIFDATA_HOME/catalog.db`` unless one is given)."""
    return (catalog or Catalog()).dataset(name, version)

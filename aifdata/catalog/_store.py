"""The catalog's SQLite file: where it lives, how it is opened, how it is written.

* WAL journaling on node-local disk; a rollback journal where the file sits on
  a network or parallel file system (NFS, Lustre, GPFS, ...), because WAL needs
  shared memory that such file systems do not give across nodes.
* Every write is one ``BEGIN IMMEDIATE`` transaction with a busy timeout, so
  concurrent writers queue instead of failing with "database is locked".
* The schema is versioned (``PRAGMA user_version``) and migrated forward on open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from .._errors import CatalogError
from ._policy import bootstrap_admin
from ._schema import POLICY_SCHEMA, migrate
from ._search import ensure_index

#: File systems on which SQLite's WAL mode is unsafe or unsupported.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "glusterfs",
        "9p",
        "afs",
        "pvfs2",
        "orangefs",
    }
)
BUSY_TIMEOUT_S = 60.0
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def filesystem_type(path: str | os.PathLike[str]) -> str:
    """The file system type holding ``path`` (``ext4``, ``lustre``, ...), from /proc/mounts."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount_point = fields[1].replace("\\040", " ")
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, best_type = mount_point, fields[2]
    except OSError:
        return "unknown"
    return best_type


def is_network_filesystem(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is on a network or parallel file system (no WAL there)."""
    kind = filesystem_type(path)
    return kind in NETWORK_FILESYSTEMS or kind.startswith("fuse.")


def journal_mode_for(path: Path) -> str:
    """``wal`` on local disk, ``delete`` (rollback journal) on shared file systems."""
    forced = os.environ.get("AIFDATA_CATALOG_JOURNAL")
    if forced:
        return forced.lower()
    return "delete" if is_network_filesystem(path.parent) else "wal"


_opened = 0  # catalog connections made by this process


def catalog_opened() -> None:
    """Count a catalog opened by this process (it may have made the file)."""
    global _opened
    _opened += 1


def catalogs_opened() -> int:
    """How many catalog connections this process has made: a filesystem that found no
    catalog file looks again when this changes."""
    return _opened


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the catalog at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise CatalogError(f"{path}: cannot open the catalog: {exc}") from exc
    conn.row_factory = sqlite3.Row
    try:
        _prepare(conn, path)
    except sqlite3.DatabaseError as exc:  # another kind of file, or a damaged one
        conn.close()
        if isinstance(exc, sqlite3.OperationalError):
            raise  # locked, read-only, out of space: not about what the file is
        raise CatalogError(f"{path}: not an aifdata catalog ({exc})") from exc
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    mode = journal_mode_for(path)
    _retry_locked(lambda: conn.execute(f"PRAGMA journal_mode = {mode}"))
    if mode == "wal":
        conn.execute("PRAGMA synchronous = NORMAL")
    with write_transaction(conn):
        if migrate(conn) < POLICY_SCHEMA:
            bootstrap_admin(conn)
        ensure_index(conn)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: all of it is written, or none of it."""
    _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _retry_locked(call: object, attempts: int = 20) -> None:
    """Retry what the busy timeout does not cover (e.g. switching journal mode)."""
    for attempt in range(attempts):
        try:
            call()  # type: ignore[operator]
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in _BUSY_CODES:
                raise
            if attempt == attempts - 1:
                raise CatalogError(f"catalog stayed locked: {exc}") from exc
            time.sleep(0.05 * (attempt + 1))

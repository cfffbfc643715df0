"""Backing up, restoring and checking the catalog file.

A backup is SQLite's online backup of the live catalog (readers and writers go
on meanwhile) into a temporary file beside the destination, checked, switched to
a rollback journal so that it is one self-contained file, then moved into place
atomically. A restore checks the backup first (an aifdata catalog, intact, not
newer than this aifdata), then copies it into the live catalog through the same
API, under SQLite's locks, so processes that have the catalog open see the
restored contents and none writes into a file that is gone.

A PostgreSQL catalog is backed up and restored by ``pg_dump`` and ``pg_restore``
(:meth:`Catalog.backup` says so); its check asks PostgreSQL which constraints are
not validated (it enforces the others on every write).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from .._errors import CatalogError, NotFound
from ._schema import MIGRATIONS, is_postgres, schema_version
from ._store import (
    BUSY_TIMEOUT_S,
    CatalogConnection,
    open_read_only,
    put_in_place,
    remove_with_journals,
    temporary_name,
)


def problems(conn: sqlite3.Connection) -> list[str]:
    """What SQLite's ``integrity_check`` and ``foreign_key_check`` find (none: [])."""
    if is_postgres(conn):
        return _postgres_problems(conn)
    found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if found == ["ok"]:
        found = []
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        found.append(f"row {rowid} of {table} refers to a missing row of {parent}")
    return found


def _postgres_problems(conn: sqlite3.Connection) -> list[str]:
    """A PostgreSQL catalog's problems: an older schema, constraints not validated."""
    found = []
    version = schema_version(conn)
    if version != len(MIGRATIONS):
        found.append(f"schema version {version}, this aifdata's is {len(MIGRATIONS)}")
    for table, name in conn.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint"
        " WHERE NOT convalidated AND connamespace = current_schema()::regnamespace"
    ).fetchall():
        found.append(f"constraint {name} of {table} is not validated")
    return found


def backup(conn: sqlite3.Connection, dest: Path, *, force: bool = False) -> Path:
    """Copy the catalog open on ``conn`` to ``dest``, whole or not at all."""
    if not dest.parent.is_dir():
        raise NotFound(f"{dest}: no directory {dest.parent} to write the backup in")
    if os.path.lexists(dest):
        if dest.is_dir():
            raise CatalogError(f"{dest}: is a directory; name the backup file")
        if _same_file(dest, getattr(conn, "path", None)):
            raise CatalogError(f"{dest}: is the catalog itself; name another file")
        if not force:
            raise CatalogError(f"{dest}: exists; --force (force=True) replaces it")
    _copy_into_place(conn, dest, replace=force, what="backup", mode=_mode_of(conn))
    return dest


def _mode_of(conn: sqlite3.Connection) -> int | None:
    """The catalog file's permission bits: a backup is no easier to read than the catalog."""
    path = getattr(conn, "path", None)
    try:
        return stat.S_IMODE(os.stat(path).st_mode) if path is not None else None
    except OSError:
        return None


def restore(source: Path, path: Path, live: sqlite3.Connection | None, *, force: bool) -> None:
    """Make the catalog at ``path`` hold what the backup ``source`` holds.

    ``live`` is a writable connection to the catalog at ``path`` when there is one;
    None when no file is there (then one is made) or when the file there is not a
    catalog (then an empty one is replaced, another only with ``force``).
    """
    backup_conn = checked_backup(source)
    try:
        if live is not None:
            if _same_file(source, path):
                raise CatalogError(f"{source}: is the catalog itself; name a backup")
            backup_conn.backup(live)
        elif not os.path.lexists(path):
            _copy_into_place(backup_conn, path, replace=False, what="restored catalog")
        elif not force and path.stat().st_size > 0:  # an empty file holds nothing to lose
            raise CatalogError(f"{path}: exists and is no aifdata catalog; --force replaces it")
        else:
            for suffix in ("-journal", "-wal", "-shm"):  # they belong to no catalog
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            _copy_into_place(backup_conn, path, replace=True, what="restored catalog")
    except sqlite3.Error as exc:
        raise CatalogError(f"{path}: cannot restore {source}: {exc}") from exc
    finally:
        backup_conn.close()


def checked_backup(source: Path) -> CatalogConnection:
    """A read-only connection to ``source``, an intact aifdata catalog."""
    if not source.is_file():
        raise NotFound(f"{source}: no such backup file")
    conn = open_read_only(source)
    try:
        found = problems(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CatalogError(f"{source}: the backup is damaged: {exc}") from exc
    if found:
        conn.close()
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CatalogError(f"{source}: the backup is damaged: {found[0]}{more}")
    return conn


def _copy_into_place(
    conn: sqlite3.Connection, dest: Path, *, replace: bool, what: str, mode: int | None = None
) -> None:
    temporary = temporary_name(dest)
    try:
        copy = sqlite3.connect(temporary, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal beside it
            found = problems(copy)
        finally:
            copy.close()
        if found:
            raise CatalogError(f"{dest}: the {what} did not check out: {found[0]}")
        if mode is not None:
            os.chmod(temporary, mode)
        if not put_in_place(temporary, dest, replace=replace):
            raise CatalogError(f"{dest}: a file appeared there meanwhile; it was left alone")
    except sqlite3.Error as exc:
        raise CatalogError(f"{dest}: cannot write the {what}: {exc}") from exc
    except OSError as exc:
        raise CatalogError(f"{dest}: cannot write the {what}: {exc.strerror or exc}") from exc
    finally:
        remove_with_journals(temporary)


def _same_file(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False

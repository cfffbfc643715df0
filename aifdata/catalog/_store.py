"""The catalog's SQLite file: where it lives, how it is opened, how it is written.

* WAL journaling on node-local disk; a rollback journal where the file sits on
  a network or parallel file system (NFS, Lustre, GPFS, ...), because WAL needs
  shared memory that such file systems do not give across nodes.
* Every write is one ``BEGIN IMMEDIATE`` transaction with a busy timeout, so
  concurrent writers queue instead of failing with "database is locked".
* The schema is versioned (``PRAGMA user_version``) and migrated forward on open.
* A catalog named by a ``postgresql://`` URL lives in PostgreSQL instead
  (:mod:`._postgres`): the same tables, writers queued by an advisory lock.

And the file is never silently lost or taken for another:

* A catalog is made only where no file is, built under a temporary name and
  linked into place whole, so no one ever sees an empty or half-made catalog.
  It is marked with ``PRAGMA application_id`` (:data:`APPLICATION_ID`); a file
  that is empty, not SQLite, or SQLite without that mark and aifdata's tables is
  refused with what it is, never initialised. (The file is only ever opened
  through SQLite: a descriptor of it closed elsewhere in the process would drop
  the POSIX locks of every SQLite connection to it.)
* A catalog this process may not write (mode without write bits, a directory
  where no journal can be made, a read-only mount) opens read-only: queries
  work, writes are refused naming the file and why. Where even SQLite's locks
  cannot be taken, it is read as an immutable file, unless a journal holds
  writes not yet in the file.
* Each write transaction checks, before it commits and after, that the path
  still names the file it opened: a catalog deleted or replaced meanwhile makes
  the write fail, naming the file, instead of reporting a success that is gone.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import aifdata.catalog._postgres as _postgres

from .._errors import CatalogError
from ..connectors._atomic import fsync_directory
from ._policy import bootstrap_admin
from ._schema import (
    META_TABLE,
    MIGRATIONS,
    POLICY_SCHEMA,
    has_meta,
    is_postgres,
    migrate,
    schema_version,
)
from ._search import ensure_index
from ._writer_lock import LOCK_SUFFIX, queued

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
#: ``PRAGMA application_id`` of an aifdata catalog ("AIFD").
APPLICATION_ID = 0x41494644
_SQLITE_READONLY_DBMOVED = sqlite3.SQLITE_READONLY | (4 << 8)
#: What SQLite says when it may read a file but not write it.
_REFUSED_WRITING = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
#: Tables by which a catalog made before :data:`APPLICATION_ID` is known.
_CATALOG_TABLES = frozenset({"datasets", "versions", "files", "replicas"})


class NotACatalog(CatalogError):
    """The file exists but is not an aifdata catalog (empty, not SQLite, another
    application's database)."""


class CatalogConnection(sqlite3.Connection):
    """A connection to one catalog file: which file it opened, whether it may write."""

    path: Path
    #: (st_dev, st_ino) of the file opened: the path must still name it at each commit.
    identity: tuple[int, int] | None = None
    #: Why this connection may not write ("" when it may).
    read_only: str = ""
    #: Set once the path no longer names the file opened: reopen before the next use.
    stale: bool = False
    #: The lock file writing processes queue on (a WAL catalog on a node-local disk).
    lock_file: str | None = None


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


# -- opening -----------------------------------------------------------------


def connect(path: Path | str) -> CatalogConnection:
    """Open the catalog at ``path``: made (and its creator made admin) only where no
    file is; migrated if writable; read-only if this process may not write it.
    A ``postgresql://`` URL opens (and if need be makes) a catalog in that database."""
    if _postgres.is_url(path):
        return connect_postgres(str(path))  # type: ignore[return-value]
    path = Path(path)
    if not os.path.lexists(path):
        create(path)
    opened = file_identity(path)
    if opened is None:
        raise CatalogError(f"{path}: the catalog file was deleted as it was being opened")
    refuse_empty(path)
    why = read_only_reason(path)
    if not why:
        try:
            return _open_writable(path, opened)
        except CatalogError as exc:
            if not _refused_writing(exc.__cause__):
                raise
            # aifdata's checks saw no reason (an ACL, a mount flag): SQLite's word decides
            why = f"SQLite will not write it: {exc.__cause__}"
    conn = _open(path, why)
    conn.identity = opened
    try:
        check_readable_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_postgres(url: str) -> _postgres.Connection:
    """Open the catalog in the PostgreSQL database at ``url``: made there (its creator
    made admin) where the database holds no catalog yet, migrated if writable."""
    conn = _postgres.connect(url)
    try:
        recognise_postgres(conn)
        conn.read_only = _postgres.read_only_reason(conn)
        if conn.read_only:
            check_readable_schema(conn, conn.path)  # type: ignore[arg-type]
        elif not _postgres.is_current(conn, len(MIGRATIONS)):
            with _postgres.write_transaction(conn):
                initialise(conn)  # type: ignore[arg-type]
    except BaseException:
        conn.close()
        raise
    return conn


def recognise_postgres(conn: _postgres.Connection) -> None:
    """Raise NotACatalog for a database that holds tables but no aifdata catalog."""
    found = set() if has_meta(conn) else _postgres.tables(conn)
    # another process may have committed a new catalog between the two looks: its tables
    # then include the catalog's own (each process makes it in one transaction, under the
    # writers' lock, so no one sees it half made)
    if not found or META_TABLE in found:
        version = schema_version(conn)  # type: ignore[arg-type]
        if version > len(MIGRATIONS):
            raise CatalogError(
                f"{conn.path}: catalog schema version {version} is newer than this aifdata"
                f" ({len(MIGRATIONS)}); upgrade aifdata to use it"
            )
        return
    listed = ", ".join(sorted(found)[:6])
    raise NotACatalog(
        f"{conn.path}: not an aifdata catalog: a database of another kind (tables:"
        f" {listed}); aifdata makes a catalog only in an empty database or schema"
    )


def data_version(conn: sqlite3.Connection) -> int:
    """A number that moves when any connection commits to the catalog."""
    if is_postgres(conn):
        return _postgres.data_version(conn)  # type: ignore[arg-type]
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _open_writable(path: Path, opened: tuple[int, int]) -> CatalogConnection:
    conn = _open(path, "")
    conn.identity = opened
    try:
        _prepare(conn, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        raise CatalogError(f"{path}: cannot open the catalog: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF in _BUSY_CODES


def _refused_writing(exc: BaseException | None) -> bool:
    """Whether SQLite could not open or write the file for writing (but could read it)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = exc.sqlite_errorcode
    return code != _SQLITE_READONLY_DBMOVED and code & 0xFF in _REFUSED_WRITING


def open_read_only(path: Path) -> CatalogConnection:
    """A read-only connection to the aifdata catalog at ``path`` (a backup, say)."""
    if not os.path.lexists(path):
        raise CatalogError(f"{path}: no such catalog file")
    refuse_empty(path)
    conn = _open(path, "opened read-only")
    conn.identity = file_identity(path)
    return conn


def refuse_empty(path: Path) -> None:
    """Raise NotACatalog for an empty file (what is in a non-empty one, SQLite says).

    The file is never opened here: closing any descriptor of a file drops every
    POSIX lock this process holds on it, those of its SQLite connections too.
    """
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise CatalogError(f"{path}: cannot open the catalog: {exc.strerror or exc}") from exc
    if size == 0:
        raise NotACatalog(
            f"{path}: not an aifdata catalog: an empty file (0 bytes), which no catalog ever"
            f" is; restore one with: aifdata catalog restore BACKUP --catalog {path}"
            " (or remove the file to start a new catalog)"
        )


def read_only_reason(path: Path) -> str:
    """Why this process should not write the catalog at ``path`` ("" if it may).

    A file without any write permission bit is read-only even for root, who could
    write it: its owner meant it so.
    """
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise CatalogError(f"{path}: cannot open the catalog: {exc.strerror or exc}") from exc
    if not mode & 0o222:
        return f"the file's mode is {stat.filemode(mode)}"
    if not os.access(path, os.W_OK):
        return "this user may not write the file"
    parent = path.absolute().parent
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"this user may not create files in {parent}, where SQLite keeps its journal"
    return ""


def _open(path: Path, read_only: str) -> CatalogConnection:
    """A connection to the SQLite file ``path``, checked to be an aifdata catalog.

    Never creates the file (``mode=rw`` or ``mode=ro``). Read-only, it falls back to
    ``immutable=1`` where SQLite cannot take its locks or make its shared memory
    (a WAL catalog in a directory it may not write), after checking that no journal
    holds writes the file does not have yet.
    """
    uri = "file:" + urllib.parse.quote(os.path.abspath(path))
    conn = _sqlite(path, uri + ("?mode=ro" if read_only else "?mode=rw"))
    try:
        recognise(conn, path)
    except sqlite3.OperationalError as exc:
        conn.close()
        if not read_only or _busy(exc):
            raise CatalogError(f"{path}: cannot open the catalog: {exc}") from exc
        refuse_pending_journal(path, read_only)
        conn = _sqlite(path, uri + "?mode=ro&immutable=1")
        try:
            recognise(conn, path)
        except BaseException:
            conn.close()
            raise
    except BaseException:
        conn.close()
        raise
    conn.path, conn.read_only = path, read_only
    return conn


def _sqlite(path: Path, uri: str) -> CatalogConnection:
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            factory=CatalogConnection,
        )
    except sqlite3.Error as exc:
        raise CatalogError(f"{path}: cannot open the catalog: {exc}") from exc
    conn.row_factory = sqlite3.Row
    conn.path = path
    return conn


def refuse_pending_journal(path: Path, read_only: str) -> None:
    """Raise unless every journal beside ``path`` is absent or empty: an immutable
    reader would not see what they hold."""
    for suffix in ("-wal", "-journal"):
        journal = Path(f"{path}{suffix}")
        with contextlib.suppress(OSError):
            if journal.stat().st_size > 0:
                raise CatalogError(
                    f"{path}: cannot be read here ({read_only}): {journal} holds writes"
                    " not yet in the catalog file; open the catalog once where it can be"
                    " written, so that SQLite merges them"
                )


def recognise(conn: sqlite3.Connection, path: Path) -> None:
    """Raise NotACatalog unless ``conn`` holds an aifdata catalog this aifdata can read."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = schema_version(conn)
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.OperationalError:
        raise  # locked, cannot open: not about what the file is
    except sqlite3.DatabaseError as exc:  # not a database after all, or a damaged one
        if exc.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            raise NotACatalog(f"{path}: not an aifdata catalog: not a SQLite file") from exc
        raise NotACatalog(
            f"{path}: not an aifdata catalog, or a damaged one ({exc}); aifdata catalog"
            f" restore BACKUP --catalog {path} --force replaces it"
        ) from exc
    if app_id != APPLICATION_ID and not (app_id == 0 and tables >= _CATALOG_TABLES):
        owner = f"application_id {app_id:#010x}" if app_id else "no application_id"
        listed = ", ".join(sorted(tables)[:6]) or "none"
        raise NotACatalog(
            f"{path}: not an aifdata catalog: a SQLite database of another kind"
            f" ({owner}, tables: {listed}); aifdata makes a catalog only where no file is"
        )
    if version > len(MIGRATIONS):
        raise CatalogError(
            f"{path}: catalog schema version {version} is newer than this aifdata"
            f" ({len(MIGRATIONS)}); upgrade aifdata to use it"
        )


def check_readable_schema(conn: CatalogConnection, path: Path | str) -> None:
    """A read-only catalog cannot be migrated: it must be at this aifdata's schema."""
    version = schema_version(conn)
    if version < len(MIGRATIONS):
        raise CatalogError(
            f"{path}: the catalog is read-only ({conn.read_only}) and was made by an older"
            f" aifdata (schema {version}, this one needs {len(MIGRATIONS)}); open it once"
            " where it can be written, so that it is upgraded"
        )


def _prepare(conn: CatalogConnection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    mode = journal_mode_for(path)
    _retry_locked(lambda: conn.execute(f"PRAGMA journal_mode = {mode}"))
    if mode == "wal":
        conn.execute("PRAGMA synchronous = NORMAL")
        if not is_network_filesystem(path.parent):
            # on a node-local disk processes queue to write on a lock file (._writer_lock)
            conn.lock_file = os.path.abspath(f"{path}{LOCK_SUFFIX}")
    with write_transaction(conn):
        initialise(conn)


def initialise(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date and mark the file as a catalog (in a transaction)."""
    if migrate(conn) < POLICY_SCHEMA:
        bootstrap_admin(conn)
    ensure_index(conn)
    if is_postgres(conn):
        return
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


# -- creating ----------------------------------------------------------------


def create(path: Path) -> None:
    """Make a new catalog at ``path``, whole, unless a file appeared there meanwhile.

    It is built under a temporary name in the same directory and linked into place
    (a link never replaces), so a catalog file is never empty or half-made, and of
    processes that make the same catalog at once, one wins and the others open it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot create the catalog: {exc.strerror or exc}") from exc
    parent = path.absolute().parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CatalogError(f"{path}: cannot create the catalog: this user may not write {parent}")
    temporary = temporary_name(path)
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)  # made as SQLite makes files
        try:
            with write_transaction(conn):
                initialise(conn)
        finally:
            conn.close()
        put_in_place(temporary, path, replace=False)
    except sqlite3.Error as exc:
        raise CatalogError(f"{path}: cannot create the catalog: {exc}") from exc
    except OSError as exc:
        raise CatalogError(f"{path}: cannot create the catalog: {exc.strerror or exc}") from exc
    finally:
        remove_with_journals(temporary)


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path`` for a file to be moved there whole, naming its owner
    (host, PID, start) as every aifdata temporary file does."""
    from ..connectors._atomic import temp_name

    return path.with_name(temp_name(path.name))


def remove_with_journals(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm", LOCK_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def put_in_place(source: Path, dest: Path, *, replace: bool) -> bool:
    """Move the finished file ``source`` to ``dest`` atomically; without ``replace``,
    only if nothing is there (True if it was moved)."""
    if replace:
        os.replace(source, dest)
    else:
        try:
            os.link(source, dest)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system (some FUSE and SMB mounts)
            if os.path.lexists(dest):
                return False
            os.rename(source, dest)  # a file made in this instant would be replaced
    fsync_directory(str(dest.parent))
    return True


# -- writing -----------------------------------------------------------------


def file_identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file ``path`` names now, None if none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def refuse_writes(conn: sqlite3.Connection) -> None:
    """Raise CatalogError, naming the file and why, if ``conn`` is read-only."""
    if getattr(conn, "read_only", ""):
        raise _read_only_error(conn)


def _read_only_error(conn: sqlite3.Connection) -> CatalogError:
    why = getattr(conn, "read_only", "")
    return CatalogError(
        f"{conn.path}: the catalog is read-only here ({why}); queries work, changes"  # type: ignore[attr-defined]
        " are refused"
    )


def check_same_file(conn: sqlite3.Connection, *, committed: bool = False) -> None:
    """Raise CatalogError if the catalog's path no longer names the file ``conn`` opened."""
    opened = getattr(conn, "identity", None)
    if opened is None:
        return
    path: Path = conn.path  # type: ignore[attr-defined]
    now = file_identity(path)
    if now == opened:
        return
    conn.stale = True  # type: ignore[attr-defined]
    what = "deleted" if now is None else "replaced by another file"
    outcome = (
        "what it wrote went to the old file and is lost"
        if committed
        else "nothing of it was recorded"
    )
    raise CatalogError(
        f"{path}: the catalog file was {what} while this command wrote to it; {outcome}"
    )


@contextlib.contextmanager
def _queued(conn: sqlite3.Connection) -> Iterator[None]:
    """Hold the writers' queue of the file ``conn`` opened (:mod:`._writer_lock`): this
    process's threads, and where the catalog keeps a write-ahead log, other processes;
    waiting at most the busy timeout (then SQLite decides, as without it)."""
    identity = getattr(conn, "identity", None)
    if identity is None:
        yield
        return
    with queued(identity, getattr(conn, "lock_file", None), BUSY_TIMEOUT_S):
        yield


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: all of it is written, or none of it.

    Refused on a read-only catalog; fails (rolled back) if the catalog's path no
    longer names the file opened, checked once the lock is held, before the commit
    and after it. On PostgreSQL: ``BEGIN`` and the catalog's advisory write lock.
    """
    refuse_writes(conn)
    if is_postgres(conn):
        with _postgres.write_transaction(conn):  # type: ignore[arg-type]
            yield conn
        return
    with _queued(conn), _named_errors(conn):
        _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            check_same_file(conn)
            yield conn
            check_same_file(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        check_same_file(conn, committed=True)


@contextlib.contextmanager
def _named_errors(conn: sqlite3.Connection) -> Iterator[None]:
    """SQLite's operational errors while writing, as CatalogError naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        path = getattr(conn, "path", None)
        if path is None:
            raise
        if exc.sqlite_errorcode == _SQLITE_READONLY_DBMOVED:
            conn.stale = True  # type: ignore[attr-defined]
            raise CatalogError(
                f"{path}: the catalog file was deleted or moved while this command wrote to"
                " it; nothing of it was recorded"
            ) from exc
        if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:  # SQLite decides
            conn.read_only = f"SQLite will not write it: {exc}"  # type: ignore[attr-defined]
            raise _read_only_error(conn) from exc
        raise CatalogError(f"{path}: cannot write the catalog: {exc}") from exc


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

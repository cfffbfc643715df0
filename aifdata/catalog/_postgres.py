"""PostgreSQL as the catalog: a site's shared catalog, named by a URL.

``Catalog("postgresql://user@host:5432/db")`` (or ``$AIFDATA_CATALOG``, or the
config's ``catalog = "postgresql://..."``) keeps the same tables in PostgreSQL.

Why psycopg 3 with hand-written SQL, and no ORM: the catalog's ~120 SQL sites
are plain SQL that both engines read alike, written for SQLite and tested there
for years. A thin adapter gives them what they use of :mod:`sqlite3` (``execute``
with ``?`` placeholders, rows read by index and by column name, ``executemany``,
``lastrowid``, the write transaction), so they stay as they are; the few
SQLite-isms get a second, PostgreSQL spelling beside the first (full-text
search, ``GLOB`` scopes, pragmas). An ORM or SQLAlchemy Core with Alembic would
mean rewriting every query and a second migration history to keep in step; here
the migrations in :mod:`._schema` are translated mechanically (``INTEGER`` ->
``BIGINT``, ``INTEGER PRIMARY KEY`` -> an identity, ``REAL`` -> ``DOUBLE
PRECISION``, ``TEXT`` -> ``TEXT COLLATE "C"`` so text sorts and compares by
code point as in SQLite), so one migration list serves both engines.

What each SQLite mechanism becomes:

* ``PRAGMA user_version`` -> the one row of ``aifdata_catalog`` (``schema_version``);
  its ``changes`` counter is bumped by every write transaction, and stands for
  ``PRAGMA data_version``. The cached policy follows ``policy_mark`` instead, as on
  SQLite, moved by statement triggers on what a policy is made of (see :mod:`._schema`):
  another process's grant is seen at the next check, its audit rows reload nothing.
* ``BEGIN IMMEDIATE`` -> ``BEGIN`` and ``pg_advisory_xact_lock``: writers queue one
  behind another as they do on SQLite, so each reads what the last one wrote.
* ``INSERT OR IGNORE`` / ``OR REPLACE`` -> ``ON CONFLICT`` on the table's primary key
  (read from the migrations); ``x IS ?`` -> ``IS NOT DISTINCT FROM``.
* FTS5 -> a ``tsvector`` per dataset (weights A-D for name, description, tags,
  formats) with a GIN index (see :mod:`._search`).
* The file-only features: backup and restore are ``pg_dump``/``pg_restore``'s job;
  a read-only catalog is a standby or a read-only session.

A catalog's URL is shown without its password everywhere (errors, ``repr``, audit).
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .._errors import CatalogError
from ._schema import META_TABLE, has_meta, table_keys
from ._schema import postgres_schema_version as schema_version

SCHEMES = ("postgresql://", "postgres://")
#: The key of the advisory lock every write transaction holds ("AIFD").
WRITE_LOCK = 0x41494644
#: Attempts at a write that PostgreSQL aborted as a deadlock or a serialization failure.
RETRIES = 5
_RETRY_STATES = {"40001", "40P01"}


def is_url(location: object) -> bool:
    """Whether a catalog location names a PostgreSQL database."""
    return isinstance(location, str) and location.startswith(SCHEMES)


def redacted(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password=`` option)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = "&".join(
        f"{k}=***" if k == "password" else f"{k}={urllib.parse.quote(v, safe='')}"
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _password(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    found = parts.password or dict(urllib.parse.parse_qsl(parts.query)).get("password")
    return urllib.parse.unquote(found) if found else None


# -- rows ----------------------------------------------------------------------


class Row(tuple):  # type: ignore[type-arg]
    """A result row read by index or by column name, like :class:`sqlite3.Row`."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}  # noqa: RUF012 (set per column list by _row_class)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    index = {name: i for i, name in enumerate(names)}
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": index})


def _named_rows(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(c.name for c in description))


# -- SQL: SQLite's spelling to PostgreSQL's ------------------------------------


_INSERT_OR = re.compile(r"^\s*INSERT OR (IGNORE|REPLACE) INTO (\w+)\s*(\(([^)]*)\))?", re.I)
_INSERT = re.compile(r"^\s*INSERT INTO (\w+)", re.I)


@functools.lru_cache(maxsize=1024)
def translate(sql: str, many: bool = False) -> tuple[str, bool]:
    """``sql`` as PostgreSQL reads it, and whether it returns the new row's ``id``.

    ``?`` becomes ``%s`` (outside quoted text), ``%`` is doubled, ``x IS ?`` compares
    NULLs as SQLite does, ``INSERT OR IGNORE/REPLACE`` become ``ON CONFLICT``; a
    single ``INSERT`` into a table with an identity ``id`` returns it (``lastrowid``).
    """
    suffix = ""
    found = _INSERT_OR.match(sql)
    if found:
        how, table, _, columns = found.groups()
        sql = sql[: found.start()] + f"INSERT INTO {table}" + sql[found.end(2) :]
        ignore = how.upper() == "IGNORE"
        suffix = " ON CONFLICT DO NOTHING" if ignore else _upsert(table, columns)
    sql = re.sub(r"\bIS \?", "IS NOT DISTINCT FROM ?", sql)
    out = _placeholders(sql) + suffix
    inserted = _INSERT.match(sql)
    identity = table_keys()[1].get(inserted.group(1)) if inserted is not None else None
    returns_id = not many and identity is not None and "RETURNING" not in sql.upper()
    return (out + f" RETURNING {identity}" if returns_id else out), returns_id


def _upsert(table: str, columns: str | None) -> str:
    key = table_keys()[0].get(table)
    if key is None or columns is None:
        raise CatalogError(f"INSERT OR REPLACE INTO {table}: name its columns and primary key")
    names = [c.strip() for c in columns.split(",")]
    rest = [c for c in names if c.strip('"') not in key]
    if not rest:
        return f" ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in rest)
    return f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def _placeholders(sql: str) -> str:
    out: list[str] = []
    quote = ""
    for char in sql:
        if char == "%":
            out.append("%%")
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append(char)
    return "".join(out)


def glob_condition(column: str, pattern: str) -> tuple[str, list[str]]:
    """``column GLOB pattern OR column GLOB pattern/*`` without LIKE's wildcards: an exact
    name or a prefix compares literally (a ``%`` or ``_`` in a name widens nothing)."""
    if pattern == "*":
        return "TRUE", []
    if not set(pattern) & set("*?["):
        below, values = _below(column, pattern + "/")
        return f"({column} = ? OR {below})", [pattern, *values]
    head = pattern[:-2]
    if pattern.endswith("/*") and not set(head) & set("*?["):
        return _below(column, head + "/")
    return f"{column} ~ ?", [f"^(?:{_glob_regex(pattern)})(?:/.*)?$"]


def _below(column: str, prefix: str) -> tuple[str, list[str]]:
    """``column`` starts with ``prefix`` (which ends in ``/``), as a range of the column's
    "C" collation (code point order), which its index answers: ``prefix`` up to, not
    including, ``prefix`` with its ``/`` made the next character, ``0``."""
    return f"({column} >= ? AND {column} < ?)", [prefix, prefix[:-1] + "0"]


def _glob_regex(pattern: str) -> str:
    """A glob as a PostgreSQL regular expression: ``*``, ``?``, ``[...]`` (``[!x]``
    negated); every other character literal."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        close = pattern.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif close > 0:
            inner = pattern[i + 1 : close]
            negated = inner[:1] in ("!", "^")
            body = re.sub(r"([\\\]\[^])", r"\\\1", inner[1:] if negated else inner)
            out.append(f"[{'^' if negated else ''}{body}]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


# -- the connection -----------------------------------------------------------


class Cursor:
    """What the catalog uses of a :class:`sqlite3.Cursor`, over a psycopg cursor."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cursor = conn.raw.cursor(row_factory=_named_rows)
        self.lastrowid: int | None = None

    @property
    def row_factory(self) -> Any:
        return self._cursor.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        from psycopg.rows import tuple_row

        self._cursor.row_factory = _named_rows if factory is not None else tuple_row

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        text, returns_id = translate(sql)
        if self._conn.trace is not None:
            self._conn.trace(sql)
        with self._conn.errors():
            self._cursor.execute(text, tuple(params))
            if returns_id:
                row = self._cursor.fetchone()
                self.lastrowid = None if row is None else int(row[0])
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        text, _ = translate(sql, many=True)
        rows = [tuple(r) for r in rows]
        if self._conn.trace is not None:
            for _ in rows:
                self._conn.trace(sql)
        with self._conn.errors():
            self._cursor.executemany(text, rows)
        return self

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def description(self) -> list[tuple[str, None, None, None, None, None, None]] | None:
        found = self._cursor.description
        if found is None:
            return None
        return [(c.name, None, None, None, None, None, None) for c in found]

    def fetchone(self) -> Any:
        if self._cursor.description is None:
            return None
        with self._conn.errors():
            return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._cursor.description is None:
            return []
        with self._conn.errors():
            return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._cursor.close()


class Connection:
    """What the catalog uses of a :class:`sqlite3.Connection`, over psycopg 3.

    Autocommit outside :func:`write_transaction` (each read sees every commit so far);
    ``path`` is the URL without its password.
    """

    dialect = "postgresql"

    def __init__(self, raw: Any, shown: str, secret: str | None) -> None:
        self.raw = raw
        self.path = shown
        self._secret = secret
        self.read_only = ""
        self.stale = False
        self.identity = None
        #: Write transactions this connection committed (SQLite's ``total_changes``).
        self.total_changes = 0
        self.trace: Callable[[str], object] | None = None
        #: Whether the catalog's own table is known to be there (it never goes away).
        self.made = False

    def set_trace_callback(self, trace: Callable[[str], object] | None) -> None:
        """Call ``trace`` with each statement run, as SQLite spells it (for tests)."""
        self.trace = trace

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return Cursor(self).execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        return Cursor(self).executemany(sql, rows)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Write many rows into ``table`` with ``COPY ... FROM STDIN`` (bulk ingest)."""
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with self.errors(), self.raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        """As :class:`sqlite3.Connection` outside a transaction it began: each statement
        was committed as it ran; an open transaction is committed, or rolled back on error."""
        if self.in_transaction:
            self.raw.execute("ROLLBACK" if error is not None else "COMMIT")

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """psycopg's errors as CatalogError naming the catalog (never its password)."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise DatabaseError(self.scrub(f"{self.path}: {exc}".strip()), exc) from exc

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


class DatabaseError(CatalogError):
    """An error PostgreSQL reported, with its SQLSTATE."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.sqlstate: str | None = getattr(cause, "sqlstate", None)


def connect(url: str) -> Connection:
    """A connection to the catalog database at ``url`` (schema not yet checked)."""
    try:
        import psycopg
    except ImportError as exc:
        raise CatalogError(
            f"{redacted(url)}: a PostgreSQL catalog needs psycopg: pip install aifdata[postgresql]"
        ) from exc
    secret = _password(url)
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=30)
    except psycopg.Error as exc:
        message = f"{redacted(url)}: cannot open the catalog: {exc}".strip()
        raise CatalogError(message.replace(secret, "***") if secret else message) from None
    return Connection(raw, redacted(url), secret)


def read_only_reason(conn: Connection) -> str:
    """Why this session may not write ("" if it may): a standby, or a read-only session."""
    standby, read_only = conn.execute(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
    ).fetchone()
    if standby:
        return "the server is a standby (in recovery)"
    if read_only == "on":
        return "the session is read-only (default_transaction_read_only)"
    return ""


# -- the catalog's own table ---------------------------------------------------


def is_current(conn: Connection, version: int) -> bool:
    """Whether the catalog is made, at ``version``, with its search index (nothing to do)."""
    if not has_meta(conn) or schema_version(conn) != version:
        return False
    return bool(conn.execute("SELECT to_regclass('search_document') IS NOT NULL").fetchone()[0])


def data_version(conn: Connection) -> int:
    """How many write transactions the catalog has committed (any process)."""
    row = conn.execute(f"SELECT changes FROM {META_TABLE}").fetchone()
    return int(row[0]) if row is not None else 0


def tables(conn: Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def column_types(conn: Connection, table: str) -> dict[str, str]:
    """A table's columns with SQLite's type names (INTEGER, REAL, TEXT)."""
    kinds = {"bigint": "INTEGER", "integer": "INTEGER", "double precision": "REAL"}
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    ).fetchall()
    return {name: kinds.get(kind, "TEXT") for name, kind in rows}


# -- writing -------------------------------------------------------------------


@contextlib.contextmanager
def write_transaction(conn: Connection) -> Iterator[Connection]:
    """One transaction holding the catalog's write lock: writers queue as on SQLite,
    each sees what the one before committed; the change counter moves at commit."""
    if conn.in_transaction:
        raise CatalogError(f"{conn.path}: a write transaction is already open on this connection")
    _begin_locked(conn)
    try:
        yield conn
        conn.made = conn.made or has_meta(conn)
        if conn.made:
            conn.execute(f"UPDATE {META_TABLE} SET changes = changes + 1")
    except BaseException:
        if conn.in_transaction:
            conn.raw.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    conn.total_changes += 1


def _begin_locked(conn: Connection) -> None:
    """BEGIN and take the write lock, again after a deadlock or serialization failure."""
    for attempt in range(RETRIES):
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            return
        except DatabaseError as exc:
            if conn.in_transaction:
                conn.raw.execute("ROLLBACK")
            if exc.sqlstate not in _RETRY_STATES or attempt == RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _try_lock(conn: Connection) -> bool:
    return bool(conn.execute("SELECT pg_try_advisory_xact_lock(?)", (WRITE_LOCK,)).fetchone()[0])


def write_briefly(conn: Connection, write: Callable[[Connection], None], wait: float) -> bool:
    """Run ``write`` in a transaction of its own if the write lock comes within ``wait``
    seconds; False when it did not or the write failed."""
    if conn.in_transaction or conn.read_only:
        return False
    deadline = time.monotonic() + wait
    try:
        conn.execute("BEGIN")
        try:
            while not conn.execute("SELECT pg_try_advisory_xact_lock(?)", (WRITE_LOCK,)).fetchone()[
                0
            ]:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
            write(conn)
            conn.execute(f"UPDATE {META_TABLE} SET changes = changes + 1")
            conn.execute("COMMIT")
            conn.total_changes += 1
        finally:
            if conn.in_transaction:
                conn.raw.execute("ROLLBACK")
    except CatalogError:
        return False
    return True

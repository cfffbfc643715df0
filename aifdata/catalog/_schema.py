"""The catalog's tables, and the migrations that build them (``PRAGMA user_version``).

The migrations are written once, in SQL both engines read (``TEXT``, ``INTEGER``,
``REAL``, ``INTEGER PRIMARY KEY``; a reserved word such as ``"user"`` quoted); on
PostgreSQL :func:`postgres_ddl` translates their types mechanically. A migration is a
script split on ``;``, or a :class:`Whole` of whole statements with each engine's own
beside the common ones (triggers: SQLite's row triggers, PostgreSQL's plpgsql function).

Tables (the Parquet export keeps the same names and columns):

``datasets``   id, name (unique, e.g. ``genomics/run42``), description, owner, created
``tags``       dataset_id, key, value
``versions``   id, dataset_id, number (1, 2, ...), source, created, file_count, total_bytes,
               digest (sha256 over the sorted (path, size, checksum) rows: equal data, equal digest)
``files``      id, version_id, path (relative to the version's source), size,
               checksum (``sha256:<hex>``), format, mtime, etag
``replicas``   file_id, tier, url, size, checksum, mtime, etag, recorded; for a local (PFS) copy
               what ``os.utime`` cannot set back: inode, device, ctime_ns (as of the last
               hash); checked (when its bytes were last hashed), bad (why a hash or a scrub
               found other bytes than the checksum: routing skips the copy; NULL when good)
``search_text`` dataset_id, name, description, tags ("k=v ..."), formats (of the latest version);
               mirrored into the FTS5 table ``search_fts`` where SQLite has FTS5
``grants``     principal (``user:NAME``, ``group:NAME`` or ``*``), privilege (read, write, admin),
               pattern (a dataset name or glob, e.g. ``genomics/*``), granted_by, created
``admins``     principal, created (catalog administrators: every privilege everywhere;
               the user who created the catalog is the first)
``audit``      id, time, principal, action (ls, open, grant, ...), target, privilege,
               resource (the dataset or path the decision was about), allowed (0 or 1)
``runs``       id, run_id (a UUID), job, user, script, git_commit, params (JSON),
               started, ended, state (RUNNING, COMPLETE, FAIL), error (of a failed run)
``run_datasets`` run_id (runs.id), role (input or output), version_id
``tokens``     API tokens of ``aifdata serve``: id (public, in the token's text), secret_hash
               (SHA-256 of the secret: the secret itself is never stored), principal
               (``user:NAME``), member_of (its groups, comma-separated), label, created_by,
               created, expires (NULL: never), revoked (NULL: live)
``overwrites`` one row: how many recorded copies were written over through ``aif://``
               (routes known in memory are forgotten when it moves)
``policy_mark`` one row: changes (a counter) and nonce (a random number), both moved by
               triggers whenever a row of what the cached policy holds changes (grants,
               admins, datasets' names and owners, versions' sources; see
               :data:`POLICY_SOURCES`): a thread keeps its loaded policy while the row
               is the same. The nonce makes a restored catalog's mark differ from any
               mark read before the restore, where the counter alone could repeat.
``upload_commits`` upload_id, token (the claiming request's), committer, started,
               version (NULL while it is being committed): an upload of ``aifdata
               serve`` is committed by one request of one worker process at a time, once
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from .._errors import CatalogError


@dataclass(frozen=True)
class Whole:
    """A migration of whole statements, never split on ``;`` (a trigger's body holds
    some): ``both`` in either engine (on PostgreSQL translated by :func:`postgres_ddl`),
    then each engine's own statements, run as written."""

    both: tuple[str, ...] = ()
    sqlite: tuple[str, ...] = ()
    postgresql: tuple[str, ...] = ()


#: What :func:`._policy.load_policy` reads: each table, and the columns whose updates
#: change a policy (empty: any column). A write to any of them moves ``policy_mark``.
POLICY_SOURCES: dict[str, tuple[str, ...]] = {
    "grants": (),
    "admins": (),
    "datasets": ("name", "owner"),
    "versions": ("dataset_id", "source"),
}

#: The one SQL that moves the mark (the nonce: any 64-bit number but the last one).
_MOVE_MARK_SQLITE = "UPDATE policy_mark SET changes = changes + 1, nonce = random()"
#: PostgreSQL's ``random()`` is a double: 53 random bits make the nonce.
_RANDOM_PG = "floor(random() * 9007199254740992)::bigint"


def _sqlite_policy_triggers() -> tuple[str, ...]:
    """Row triggers (all SQLite has) moving the mark after each write to a policy source."""
    made = []
    for table, columns in POLICY_SOURCES.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        for name, event in (("insert", "INSERT"), ("update", update), ("delete", "DELETE")):
            made.append(
                f"CREATE TRIGGER policy_mark_{table}_{name} AFTER {event} ON {table}"
                f" BEGIN {_MOVE_MARK_SQLITE}; END"
            )
    return tuple(made)


def _postgresql_policy_triggers() -> tuple[str, ...]:
    """One function and a statement trigger per policy source (a bulk write moves the
    mark once). The function names the table's own schema: a catalog is one schema."""
    function = (
        "CREATE OR REPLACE FUNCTION aifdata_policy_changed() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN"
        " EXECUTE 'UPDATE ' || quote_ident(TG_TABLE_SCHEMA) || '.policy_mark"
        f" SET changes = changes + 1, nonce = {_RANDOM_PG}';"
        " RETURN NULL; END $$"
    )
    made = [function]
    for table, columns in POLICY_SOURCES.items():
        update = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
        made.append(
            f"CREATE TRIGGER policy_mark_{table} AFTER INSERT OR {update} OR DELETE OR TRUNCATE"
            f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION aifdata_policy_changed()"
        )
    return tuple(made)


MIGRATIONS: tuple[str | Whole, ...] = (
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
    """
    CREATE TABLE grants (
        principal   TEXT NOT NULL,
        privilege   TEXT NOT NULL CHECK (privilege IN ('read', 'write', 'admin')),
        pattern     TEXT NOT NULL,
        granted_by  TEXT NOT NULL,
        created     REAL NOT NULL,
        PRIMARY KEY (principal, privilege, pattern)
    );
    CREATE TABLE admins (
        principal   TEXT PRIMARY KEY,
        created     REAL NOT NULL
    );
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        time        REAL NOT NULL,
        principal   TEXT NOT NULL,
        action      TEXT NOT NULL,
        target      TEXT NOT NULL,
        privilege   TEXT NOT NULL,
        resource    TEXT NOT NULL,
        allowed     INTEGER NOT NULL
    );
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL UNIQUE,
        job         TEXT NOT NULL,
        "user"      TEXT NOT NULL,
        script      TEXT,
        git_commit  TEXT,
        params      TEXT NOT NULL DEFAULT '{}',
        started     REAL NOT NULL,
        ended       REAL,
        state       TEXT NOT NULL,
        error       TEXT
    );
    CREATE TABLE run_datasets (
        run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        role        TEXT NOT NULL CHECK (role IN ('input', 'output')),
        version_id  INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
        PRIMARY KEY (run_id, role, version_id)
    );
    CREATE INDEX run_datasets_by_version ON run_datasets(version_id, role)
    """,
    """
    ALTER TABLE replicas ADD COLUMN inode INTEGER;
    ALTER TABLE replicas ADD COLUMN device INTEGER;
    ALTER TABLE replicas ADD COLUMN ctime_ns INTEGER;
    ALTER TABLE replicas ADD COLUMN checked REAL;
    ALTER TABLE replicas ADD COLUMN bad TEXT
    """,
    """
    ALTER TABLE replicas ADD COLUMN last_access REAL;
    CREATE TABLE pins (
        dataset_id  INTEGER PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,
        pinned_by   TEXT NOT NULL,
        created     REAL NOT NULL
    );
    CREATE TABLE tier_metrics (
        dataset     TEXT NOT NULL,
        tier        TEXT NOT NULL,
        name        TEXT NOT NULL,
        value       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (dataset, tier, name)
    )
    """,
    """
    CREATE TABLE overwrites (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        count       INTEGER NOT NULL
    );
    INSERT INTO overwrites (id, count) VALUES (1, 0)
    """,
    """
    CREATE TABLE tokens (
        id          TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        principal   TEXT NOT NULL,
        member_of   TEXT NOT NULL DEFAULT '',
        label       TEXT NOT NULL DEFAULT '',
        created_by  TEXT NOT NULL,
        created     REAL NOT NULL,
        expires     REAL,
        revoked     REAL
    );
    CREATE INDEX tokens_by_principal ON tokens(principal)
    """,
    Whole(
        both=(
            """
            CREATE TABLE policy_mark (
                id          INTEGER PRIMARY KEY CHECK (id = 1),
                changes     INTEGER NOT NULL,
                nonce       INTEGER NOT NULL
            )
            """,
        ),
        sqlite=(
            "INSERT INTO policy_mark (id, changes, nonce) VALUES (1, 0, random())",
            *_sqlite_policy_triggers(),
        ),
        postgresql=(
            f"INSERT INTO policy_mark (id, changes, nonce) VALUES (1, 0, {_RANDOM_PG})",
            *_postgresql_policy_triggers(),
        ),
    ),
    """
    CREATE TABLE upload_commits (
        upload_id   TEXT PRIMARY KEY,
        token       TEXT NOT NULL,
        committer   TEXT NOT NULL,
        started     REAL NOT NULL,
        version     INTEGER
    );
    CREATE INDEX datasets_by_owner ON datasets(owner)
    """,
)


def statements(migration: str | Whole, postgres: bool) -> list[str]:
    """The statements of one migration, as the engine runs them."""
    if isinstance(migration, Whole):
        both = [postgres_ddl(s) if postgres else s for s in migration.both]
        return both + list(migration.postgresql if postgres else migration.sqlite)
    return [postgres_ddl(s) if postgres else s for s in migration.split(";") if s.strip()]


def _text(migration: str | Whole) -> str:
    """The SQL of a migration that both engines read (where its tables are made)."""
    return ";\n".join(migration.both) if isinstance(migration, Whole) else migration


# -- PostgreSQL: the same migrations, translated; the version in a table -------------

#: The table that marks a PostgreSQL database as an aifdata catalog: its schema version,
#: and a counter every write transaction moves (SQLite's ``PRAGMA data_version``).
META_TABLE = "aifdata_catalog"


def postgres_ddl(statement: str) -> str:
    """A migration statement written for SQLite in PostgreSQL's types (mechanical)."""
    statement = re.sub(
        r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", statement
    )
    statement = re.sub(r"\bINTEGER\b", "BIGINT", statement)
    statement = re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', statement)


@functools.lru_cache(maxsize=1)
def table_keys() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Each table's primary key, and each table's identity column (an ``INTEGER PRIMARY
    KEY``: SQLite's rowid, whose new value ``lastrowid`` gives), as the migrations
    declare them."""
    keys: dict[str, tuple[str, ...]] = {}
    identities: dict[str, str] = {}
    for migration in MIGRATIONS:
        for table, items in _created_tables(_text(migration)):
            for item in items:
                composite = re.match(r"PRIMARY KEY\s*\(([^)]*)\)", item, re.I)
                if composite:
                    keys[table] = tuple(c.strip().strip('"') for c in composite.group(1).split(","))
                    continue
                column = re.match(r'"?(\w+)"?\s+(\w+)\s+PRIMARY KEY\b', item, re.I)
                if column:
                    keys[table] = (column.group(1),)
                    if column.group(2).upper() == "INTEGER":
                        identities[table] = column.group(1)
    return keys, identities


def _created_tables(script: str) -> list[tuple[str, list[str]]]:
    """(table, its column and constraint items) of each ``CREATE TABLE`` in ``script``."""
    found = []
    pattern = r"CREATE TABLE (?:IF NOT EXISTS )?\"?(\w+)\"?\s*\("
    for match in re.finditer(pattern, script, re.I):
        depth, start, items = 1, match.end(), []
        for at in range(match.end(), len(script)):
            char = script[at]
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            if (char == "," and depth == 1) or depth == 0:
                items.append(script[start:at].strip())
                start = at + 1
            if depth == 0:
                break
        found.append((match.group(1), items))
    return found


def ensure_meta(conn: Any) -> None:
    """Make ``aifdata_catalog`` (schema version, change counter) where it is missing."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {META_TABLE} ("
        " singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),"
        " schema_version INTEGER NOT NULL, changes BIGINT NOT NULL)"
    )
    conn.execute(
        f"INSERT INTO {META_TABLE} (schema_version, changes) VALUES (0, 0) ON CONFLICT DO NOTHING"
    )


def has_meta(conn: Any) -> bool:
    return bool(conn.execute("SELECT to_regclass(?) IS NOT NULL", (META_TABLE,)).fetchone()[0])


def postgres_schema_version(conn: Any) -> int:
    if not has_meta(conn):
        return 0
    return int(conn.execute(f"SELECT schema_version FROM {META_TABLE}").fetchone()[0])


def set_schema_version(conn: Any, number: int) -> None:
    conn.execute(f"UPDATE {META_TABLE} SET schema_version = ?", (number,))


def schema_version(conn: sqlite3.Connection) -> int:
    if is_postgres(conn):
        return postgres_schema_version(conn)
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def is_postgres(conn: object) -> bool:
    """Whether ``conn`` is a PostgreSQL catalog connection (else SQLite)."""
    return getattr(conn, "dialect", "sqlite") == "postgresql"


#: The first schema version with grants (its migration makes the migrating user an admin).
POLICY_SCHEMA = 3


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this catalog is missing (inside the caller's transaction).

    Returns the schema version the catalog had before.
    """
    postgres = is_postgres(conn)
    if postgres:
        ensure_meta(conn)
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise CatalogError(
            f"catalog schema version {current} is newer than this aifdata ({len(MIGRATIONS)})"
        )
    for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        for statement in statements(migration, postgres):
            conn.execute(statement)
        if postgres:
            set_schema_version(conn, number)
        else:
            conn.execute(f"PRAGMA user_version = {number}")
    return current

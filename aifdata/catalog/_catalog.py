"""The catalog: datasets, their immutable versions, files and replicas."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

import aifdata.catalog._postgres as _postgres

from .._config import Config, aifdata_home, load_config
from .._errors import AccessDenied, BadName, CatalogError, ConfigError, NotFound, UnknownDataset
from .._filesystem import MountedFileSystem
from .._gc import gc_paused
from .._router import ReplicaRecord
from .._urls import resolve_url
from ..connectors import FileStat, join
from ._bulk import insert_files
from ._gate import CatalogGate
from ._group_commit import GroupCommit
from ._ingest import SourceFile, scan
from ._lineage import (
    LineageNode,
    RunRecord,
    add_dataset,
    finish_run,
    graph,
    redact,
    run_record,
    runs_touching,
    start_run,
    version_id,
)
from ._pins import Pin, add_pin, pins, remove_pin
from ._policy import (
    Grant,
    Policy,
    Principal,
    Resource,
    _ancestors,
    check_dataset_name,
    check_pattern,
    check_privilege,
    covers,
    current_principal,
    current_user,
    load_policy,
    parse_principal,
    physical_prefixes,
    read_scope,
)
from ._records import Dataset, FileRecord, StageReport
from ._search import SearchHit, reindex, search
from ._stage import stage_version
from ._store import (
    NotACatalog,
    catalog_opened,
    connect,
    data_version,
    refuse_writes,
    write_transaction,
)
from ._verify import (
    VerifyReport,
    check_tier,
    local_directories,
    mark_hashed,
    record_copy,
    remove_stale,
    replicas_of,
    scrub,
    write_briefly,
)

#: Names the catalog that ``Catalog()`` opens: a SQLite file, a PostgreSQL database
#: (``postgresql://...``), or a Parquet snapshot (a directory, or an ``s3://`` or
#: ``aif://`` prefix), as a cluster's workers are given it.
CATALOG_VARIABLE = "AIFDATA_CATALOG"


def is_snapshot(location: str) -> bool:
    """Whether a catalog location names a Parquet snapshot (a directory or a URL)."""
    if _postgres.is_url(location):
        return False
    return "://" in location or Path(location).expanduser().is_dir()


def named_catalog() -> str | None:
    """``$AIFDATA_CATALOG``, checked: an error names it when it names nothing."""
    named = os.environ.get(CATALOG_VARIABLE)
    if not named:
        return None
    if "://" not in named and not os.path.lexists(Path(named).expanduser()):
        raise NotFound(
            f"${CATALOG_VARIABLE} names {named}, which does not exist (a catalog file, or a"
            " snapshot directory written by aifdata export)"
        )
    return named


_INSERT_AUDIT = (
    "INSERT INTO audit (time, principal, action, target, privilege, resource, allowed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

#: Mount tables whose policy each thread keeps (a service's catalog and filesystem: two).
_POLICIES_PER_THREAD = 4


class Catalog:
    """The catalog: one SQLite file, ``$AIFDATA_HOME/catalog.db`` by default, or a
    PostgreSQL database named by a ``postgresql://`` URL (a site's shared catalog).

    ``$AIFDATA_CATALOG`` changes the default, then the config's ``catalog`` setting:
    a catalog file, a PostgreSQL URL, or a Parquet snapshot (``aifdata export``),
    read-only, for workers without the file. ``path`` is then the URL without its
    password.
    """

    path: Path | str

    def __init__(self, path: str | os.PathLike[str] | None = None, config: Config | None = None):
        named = None
        self._config = config
        if path is None:
            named = named_catalog() or self._configured()
            if named is None:
                path = aifdata_home() / "catalog.db"
            elif _postgres.is_url(named):
                path = named
            else:
                path = Path(named).expanduser()
        self._url = str(path) if _postgres.is_url(path) else None
        self.path = _postgres.redacted(self._url) if self._url else Path(path)
        self._local = threading.local()
        self._snapshot: sqlite3.Connection | None = None  # set by from_parquet
        self._audit_rows = os.getpid(), GroupCommit(self._write_audit)
        if named is not None and is_snapshot(named):
            self._load_snapshot(named)

    def _configured(self) -> str | None:
        """The config's ``catalog`` setting (a broken config is reported where it is used)."""
        try:
            return self.config.catalog
        except ConfigError:
            return None

    @property
    def location(self) -> Path | str:
        """Where the catalog is: its file, or its full PostgreSQL URL (password too)."""
        return self._url or self.path

    @property
    def is_postgres(self) -> bool:
        return self._url is not None

    def exists(self) -> bool:
        """Whether the catalog is there to open: its file (or snapshot) exists; a
        PostgreSQL catalog is the server's to keep, so it always counts as there."""
        return self._url is not None or os.path.lexists(self.path)

    @classmethod
    def from_parquet(cls, source: str, config: Config | None = None) -> Catalog:
        """A read-only catalog from a Parquet snapshot (a directory, ``s3://`` or ``aif://``)."""
        catalog = cls(Path(source), config=config)
        catalog._load_snapshot(source)
        return catalog

    def _load_snapshot(self, source: str) -> None:
        from ._parquet import load

        fs, root = resolve_url(source, self.config)
        self._snapshot = load(fs, root)

    @property
    def read_only(self) -> bool:
        """True for a Parquet snapshot, and for a catalog file this process may not write
        (its mode, its directory, a read-only mount): queries work, changes are refused."""
        return self._snapshot is not None or bool(self.conn.read_only)  # type: ignore[attr-defined]

    def export(self, dest: str) -> list[str]:
        """Write the catalog's tables as Parquet under ``dest``; return the files written."""
        from ._parquet import export

        self.require_admin("export", dest)
        fs, root = self.open_url(dest)
        return export(self.conn, fs, root)

    def _writable(self) -> None:
        if self._snapshot is not None:
            raise CatalogError(f"{self.path}: a Parquet snapshot is read-only")
        refuse_writes(self.conn)  # before any work: names the file and why

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._snapshot is not None:
            return Catalog.from_parquet, (str(self.path), self._config)
        return Catalog, (self.location, self._config)

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
        if getattr(local, "conn", None) is not None and local.conn.stale:
            local.conn.close()  # the path names another file now (restored, replaced)
            local.conn = None
        if getattr(local, "conn", None) is None or local.pid != os.getpid():
            local.conn, local.pid = connect(self.location), os.getpid()
            catalog_opened()  # aif:// filesystems that found no catalog look again
        conn: sqlite3.Connection = local.conn
        return conn

    def close(self) -> None:
        if getattr(self._local, "conn", None) is not None:
            self._local.conn.close()
            self._local.conn = None

    def open_url(self, url: str) -> tuple[AbstractFileSystem, str]:
        """The filesystem and path of ``url``; ``aif://`` is governed by this catalog.

        A URL inside a mounted tier of a kind that has no filesystem of its own outside
        mounts (``fsspec``, a third party's) is read through ``aif://``, so what is
        recorded are the tier's own URLs, which routing and staging find again.
        """
        located = self.config.tier_at(url) if "://" in url else None
        if located is not None and not (located[1].local or located[1].storage_kind.direct):
            mount, _tier, rel = located
            url = "aif://" + join(mount.prefix, rel)
        if url.startswith("aif://"):
            fs = self.filesystem()
            return fs, fs._strip_protocol(url)
        return resolve_url(url, self.config)

    def filesystem(self, config: Config | None = None) -> MountedFileSystem:
        """An ``aif://`` filesystem whose reads route by this catalog's replicas and whose
        every request passes its grants."""
        config = config or self.config
        return MountedFileSystem(config, gate=self.gate(config), records=self.replica_records)

    # -- access policies -----------------------------------------------------

    def gate(self, config: Config | None = None) -> CatalogGate:
        """The access gate of ``aif://`` filesystems governed by this catalog."""
        return CatalogGate(self, config or self.config)

    def generation(self, max_age: float = 0.0) -> tuple[int, int, int]:
        """A mark that changes whenever anyone commits to the catalog (compare two
        marks of the same thread only: each thread has its own connection). The
        policy follows the narrower :meth:`policy_mark`.

        ``max_age`` (seconds) lets a caller take what this thread asked SQLite that
        recently about other connections' commits (a read's own access check, a
        moment before); this connection's own commits always count. On PostgreSQL the
        mark is the catalog's change counter, which every write transaction moves."""
        conn = self.conn
        local = self._local
        now = time.monotonic()
        asked = getattr(local, "data_version", None)
        if asked is None or asked[0] is not conn or now - asked[2] > max_age:
            version = data_version(conn)
            local.data_version = asked = (conn, version, now)
        return id(conn), asked[1], conn.total_changes

    def policy_mark(self) -> tuple[int, int, int]:
        """A mark that changes whenever something the policy is made of changes (grants,
        admins, datasets, their versions' locations), by any process; an audit row or
        any other write leaves it. One row read by its key (``policy_mark``, moved by
        triggers); a connection opened anew (the file restored or replaced) is a new mark."""
        conn = self.conn
        row = conn.execute("SELECT changes, nonce FROM policy_mark WHERE id = 1").fetchone()
        return id(conn), int(row[0]), int(row[1])

    def policy(self, config: Config | None = None) -> Policy:
        """Grants, admins and dataset locations as of now (cached until they change, for
        each mount table asked about: a service's catalog and filesystem have one each)."""
        config = config or self.config
        mark = self._held_mark() or self.policy_mark()
        cache: dict[int, tuple[Config, tuple[int, int, int], Policy]] | None
        cache = getattr(self._local, "policies", None)
        if cache is None:
            cache = self._local.policies = {}
        entry = cache.get(id(config))
        if entry is None or entry[0] is not config or entry[1] != mark:
            if entry is None and len(cache) >= _POLICIES_PER_THREAD:
                cache.clear()
            entry = cache[id(config)] = (config, mark, load_policy(self.conn, config))
        return entry[2]

    @contextlib.contextmanager
    def one_policy(self) -> Iterator[None]:
        """Within it, this thread reads the policy mark once, not at every check (a
        request sees the grants as they were when it began), and again after each write
        of its own (which may be what changed them). Nested: the outermost holds."""
        local = self._local
        if getattr(local, "held_mark", None) is not None:
            yield
            return
        local.held_mark = self._mark_held_from(self.conn)
        try:
            yield
        finally:
            local.held_mark = None

    def _held_mark(self) -> tuple[int, int, int] | None:
        held = getattr(self._local, "held_mark", None)
        if held is None:
            return None
        conn = self.conn
        if conn.in_transaction:  # a write's own checks see what others committed before it
            return None
        if held[0] is not conn or held[1] != conn.total_changes:
            held = self._local.held_mark = self._mark_held_from(conn)
        mark: tuple[int, int, int] = held[2]
        return mark

    def _mark_held_from(self, conn: sqlite3.Connection) -> tuple[Any, int, tuple[int, int, int]]:
        """What :meth:`one_policy` holds: the connection, its own writes so far, the mark."""
        return conn, conn.total_changes, self.policy_mark()

    def require(self, name: str, privilege: str, action: str) -> None:
        """Raise AccessDenied (audited) unless the current principal may act on dataset ``name``.

        A name the principal may not read is refused as :class:`UnknownDataset`, with the
        text a name that does not exist gets: the refusal does not tell which it is.
        """
        policy, who = self.policy(), current_principal()
        resource = policy.dataset(name)
        if not policy.allows(who, privilege, resource):
            if not policy.may_see(who, resource) and action != "ingest":
                self.record_audit(who, action, name, privilege, name, allowed=False)
                raise self._unknown(name, who)
            self._deny(who, action, name, privilege, resource)

    def _unknown(self, name: str, who: Principal | None = None) -> UnknownDataset:
        """The one refusal for a dataset that does not exist and one ``who`` may not read."""
        who = who or current_principal()
        return UnknownDataset(f"no dataset {name!r} in {self.path} that {who} may read")

    def require_admin(self, action: str, target: str) -> None:
        """Raise AccessDenied (audited) unless the current principal is a catalog admin."""
        who = current_principal()
        if not self.policy().is_admin(who):
            self._deny(who, action, target, "admin", Resource(_CATALOG))

    def _deny(
        self, who: Principal, action: str, target: str, privilege: str, resource: Resource
    ) -> None:
        self.record_audit(who, action, target, privilege, resource.name, allowed=False)
        # a dataset is named as one (with its owner) only to whom may read it: to anyone
        # else a hidden dataset and a name no dataset has are refused in the same words
        seen = resource.dataset and self.policy().may_see(who, resource)
        if resource.name == _CATALOG:  # no grant makes a catalog admin
            hint = "a catalog admin can make them one with: "
            hint += f"aifdata.Catalog().add_admin({str(who)!r})"
        else:
            hint = "an admin can allow it with: "
            hint += f"aifdata policy grant {who} {privilege} {resource.name}"
        raise AccessDenied(
            f"{who} may not {privilege} {resource.describe() if seen else resource.name} "
            f"({action} {target}); {hint}"
        )

    def record_audit(
        self,
        who: Principal,
        action: str,
        target: str,
        privilege: str,
        resource: str,
        *,
        allowed: bool,
    ) -> None:
        """Append one decision to the audit table (not kept by a read-only catalog)."""
        if self.read_only:
            return
        row = (time.time(), str(who), action, target, privilege, resource, int(allowed))
        if self.conn.in_transaction:  # inside this thread's own write: a row of it
            self.conn.execute(_INSERT_AUDIT, row)
            return
        pid, rows = self._audit_rows
        if pid != os.getpid():  # forked: the parent's waiting threads are not here
            self._audit_rows = pid, rows = os.getpid(), GroupCommit(self._write_audit)
        rows.append(row)  # with the rows other threads record now, in one transaction

    def _write_audit(self, rows: Sequence[tuple[Any, ...]]) -> None:
        conn = self.conn
        before = conn.total_changes
        with write_transaction(conn):
            conn.executemany(_INSERT_AUDIT, rows)
        held = getattr(self._local, "held_mark", None)
        if held is not None and held[0] is conn and held[1] == before:
            # audit rows change no policy: a request's refusal is no reason to look again
            self._local.held_mark = (conn, conn.total_changes, held[2])

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit rows first (admins only)."""
        self.require_admin("audit", "audit")
        rows = self.conn.execute(
            "SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [dict(r) for r in rows]

    def grant(self, principal: str, privilege: str, pattern: str) -> Grant:
        """Let ``principal`` (``user:NAME``, ``group:NAME``, ``*``) ``privilege`` ``pattern``.

        Needs admin on the pattern: a catalog admin, the owner of the dataset
        it names, or an admin grant that covers it.
        """
        self._writable()
        principal = parse_principal(principal)
        check_privilege(privilege)
        check_pattern(pattern)
        self._require_admin_on(pattern, "grant")
        who, now = current_principal(), time.time()
        with write_transaction(self.conn) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO grants (principal, privilege, pattern, granted_by, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (principal, privilege, pattern, str(who), now),
            )
            _audit_row(conn, who, "grant", f"{principal} {privilege}", privilege, pattern)
        return Grant(principal, privilege, pattern, str(who), now)

    def revoke(self, principal: str, privilege: str, pattern: str) -> None:
        """Remove a grant; NotFound if there is no such grant."""
        self._writable()
        principal = parse_principal(principal)
        check_privilege(privilege)
        self._require_admin_on(pattern, "revoke")
        who = current_principal()
        with write_transaction(self.conn) as conn:
            gone = conn.execute(
                "DELETE FROM grants WHERE principal = ? AND privilege = ? AND pattern = ?",
                (principal, privilege, pattern),
            ).rowcount
            if gone:
                _audit_row(conn, who, "revoke", f"{principal} {privilege}", privilege, pattern)
        if not gone:
            raise NotFound(f"no grant of {privilege} on {pattern!r} to {principal}")

    def _require_admin_on(self, pattern: str, action: str) -> None:
        policy, who = self.policy(), current_principal()
        resource = policy.dataset(pattern)
        if not policy.allows(who, "admin", resource, strict=True):
            self._deny(who, action, pattern, "admin", resource)

    def grants(self, pattern: str | None = None) -> list[Grant]:
        """Grants (those whose pattern covers ``pattern`` if given), by pattern.

        Only the grants the principal administers: those on a pattern they may admin, or
        whose pattern covers a dataset they may admin (catalog admins see every grant).
        """
        policy, who = self.policy(), current_principal()
        found = policy.grants
        if pattern is not None:
            found = tuple(g for g in found if covers(g.pattern, pattern) or g.pattern == pattern)
        if policy.is_admin(who):
            return list(found)
        mine = [n for n in policy.owners if policy.allows(who, "admin", policy.dataset(n))]

        def administered(g: Grant) -> bool:
            if policy.allows(who, "admin", policy.dataset(g.pattern), strict=True):
                return True
            return any(covers(g.pattern, name) for name in mine)

        return [g for g in found if administered(g)]

    def datasets_at(self, url: str) -> list[str]:
        """Every dataset whose location holds ``url`` (a physical URL or path), innermost
        first: by every spelling its storage kind knows (a symlink is also its target), on
        every tier of its mount. A request there needs the privilege on each of them."""
        found = self.policy().located_all(url, physical_prefixes(url, self.config))
        return [r.name for r in found if r.dataset]

    def require_at(self, url: str, privilege: str, action: str) -> list[str]:
        """Raise AccessDenied (audited) unless the current principal may ``privilege`` every
        dataset holding ``url`` (a physical URL or path); return those datasets.

        A dataset the principal may not read is not named: the refusal says that a dataset
        they may not see governs the place, as ``aif://`` refusals do.
        """
        names = self.datasets_at(url)
        policy, who = self.policy(), current_principal()
        for name in names:
            resource = policy.dataset(name)
            if policy.allows(who, privilege, resource):
                continue
            self.record_audit(who, action, url, privilege, name, allowed=False)
            if policy.may_see(who, resource):
                hint = f"an admin can allow it with: aifdata policy grant {who} {privilege} {name}"
            else:
                hint = "a catalog admin finds which one in: aifdata policy audit"
            raise AccessDenied(
                f"{who} may not {privilege} {url}: {policy.shown(who, resource)}; {hint}"
            )
        return names

    def admins(self) -> list[str]:
        """The catalog's admins."""
        return sorted(self.policy().admins)

    def add_admin(self, principal: str) -> None:
        """Make ``principal`` a catalog admin (admins only)."""
        self._writable()
        self.require_admin("add-admin", principal)
        principal = parse_principal(principal)
        with write_transaction(self.conn) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO admins (principal, created) VALUES (?, ?)",
                (principal, time.time()),
            )
            _audit_row(conn, current_principal(), "add-admin", principal, "admin", _CATALOG)

    def s3_bucket_policies(self, account: str | None = None) -> dict[str, dict[str, Any]]:
        """The grants as S3 bucket policies, one document per bucket (admins only)."""
        from ._s3_policy import bucket_policies

        self.require_admin("policy-export", "s3")
        return bucket_policies(self.policy(), self.config, account)

    # -- the file ------------------------------------------------------------

    def backup(self, dest: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Copy the catalog to ``dest`` with SQLite's online backup (writers go on), whole
        or not at all; an existing ``dest`` is replaced only with ``force``. Admins only."""
        from ._backup import backup

        self._file_only("backup", "pg_dump (e.g. pg_dump -Fc -f catalog.dump DBNAME)")
        self.require_admin("backup", str(dest))
        return backup(self.conn, Path(dest), force=force)

    def restore(self, source: str | os.PathLike[str], *, force: bool = False) -> None:
        """Make the catalog hold what the backup ``source`` holds, once it is checked (an
        intact aifdata catalog). Admins only; where the file is not a catalog (empty,
        another kind) nobody can be checked, and only ``force`` replaces it."""
        from ._backup import restore

        self._file_only("restore", "pg_restore (e.g. pg_restore -c -d DBNAME catalog.dump)")
        if self._snapshot is not None:
            self._writable()  # refused: a Parquet snapshot
        live = None
        if os.path.lexists(self.path):
            with contextlib.suppress(NotACatalog):
                live = self.conn
        if live is not None:
            self._writable()
            self.require_admin("restore", str(source))
        restore(Path(source), Path(self.path), live, force=force)
        self.close()  # the next use opens (and upgrades) what was restored

    def _file_only(self, action: str, instead: str) -> None:
        """Refuse a SQLite-file operation on a PostgreSQL catalog, saying what does it there."""
        if self._url is not None:
            raise CatalogError(
                f"{self.path}: aifdata catalog {action} copies a SQLite catalog file; this"
                f" catalog is in PostgreSQL: use {instead}"
            )

    def check(self) -> list[str]:
        """What SQLite's integrity and foreign-key checks find wrong ([] when intact)."""
        from ._backup import problems

        return problems(self.conn)

    # -- lineage -------------------------------------------------------------

    def resolve_version(self, ref: str, privilege: str = "read") -> tuple[str, int, int]:
        """``name`` or ``name@N`` -> (name, version number, version row id), checked."""
        name, number = split_ref(ref)
        self.require(name, privilege, "lineage")
        numbers = self.versions(name)
        number = numbers[-1] if number is None else number
        vid = version_id(self.conn, name, number)
        if vid is None:
            known = ", ".join(map(str, numbers))
            raise NotFound(f"dataset {name!r} has no version {number}; versions: {known}")
        return name, number, vid

    def begin_run(
        self,
        run_id: str,
        job: str,
        inputs: Sequence[str],
        params: Mapping[str, Any],
        script: str | None,
        git_commit: str | None,
    ) -> tuple[int, list[tuple[str, int]]]:
        """Record a RUNNING run reading ``inputs``; return its key and the resolved inputs."""
        self._writable()
        resolved = [self.resolve_version(ref) for ref in inputs]
        with write_transaction(self.conn) as conn:
            key = start_run(
                conn, run_id, job, current_user(), script, git_commit, dict(params),
                time.time(), [vid for _, _, vid in resolved],
            )  # fmt: skip
        return key, [(n, v) for n, v, _ in resolved]

    def add_run_dataset(self, run_key: int, ref: str, role: str) -> tuple[str, int]:
        """Add an input (read needed) or output (write needed) version to a run."""
        self._require_run_user(run_key, f"add {role} {ref} to")
        name, number, vid = self.resolve_version(ref, "read" if role == "input" else "write")
        with write_transaction(self.conn) as conn:
            add_dataset(conn, run_key, role, vid)
        return name, number

    def end_run(self, run_key: int, state: str, error: str | None = None) -> RunRecord:
        """Mark a run COMPLETE or FAIL (its user or a catalog admin); return its record."""
        self._require_run_user(run_key, "end")
        with write_transaction(self.conn) as conn:
            finish_run(conn, run_key, state, time.time(), error)
        return self.run_record(run_key)

    def run_record(self, run_key: int) -> RunRecord:
        """The record of one run, by its catalog key, as the principal may see it (datasets
        they may not read counted, not named)."""
        return redact(run_record(self.conn, self._run_row(run_key)), self._readable())

    def _run_row(self, run_key: int) -> sqlite3.Row:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_key,)).fetchone()
        if row is None:
            raise NotFound(f"no run with key {run_key} in {self.path}")
        found: sqlite3.Row = row
        return found

    def _require_run_user(self, run_key: int, action: str) -> None:
        """Raise AccessDenied (audited) unless the principal started the run or is an admin."""
        row = self._run_row(run_key)
        policy, who = self.policy(), current_principal()
        if row["user"] == who.user or policy.is_admin(who):
            return
        target = f"run {row['run_id']}"
        self.record_audit(who, "run", target, "write", target, allowed=False)
        raise AccessDenied(
            f"{who} may not {action} {target}: only the user who started it or a catalog admin may"
        )

    def runs(self, ref: str | None = None) -> list[RunRecord]:
        """Runs that read or wrote a dataset version (all runs if None), oldest first."""
        if ref is None:
            policy, who = self.policy(), current_principal()
            rows = self.conn.execute("SELECT * FROM runs ORDER BY started, id").fetchall()
            records = [run_record(self.conn, r) for r in rows]
            return [
                r
                for r in records
                if all(
                    policy.allows(who, "read", policy.dataset(n)) for n, _ in r.inputs + r.outputs
                )
            ]
        name, _, vid = self.resolve_version(ref)
        vids = [vid]
        if "@" not in ref:  # every version of the dataset
            found = [version_id(self.conn, name, n) for n in self.versions(name)]
            vids = [v for v in found if v is not None]
        visible = self._readable()
        return [redact(r, visible) for r in runs_touching(self.conn, vids)]

    def _readable(self) -> Callable[[str], bool]:
        """Whether the current principal may read a dataset (for what lineage may name)."""
        policy, who = self.policy(), current_principal()
        return lambda name: policy.allows(who, "read", policy.dataset(name))

    def lineage(self, ref: str, depth: int | None = None) -> dict[str, LineageNode]:
        """The upstream and downstream graphs of a version (``name`` = latest, or ``name@N``).

        Datasets the principal may not read are not named: each run counts them
        (``hidden_inputs``, ``hidden_outputs``).
        """
        name, number, _ = self.resolve_version(ref)
        visible = self._readable()
        return {
            direction: graph(self.conn, name, number, direction, visible, depth)
            for direction in ("upstream", "downstream")
        }

    def openlineage_events(self, runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
        """OpenLineage START and COMPLETE/FAIL events of these runs, in time order."""
        from ._openlineage import events_for

        events = [e for r in runs for e in events_for(r)]
        return sorted(events, key=lambda e: (e["eventTime"], e["eventType"] != "START"))

    # -- replicas ------------------------------------------------------------

    def replica_records(self, urls: Sequence[str]) -> dict[str, ReplicaRecord]:
        """The newest record of each physical URL the catalog knows (with where routing
        reports what hashing a copy again found)."""
        out: dict[str, ReplicaRecord] = {}
        unique = list(dict.fromkeys(urls))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                "SELECT url, size, checksum, mtime, etag, inode, device, ctime_ns, bad"
                f" FROM replicas WHERE url IN ({marks}) ORDER BY recorded",
                chunk,
            ):
                url, checksum = row["url"], row["checksum"]
                out[url] = ReplicaRecord(
                    row["size"], checksum, row["mtime"], row["etag"], row["inode"],
                    row["device"], row["ctime_ns"], row["bad"],
                    functools.partial(self.replica_hashed, url, checksum),
                )  # fmt: skip
        return out

    def replica_file(self, url: str) -> FileRecord | None:
        """The file whose newest good recorded copy is at ``url`` (what a hydration
        verifies against), or None."""
        row = self.conn.execute(
            "SELECT f.id, f.path, f.size, f.checksum, f.format, f.mtime, f.etag FROM replicas r"
            " JOIN files f ON f.id = r.file_id WHERE r.url = ? AND r.bad IS NULL"
            " ORDER BY r.recorded DESC LIMIT 1",
            (url,),
        ).fetchone()
        return None if row is None else FileRecord(*row)

    def replica_hashed(
        self, url: str, checksum: str | None, stat: FileStat, problem: str | None
    ) -> None:
        """Record what hashing the copy at ``url`` found: the same bytes as ``checksum``
        (``problem`` None: its new stat is recorded) or other bytes (marked bad, so
        routing skips it at once). Not kept by a read-only catalog."""
        if self._snapshot is not None:
            return
        now = time.time()
        write_briefly(self.conn, lambda c: mark_hashed(c, url, checksum, stat, problem, now))

    def verify(
        self,
        target: str | None = None,
        tier: str | None = None,
        *,
        workers: int = 4,
        progress: Callable[[int], object] | None = None,
        clean: bool = False,
    ) -> VerifyReport:
        """Hash every recorded copy again (a scrub) and mark the bad ones bad.

        ``target`` is a dataset (``NAME`` or ``NAME@N``; default its latest
        version), an ``aif://`` prefix (the latest versions of the datasets with
        copies under it), or None for every dataset the caller may read; ``tier``
        keeps the copies on one tier. Needs read on what it checks. Routing skips
        a bad copy at once; ``aifdata stage`` puts a good one back. ``clean``
        also removes stale temporary files (from killed writers) beside local copies.
        """
        self._writable()
        check_tier(self.config, tier)
        versions, under = self._verify_scope(target)
        replicas = replicas_of(self.conn, versions, tier, under)
        everywhere = replicas_of(self.conn, versions, None, under) if clean or under else []
        if under and not everywhere:  # a mistyped prefix checks nothing: say so
            raise NotFound(f"{target}: no recorded copy of a dataset there")

        def mark(url: str, checksum: str, stat: FileStat, problem: str | None) -> None:
            with write_transaction(self.conn) as conn:
                mark_hashed(conn, url, checksum, stat, problem, time.time())

        report = scrub(self.config, replicas, mark, workers, progress)
        if clean:
            removed = remove_stale(local_directories(self.config, everywhere, tier))
            report = dataclasses.replace(report, cleaned=tuple(removed))
        return report

    def _verify_scope(self, target: str | None) -> tuple[list[tuple[str, int, int]], list[str]]:
        """The versions a scrub checks (name, number, row id), each checked for read,
        and the physical prefixes it keeps to (none: all)."""
        if target is not None and not target.startswith("aif://"):
            self.require(split_ref(target)[0], "read", "verify")
            return [self.resolve_version(target)], []
        under: list[str] = []
        if target is not None:
            path = MountedFileSystem._strip_protocol(target)
            self.gate().check(path, "read", "verify")
            mount, rel = self.config.resolve(path)
            under = [join(t.url, rel) for t in mount.tiers]
        names = self.datasets()  # the ones the caller may read
        return [self.resolve_version(name) for name in names], under

    def stage(
        self, name: str, to: str, version: int | None = None, workers: int = 8
    ) -> StageReport:
        """Copy a dataset version's files to tier ``to`` of their mount, verify, record.

        Missing or stale copies are written atomically while their SHA-256 is
        checked against the catalog; good copies are only recorded.
        """
        self._writable()
        self.require(name, "write", "stage")
        ds = self.dataset(name, version)
        return stage_version(self.config, self.record_replica, ds, to, workers)

    def record_replica(
        self, file_id: int, tier: str, url: str, size: int, checksum: str, stat: FileStat
    ) -> None:
        """Record (or replace) the verified copy of one file on one tier."""
        with write_transaction(self.conn) as conn:
            record_copy(conn, file_id, tier, url, size, checksum, stat, time.time())

    def overwritten(self, url: str) -> bool:
        """The copy at ``url`` was written over through ``aif://``: the catalog no longer
        vouches for it, so routing asks that tier again and no copy made from the old
        bytes serves in its place (``aifdata sync`` records the new bytes). False when
        nothing was recorded there (or the catalog is read-only)."""
        if self._snapshot is not None or self.read_only:
            return False
        held = self.conn.execute("SELECT 1 FROM replicas WHERE url = ? LIMIT 1", (url,))
        if held.fetchone() is None:  # a new file, or one never recorded: nothing to write
            return False
        with write_transaction(self.conn) as conn:
            conn.execute("DELETE FROM replicas WHERE url = ?", (url,))
            conn.execute("UPDATE overwrites SET count = count + 1")
        return True

    def routes_mark(self) -> tuple[int, int, int]:
        """What routes known in memory depend on: the versions recorded and the copies
        written over (see :meth:`overwritten`)."""
        row = self.conn.execute(
            "SELECT (SELECT max(id) FROM versions), (SELECT count(*) FROM versions),"
            " (SELECT count FROM overwrites)"
        ).fetchone()
        return int(row[0] or 0), int(row[1]), int(row[2] or 0)

    # -- pins ----------------------------------------------------------------

    def pin(self, name: str) -> bool:
        """Keep dataset ``name``'s copies on managed tiers (never released); needs
        write on it. False when it was pinned already."""
        return self._pin(name, "pin", lambda conn, did, who: add_pin(conn, did, who, time.time()))

    def unpin(self, name: str) -> bool:
        """Let dataset ``name``'s copies be released again. False when it was not pinned."""
        return self._pin(name, "unpin", lambda conn, did, who: remove_pin(conn, did))

    def _pin(self, name: str, action: str, change: Callable[..., bool]) -> bool:
        self._writable()
        self.require(name, "write", action)
        who = current_principal()
        with write_transaction(self.conn) as conn:
            row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise self._unknown(name, who)
            changed = change(conn, int(row["id"]), str(who))
            _audit_row(conn, who, action, name, "write", name)
        return changed

    def pinned(self) -> list[Pin]:
        """The pinned datasets the current principal may read."""
        policy, who = self.policy(), current_principal()
        return [p for p in pins(self.conn) if policy.allows(who, "read", policy.dataset(p.dataset))]

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
        checksum: bool = True,
        on_record: Callable[[sqlite3.Connection, int | None], None] | None = None,
    ) -> Dataset:
        """Record the files under ``source`` as a new version of ``dataset``.

        Files are listed and checksummed first; then one transaction records the
        dataset, the version, the files and their replicas. Unchanged data makes
        no new version; a failure part-way records nothing. ``checksum=False``
        skips hashing (the checksum is then ``""``): copies are then known by
        size and mtime or ETag only, for trees too large to read at ingest.
        ``on_record(conn, number)`` runs in that transaction before it commits, with
        the new version's number (None: none made): what it writes is recorded with
        the version, and what it raises records nothing.

        A location has one owner: where ``source`` is, contains or lies inside the
        location of another dataset, only a principal who may write that dataset (or a
        catalog admin) may record it; anyone else is refused before a byte is read.
        """
        self._writable()
        check_dataset_name(dataset)
        if "://" not in source:  # a local path: recorded absolute, so it names one place
            source = os.path.abspath(source)
        self.require(dataset, "write", "ingest")
        self._claim(source, dataset)
        fs, root = self.open_url(source)
        files = scan(fs, root, workers=workers, progress=progress, hashing=checksum)
        with gc_paused():  # a million rows are made here, none in a cycle
            digest = version_digest(files)
            with _bulk(self.conn), write_transaction(self.conn) as conn:
                self._claim(source, dataset, audit=False)  # again: another may have come first
                dataset_id = self._dataset_id(conn, dataset, description, tags, owner)
                latest = conn.execute(
                    "SELECT number, digest, source FROM versions WHERE dataset_id = ? "
                    "ORDER BY number DESC LIMIT 1",
                    (dataset_id,),
                ).fetchone()
                made: tuple[FileRecord, ...] | None = None
                # the same bytes somewhere else are a new version too: the new place is then
                # recorded, and governed by this dataset, not left open
                if latest is None or (latest["digest"], latest["source"]) != (digest, source):
                    number = 1 if latest is None else latest["number"] + 1
                    made = self._insert_version(conn, dataset_id, number, source, digest, files)
                reindex(conn, dataset_id)
                if on_record is not None:
                    on_record(conn, None if made is None else number)
        return self._dataset(dataset, None, made)

    def _claim(self, source: str, dataset: str, *, audit: bool = True) -> None:
        """Refuse (AccessDenied) to record ``source`` as ``dataset`` where it shares bytes
        with another dataset the principal may not write: one owner per location."""
        policy, who = self.policy(), current_principal()
        if policy.is_admin(who):
            return
        urls = physical_prefixes(source, self.config)
        exempt = self._nested_before(policy, dataset, urls)
        taken = [
            name
            for name in policy.overlapping(urls)
            if name != dataset
            and name not in exempt
            and not policy.allows(who, "write", policy.dataset(name))
        ]
        if not taken:
            return
        if audit:
            self.record_audit(who, "ingest", source, "write", taken[0], allowed=False)
        refused = f"{who} may not ingest {source} as {dataset}: the location is governed by"
        seen = [name for name in taken if policy.may_see(who, policy.dataset(name))]
        if not seen:
            raise AccessDenied(f"{refused} a dataset {who} may not see")
        named = ", ".join(f"{name} (owner {policy.owners.get(name)})" for name in seen)
        raise AccessDenied(
            f"{refused} dataset {named}, which {who} may not write; its owner or an admin "
            f"can ingest it, or allow it with: aifdata policy grant {who} write {seen[0]}"
        )

    def _nested_before(self, policy: Policy, dataset: str, urls: set[str]) -> set[str]:
        """The datasets a new version of ``dataset`` at ``urls`` may share bytes with as its
        previous version did: when the new location is the previous one or inside it, those
        nested inside the new location and those around the previous one (each was allowed
        when it was made). A dataset at the new location that was inside the previous one is
        not among them: re-pointing an outer dataset at it would take it over."""
        row = self.conn.execute(
            "SELECT v.source FROM versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE d.name = ? ORDER BY v.number DESC LIMIT 1",
            (dataset,),
        ).fetchone()
        if row is None:
            return set()
        previous = {p.rstrip("/") for p in physical_prefixes(row["source"], self.config)}
        if not any(prefix in previous for url in urls for prefix in _ancestors(url)):
            return set()  # moved elsewhere: what is there now was never shared with it
        return set(policy.inside(urls)) | set(policy.covering(previous))

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
    ) -> tuple[FileRecord, ...]:
        """Insert a version with its files and their replicas; return the file records."""
        now = time.time()
        cursor = conn.execute(
            "INSERT INTO versions (dataset_id, number, source, created, file_count, total_bytes,"
            " digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dataset_id, number, source, now, len(files), sum(f.size for f in files), digest),
        )
        version_id = int(cursor.lastrowid or 0)
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM files").fetchone()[0]
        insert_files(conn, version_id, first, files, now)
        return tuple(
            FileRecord(first + i, f.path, f.size, f.checksum, f.format, f.mtime, f.etag,
                       ((f.tier, f.url),))
            for i, f in enumerate(files)
        )  # fmt: skip

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
        policy, who = self.policy(), current_principal()

        def visible(name: str) -> bool:
            return policy.allows(who, "read", policy.dataset(name))

        return search(
            self.conn, query, format=format, tags=tags, owner=owner, limit=limit,
            visible=visible, scope=read_scope(policy, who, getattr(self.conn, "dialect", "sqlite")),
        )  # fmt: skip

    def datasets(self) -> list[str]:
        """Names of the datasets the current principal may read, sorted."""
        policy, who = self.policy(), current_principal()
        rows = self.conn.execute("SELECT name FROM datasets ORDER BY name").fetchall()
        return [r["name"] for r in rows if policy.allows(who, "read", policy.dataset(r["name"]))]

    def versions(self, name: str) -> list[int]:
        """Version numbers of a dataset, oldest first."""
        self.require(name, "read", "versions")
        rows = self.conn.execute(
            "SELECT v.number FROM versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE d.name = ? ORDER BY v.number",
            (name,),
        ).fetchall()
        if not rows:  # a dataset has a version from its first ingest on
            raise self._unknown(name)
        return [r["number"] for r in rows]

    def dataset(self, name: str, version: int | None = None) -> Dataset:
        """A dataset at ``version`` (default: the latest)."""
        return self._dataset(name, version, None)

    def _dataset(
        self, name: str, version: int | None, files: tuple[FileRecord, ...] | None
    ) -> Dataset:
        """:meth:`dataset`, with the files given when the caller just wrote them."""
        conn = self.conn
        self.require(name, "read", "show")  # first: a hidden dataset is refused as a missing one
        meta = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
        if meta is None:
            raise self._unknown(name)
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
            files=self._files(row["id"]) if files is None else files,
            lineage=tuple(
                redact(r, self._readable())
                for r in runs_touching(conn, [row["id"]])
                if (name, row["number"]) in r.outputs
            ),
        )

    def _files(self, version_id: int) -> tuple[FileRecord, ...]:
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: a version may hold millions of files
        replicas: dict[int, list[tuple[str, str]]] = {}
        for file_id, tier, url in cursor.execute(
            "SELECT r.file_id, r.tier, r.url FROM replicas r JOIN files f ON f.id = r.file_id"
            " WHERE f.version_id = ?",
            (version_id,),
        ):
            replicas.setdefault(file_id, []).append((tier, url))
        rows = cursor.execute(
            "SELECT id, path, size, checksum, format, mtime, etag FROM files"
            " WHERE version_id = ? ORDER BY path",
            (version_id,),
        ).fetchall()
        return tuple(
            FileRecord(i, path, size, checksum, fmt, mtime, etag, tuple(replicas.get(i, ())))
            for i, path, size, checksum, fmt, mtime, etag in rows
        )


#: What a catalog-wide privilege is recorded on (audit rows, refusals).
_CATALOG = "(catalog)"


def _audit_row(
    conn: sqlite3.Connection,
    who: Principal,
    action: str,
    target: str,
    privilege: str,
    resource: str,
) -> None:
    conn.execute(
        "INSERT INTO audit (time, principal, action, target, privilege, resource, allowed)"
        " VALUES (?, ?, ?, ?, ?, ?, 1)",
        (time.time(), str(who), action, target, privilege, resource),
    )


@contextlib.contextmanager
def _bulk(conn: sqlite3.Connection) -> Iterator[None]:
    """Skip foreign-key checks for rows whose parents the same transaction just wrote
    (SQLite; PostgreSQL checks them as it goes)."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        yield
        return
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def split_ref(ref: str) -> tuple[str, int | None]:
    """``name@3`` -> (name, 3); ``name`` -> (name, None); anything else is a :class:`BadName`."""
    name, sep, version = ref.rpartition("@")
    if not sep:
        name, version = ref, ""
    elif not version.isdigit() or int(version) < 1:
        raise BadName(f"{ref!r}: expected NAME or NAME@VERSION with a version number from 1")
    if not name.strip() or "@" in name:
        raise BadName(f"{ref!r}: expected NAME or NAME@VERSION, e.g. genomics/run42@3")
    return name, int(version) if version else None


def version_digest(files: Sequence[SourceFile]) -> str:
    """SHA-256 over the sorted (path, size, checksum) rows: same data, same digest.

    A file ingested without its checksum counts by its mtime and ETag instead.
    """
    lines = [
        f"{f.path}\0{f.size}\0{f.checksum or f'unhashed:{f.mtime}:{f.etag}'}\n"
        for f in sorted(files, key=lambda f: f.path)
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def open_dataset(name: str, version: int | None = None, catalog: Catalog | None = None) -> Dataset:
    """A dataset from the catalog (``$AIFDATA_HOME/catalog.db`` unless one is given)."""
    return (catalog or Catalog()).dataset(name, version)

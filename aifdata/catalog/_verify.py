"""``verify``: hash every replica again and hold the bad ones bad (a scrub).

Lustre and GPFS sites scrub; Ceph and HDFS scan blocks for flipped bits. This
does the same for the copies the catalog records: each is read where it lies
and hashed against the catalog's SHA-256. A copy with other bytes is marked
bad in the catalog (routing skips it from then on, and ``aifdata stage``
replaces it); a copy that is gone is reported missing; a good copy has its
stat recorded anew (for a local copy: inode, device, ctime).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

from fsspec import AbstractFileSystem

import aifdata.catalog._postgres as _postgres

from .._config import Config
from .._errors import ConfigError
from .._filesystem import MountedFileSystem
from .._threads import ThreadPool
from .._urls import resolve_url
from ..connectors import FileStat, _atomic
from ..connectors._seal import Copies, local_path, rehash, seal
from ._schema import is_postgres

Progress = Callable[[int], object]


class Replica(NamedTuple):
    """One recorded copy to check: where it is, and what the catalog says it holds."""

    dataset: str  # NAME@VERSION
    path: str  # the file's path in its version
    tier: str
    url: str
    size: int
    checksum: str  # "" when ingested without hashing: then only the size is checked


@dataclass(frozen=True)
class ReplicaProblem:
    """A copy that is not what the catalog recorded: ``bad`` or ``missing``."""

    dataset: str
    path: str
    tier: str
    url: str
    state: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {
            "dataset": self.dataset,
            "path": self.path,
            "tier": self.tier,
            "url": self.url,
            "state": self.state,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class VerifyReport:
    """What a scrub found: copies checked, bytes hashed, the bad and the missing ones."""

    checked: int
    bytes_hashed: int
    problems: tuple[ReplicaProblem, ...] = ()
    size_only: int = 0  # copies ingested without a checksum: checked by size alone
    cleaned: tuple[str, ...] = field(default=())  # stale temporary files removed (--clean)

    @property
    def bad(self) -> tuple[ReplicaProblem, ...]:
        return tuple(p for p in self.problems if p.state == "bad")

    @property
    def missing(self) -> tuple[ReplicaProblem, ...]:
        return tuple(p for p in self.problems if p.state == "missing")

    @property
    def ok(self) -> bool:
        """True when every copy checked holds the catalog's bytes."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_hashed": self.bytes_hashed,
            "bad": len(self.bad),
            "missing": len(self.missing),
            "size_only": self.size_only,
            "problems": [p.as_dict() for p in self.problems],
            "cleaned": list(self.cleaned),
        }


def check_tier(config: Config, tier: str | None) -> None:
    """Refuse a tier name that no mount has (a typo would check nothing and pass)."""
    known = sorted({t.name for m in config.mounts for t in m.tiers})
    if tier is not None and tier not in known:
        raise ConfigError(f"no tier {tier!r} in the mount table; its tiers: {', '.join(known)}")


#: Records what hashing one copy found (url, checksum, stat, problem or None).
MarkHashed = Callable[[str, str, FileStat, "str | None"], None]


def scrub(
    config: Config,
    replicas: Sequence[Replica],
    mark: MarkHashed,
    workers: int,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check every replica (``workers`` at a time); mark the bad ones through ``mark``."""
    fs = MountedFileSystem(config)

    def one(replica: Replica) -> tuple[ReplicaProblem | None, int]:
        located = config.locate(replica.url)
        if located is None:  # ingested from s3:// or a path outside every mount
            where, path = resolve_url(replica.url, config)
            return _check(_Unmounted(where), path, replica, mark, progress)
        mount, tier, rel = located
        return _check(fs.connector(mount, tier.name), rel, replica, mark, progress)

    with ThreadPool(max(1, workers)) as pool:
        results = list(pool.map(one, replicas))
    return VerifyReport(
        checked=len(replicas),
        bytes_hashed=sum(n for _, n in results),
        problems=tuple(p for p, _ in results if p is not None),
        size_only=sum(1 for r in replicas if not r.checksum),
    )


class _Unmounted:
    """A plain fsspec filesystem, seen as :func:`~aifdata.connectors._seal.rehash` sees
    a connector."""

    def __init__(self, fs: AbstractFileSystem) -> None:
        self.fs = fs

    def stats(self, rels: Iterable[str]) -> dict[str, FileStat]:
        out = {}
        for rel in rels:
            try:
                info = self.fs.info(rel)
            except FileNotFoundError:
                continue
            if info.get("type") == "file":
                out[rel] = FileStat.of(info)
        return out

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        f: BinaryIO = self.fs.open(rel, "rb")
        return f


def _check(
    conn: Copies, rel: str, replica: Replica, mark: MarkHashed, progress: Progress | None
) -> tuple[ReplicaProblem | None, int]:
    """One copy: (its problem or None, bytes hashed)."""
    stat = conn.stats([rel]).get(rel)
    if stat is None:
        return _problem(replica, "missing", "no copy there"), 0
    if stat.size != replica.size:
        why = f"size {stat.size}, not the catalog's {replica.size}"
        mark(replica.url, replica.checksum, stat, why)
        return _problem(replica, "bad", why), 0
    if not replica.checksum:  # nothing better than the size to check
        return None, 0
    hashed = rehash(conn, rel, progress)
    if hashed is None:
        return _problem(replica, "missing", "deleted while it was hashed"), 0
    if hashed.checksum is None:
        return _problem(replica, "bad", "changed while it was hashed"), stat.size
    if hashed.checksum != replica.checksum:
        why = f"hashed to {hashed.checksum}, not the catalog's {replica.checksum}"
        mark(replica.url, replica.checksum, hashed.stat, why)
        return _problem(replica, "bad", why), stat.size
    sealed = seal(conn, rel, replica.checksum, hashed.stat, write=False)
    mark(replica.url, replica.checksum, sealed, None)
    return None, stat.size


def _problem(replica: Replica, state: str, detail: str) -> ReplicaProblem:
    return ReplicaProblem(replica.dataset, replica.path, replica.tier, replica.url, state, detail)


def replicas_of(
    conn: sqlite3.Connection,
    versions: Iterable[tuple[str, int, int]],
    tier: str | None = None,
    under: Sequence[str] = (),
) -> list[Replica]:
    """The recorded copies of these versions ((name, number, row id)); only on ``tier``
    if given, only at or below one of the physical prefixes ``under`` if given."""
    out: list[Replica] = []
    for name, number, vid in versions:
        rows = conn.execute(
            "SELECT f.path, r.tier, r.url, r.size, r.checksum FROM replicas r"
            " JOIN files f ON f.id = r.file_id WHERE f.version_id = ?"
            " ORDER BY f.path, r.tier",
            (vid,),
        ).fetchall()
        for path, where, url, size, checksum in rows:
            if tier is not None and where != tier:
                continue
            if under and not any(_below(url, prefix) for prefix in under):
                continue
            out.append(Replica(f"{name}@{number}", path, where, url, size, checksum or ""))
    return out


def _below(url: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return url == prefix or url.startswith(prefix + "/")


def local_directories(
    config: Config, replicas: Iterable[Replica], tier: str | None = None
) -> list[str]:
    """The existing directories on this machine where the files of ``replicas`` have or
    would have local copies: on every local tier of their mount (only ``tier`` if given),
    so a stage killed before its first copy in a directory is cleaned up too."""
    fs = MountedFileSystem(config)
    found: dict[str, None] = {}
    for replica in replicas:
        located = config.locate(replica.url)
        if located is None:
            continue
        mount, _, rel = located
        for t in mount.tiers:
            if not t.local or tier not in (None, t.name):
                continue
            path = local_path(fs.connector(mount, t.name), rel)
            if path is not None and os.path.isdir(os.path.dirname(path)):
                found[os.path.dirname(path)] = None
    return _outermost(found)


def _outermost(directories: Iterable[str]) -> list[str]:
    """The directories none of whose ancestors is among them (a sweep takes a whole tree)."""
    kept: list[str] = []
    for directory in sorted(directories):
        if not any(directory.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(directory)
    return kept


def remove_stale(directories: Iterable[str]) -> list[str]:
    """Remove the stale temporary files (their writer is gone) under each directory."""
    removed: list[str] = []
    for directory in directories:
        try:
            removed += _atomic.remove_stale_temporaries(directory)
        except FileNotFoundError:  # removed since it was listed: nothing left in it
            continue
    return removed


#: How long a read waits for the catalog's write lock to record what a hash found.
VERDICT_WAIT_S = 2.0


def write_briefly(conn: sqlite3.Connection, write: Callable[[sqlite3.Connection], None]) -> bool:
    """Run ``write`` in a transaction of its own if the catalog's write lock comes within
    :data:`VERDICT_WAIT_S`; False when it did not, or the file cannot be written (a read
    that found a bad copy goes on either way: the copy is skipped, the verdict is not kept)."""
    if conn.in_transaction:  # inside the caller's transaction: not ours to commit
        return False
    if is_postgres(conn):
        return _postgres.write_briefly(conn, write, VERDICT_WAIT_S)  # type: ignore[arg-type]
    (busy,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {int(VERDICT_WAIT_S * 1000)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            write(conn)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:  # the write or the commit failed
                conn.execute("ROLLBACK")
    except sqlite3.Error:
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")
    return True


def record_copy(
    conn: sqlite3.Connection,
    file_id: int,
    tier: str,
    url: str,
    size: int,
    checksum: str,
    stat: FileStat,
    now: float,
) -> None:
    """Record (or replace) a verified copy, with what identifies it without reading it."""
    conn.execute(
        "INSERT OR REPLACE INTO replicas (file_id, tier, url, size, checksum, mtime, etag,"
        " inode, device, ctime_ns, recorded, checked, bad)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (file_id, tier, url, size, checksum or None, stat.mtime, stat.etag,
         stat.inode, stat.device, stat.ctime_ns, now, now),
    )  # fmt: skip


def mark_hashed(
    conn: sqlite3.Connection,
    url: str,
    checksum: str | None,
    stat: FileStat,
    problem: str | None,
    now: float,
) -> None:
    """Record what hashing the copy at ``url`` (recorded with ``checksum``) found:
    its new stat when its bytes are the checksummed ones, else why it is bad."""
    checksum = checksum or None  # "" (not hashed at ingest) is stored as NULL
    if problem is not None:
        conn.execute(
            "UPDATE replicas SET bad = ?, checked = ? WHERE url = ? AND checksum IS ?",
            (problem, now, url, checksum),
        )
        return
    conn.execute(
        "UPDATE replicas SET mtime = ?, etag = ?, inode = ?, device = ?, ctime_ns = ?,"
        " checked = ?, bad = NULL WHERE url = ? AND checksum IS ?",
        (stat.mtime, stat.etag, stat.inode, stat.device, stat.ctime_ns, now, url, checksum),
    )

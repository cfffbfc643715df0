"""Write what ``sync`` decided: a new version per dataset, in one catalog transaction.

The version's files and digest are made as ``ingest`` makes them; its replica
rows name only the copies that hold its bytes (each with what identifies it
unread: ETag, or inode and ctime), and files outside the part compared keep
their good rows as they were.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .._config import Mount
from .._errors import CatalogError
from .._router import ReplicaRecord
from ..catalog import Catalog, FileRecord
from ..catalog._catalog import version_digest
from ..catalog._ingest import SourceFile, sniff_format
from ..catalog._search import reindex
from ..catalog._store import write_transaction
from ..catalog._verify import mark_hashed, record_copy
from ..connectors import Connector, FileStat
from ._sync_report import Side, SyncChange

_HEAD = 4096


@dataclass
class Known:
    """One file of the latest version, where it lies in the mount, and its copies' rows."""

    record: FileRecord
    rel: str
    rows: dict[str, ReplicaRecord]  # url -> the version's row of that copy


@dataclass
class Scope:
    """One dataset's latest version and the part of its location that is compared."""

    name: str
    dataset_id: int
    number: int
    version_id: int
    source: str
    digest: str
    mount: Mount
    root: str  # the dataset's location, relative to the mount
    under: str  # the part compared: the location, or the part of it under the prefix
    files: dict[str, Known] = field(default_factory=dict)  # by rel

    def path_of(self, rel: str) -> str:
        """The version path of the file at mount path ``rel``."""
        known = self.files.get(rel)
        if known is not None:
            return known.record.path
        if rel == self.root:  # a dataset of one file: its name
            return rel.rpartition("/")[2]
        return rel[len(self.root) + 1 :] if self.root else rel


@dataclass(frozen=True)
class Copy:
    """One tier's copy of a file and the bytes it holds (``recorded``: the version has a
    good row of it)."""

    tier: str
    rel: str
    url: str
    stat: FileStat
    checksum: str
    recorded: bool
    hashed: bool = False  # its bytes were read (its stat did not show it was the recorded copy)

    def side(self) -> Side:
        return Side(self.tier, self.url, self.stat.size, self.checksum, self.stat.etag,
                    self.stat.mtime)  # fmt: skip


@dataclass
class Outcome:
    """What the new version holds at one path (``checksum`` None: not the file), the
    copies that hold it, and the change, if any, that sync reports."""

    rel: str
    path: str
    old: FileRecord | None
    checksum: str | None
    holders: list[Copy]
    change: SyncChange | None
    export_from: Copy | None = None  # where the write tier's copy gets the bytes from
    unresolved: bool = False


#: One dataset's part: its scope, the connectors of its shared tiers, each file's outcome.
Plan = tuple[Scope, Mapping[str, Connector], Sequence[Outcome]]


def record(catalog: Catalog, plans: Sequence[Plan]) -> list[str]:
    """Record a new version of each dataset whose data changed; ``NAME@N`` of each made."""
    ready = [_ready(scope, conns, outcomes) for scope, conns, outcomes in plans]
    made = []
    with write_transaction(catalog.conn) as conn:
        for scope, files, copies in ready:
            digest = version_digest(files)
            if digest == scope.digest:  # the same data: what hashing found is kept
                _rehashed(conn, files, copies)
                continue
            still_latest(conn, scope)
            number = scope.number + 1
            records = catalog._insert_version(
                conn, scope.dataset_id, number, scope.source, digest, files
            )
            _replicas(conn, records, copies)
            reindex(conn, scope.dataset_id)
            made.append(f"{scope.name}@{number}")
    return made


def _ready(
    scope: Scope, conns: Mapping[str, Connector], outcomes: Sequence[Outcome]
) -> tuple[Scope, list[SourceFile], list[Held]]:
    """The files of the new version (sorted by path), and per file the copies to record
    (or the old file whose good rows are kept: a file outside the part compared)."""
    rows: list[tuple[SourceFile, Held]] = []
    compared = {o.rel for o in outcomes}
    for known in scope.files.values():
        if known.rel not in compared:
            rows.append((_kept(known.record), Held(known.record, None)))
    order = [scope.mount.write_tier, *scope.mount.read_order]
    for outcome in outcomes:
        if outcome.checksum is None:
            continue  # deleted
        if not outcome.holders:
            raise CatalogError(f"{outcome.path}: no copy holds {outcome.checksum}")
        holders = sorted(outcome.holders, key=lambda c: order.index(c.tier))
        rows.append((_source_file(outcome, holders[0], conns), Held(outcome.old, holders)))
    rows.sort(key=lambda r: r[0].path)
    return scope, [f for f, _ in rows], [c for _, c in rows]


class Held(NamedTuple):
    """A file's old record (None: a new file), and the copies that hold its bytes now
    (None: not compared, its good rows are kept)."""

    old: FileRecord | None
    copies: list[Copy] | None


def _kept(f: FileRecord) -> SourceFile:
    tier, url = f.replicas[0] if f.replicas else ("", "")
    return SourceFile(f.path, url, f.size, f.checksum, f.mtime, f.etag, tier, f.format)


def _source_file(outcome: Outcome, first: Copy, conns: Mapping[str, Connector]) -> SourceFile:
    old = outcome.old
    checksum = outcome.checksum or ""
    if old is not None and old.checksum == checksum:
        fmt = old.format
    else:  # new bytes: their format, from their first bytes, as ingest finds it
        fmt = sniff_format(outcome.path, conns[first.tier].cat_file(first.rel, 0, _HEAD))
    st = first.stat
    return SourceFile(outcome.path, first.url, st.size, checksum, st.mtime, st.etag, first.tier,
                      fmt)  # fmt: skip


def _rehashed(conn: sqlite3.Connection, files: Sequence[SourceFile], held: Sequence[Held]) -> None:
    """Record the copies of an unchanged version that were hashed to its bytes: their new
    stat (a metadata-only change), or the copy itself where it was not recorded (as
    ``stage`` records a copy it finds in place)."""
    now = time.time()
    for f, (old, copies) in zip(files, held, strict=True):
        for c in copies or ():
            if c.hashed and c.recorded:
                mark_hashed(conn, c.url, f.checksum, c.stat, None, now)
            elif c.hashed and old is not None:
                record_copy(conn, old.id, c.tier, c.url, f.size, f.checksum, c.stat, now)


def still_latest(conn: sqlite3.Connection, scope: Scope) -> None:
    (latest,) = conn.execute(
        "SELECT max(number) FROM versions WHERE dataset_id = ?", (scope.dataset_id,)
    ).fetchone()
    if latest != scope.number:
        raise CatalogError(
            f"{scope.name}: version {latest} was recorded while sync compared version "
            f"{scope.number}; nothing was recorded (sync again)"
        )


def _replicas(
    conn: sqlite3.Connection, records: Sequence[FileRecord], held: Sequence[Held]
) -> None:
    """Replace the one row per file that the version was made with by every copy that
    holds the file's bytes."""
    now = time.time()
    for new, (old, copies) in zip(records, held, strict=True):
        conn.execute("DELETE FROM replicas WHERE file_id = ?", (new.id,))
        if copies is None and old is not None:
            conn.execute(
                "INSERT INTO replicas (file_id, tier, url, size, checksum, mtime, etag, recorded,"
                " inode, device, ctime_ns, checked, bad, last_access)"
                " SELECT ?, tier, url, size, checksum, mtime, etag, recorded, inode, device,"
                " ctime_ns, checked, bad, last_access FROM replicas"
                " WHERE file_id = ? AND bad IS NULL",
                (new.id, old.id),
            )
        for c in copies or ():
            record_copy(conn, new.id, c.tier, c.url, new.size, new.checksum, c.stat, now)

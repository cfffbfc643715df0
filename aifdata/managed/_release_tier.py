"""Releasing one managed tier's copies, least recently read first (see :mod:`._release`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .._config import Config, Mount
from .._filesystem import MountedFileSystem
from .._router import ReplicaRecord, Router
from ..catalog import Catalog
from ..catalog._pins import pinned_file_ids
from ..catalog._store import write_transaction
from ..connectors import Connector, FileStat, Tier
from ..connectors._rules import TierRules
from ..connectors._seal import rehash
from ._access import node_index
from ._metrics import Metrics
from ._release_report import (
    FORGOTTEN,
    REFUSED,
    RELEASED,
    WOULD_RELEASE,
    ReleasedCopy,
    ReleaseReport,
)

#: How many copies' write-tier objects are looked up at once.
AHEAD = 256


@dataclass
class _Copy:
    """A candidate: one copy on one managed tier, with what release needs to judge it."""

    rel: str
    url: str
    size: int
    checksum: str | None
    last_access: float | None
    recorded: float
    datasets: set[str] = field(default_factory=set)
    pinned: bool = False
    source_etag: str | None = None  # cache copies: the write-tier ETag it was made from

    @property
    def time(self) -> float:
        return self.last_access if self.last_access is not None else self.recorded


class TierRelease:
    """One release run: the catalog, the connectors, the counters."""

    def __init__(
        self,
        catalog: Catalog,
        config: Config,
        metrics: Metrics,
        dry_run: bool,
        allowed: Callable[[set[str]], bool],
        index: Callable[[str], Any] | None = None,
    ) -> None:
        self.catalog = catalog
        self.fs = MountedFileSystem(config)
        self.metrics = metrics
        self.dry_run = dry_run
        self.allowed = allowed
        self.index = index or node_index
        self._pinned: set[int] | None = None

    # -- what a tier holds -----------------------------------------------------

    def usage(self, mount: Mount, tier: Tier, rules: TierRules) -> int:
        """The tier's usage: its recorded copies' bytes, or, for a capacity that is a
        share of the file system, what the file system has in use."""
        if isinstance(rules.capacity, float):
            return shutil.disk_usage(_existing(tier.url)).used
        if tier.storage_kind.node_local:
            return int(self.index(tier.url).used_bytes())
        low, high = _url_range(tier.url.rstrip("/") + "/")
        row = self.catalog.conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM replicas"
            " WHERE url >= ? AND url < ? AND tier = ? GROUP BY url) AS per_url",
            (low, high, tier.name),
        ).fetchone()
        return int(row[0])

    def candidates(self, mount: Mount, tier: Tier, rel: str) -> list[_Copy]:
        """The tier's copies at or below ``rel``, least recently read first."""
        root = tier.url.rstrip("/") + "/"
        under = root + rel + "/" if rel else root
        exact = root + rel
        if tier.storage_kind.node_local:
            copies = self._cached(tier, root)
        else:
            copies = self._shared(tier, root)
        if rel:
            copies = [c for c in copies if c.url == exact or c.url.startswith(under)]
        return sorted(copies, key=lambda c: (c.time, c.url))

    def _shared(self, tier: Tier, root: str) -> list[_Copy]:
        rows = self.catalog.conn.execute(
            "SELECT r.url, r.size, r.checksum, r.last_access, r.recorded, r.file_id, d.name"
            " FROM replicas r JOIN files f ON f.id = r.file_id"
            " JOIN versions v ON v.id = f.version_id JOIN datasets d ON d.id = v.dataset_id"
            " WHERE r.url >= ? AND r.url < ? AND r.tier = ?",
            (*_url_range(root), tier.name),
        ).fetchall()
        copies: dict[str, _Copy] = {}
        for url, size, checksum, last, recorded, file_id, name in rows:
            copy = copies.setdefault(
                url, _Copy(url[len(root) :], url, size, checksum, last, recorded)
            )
            copy.last_access = _latest(copy.last_access, last)
            copy.recorded = max(copy.recorded, recorded)
            copy.datasets.add(name)
            copy.pinned = copy.pinned or file_id in self.pinned_ids()
        return list(copies.values())

    def _cached(self, tier: Tier, root: str) -> list[_Copy]:
        index = self.index(tier.url)
        listed = index.lru()
        records: dict[str, ReplicaRecord] = index.records([c.url for c in listed])
        made_from: dict[str, str | None] = index.source_etags([c.url for c in listed]) or {}
        copies = []
        for c in listed:
            record = records.get(c.url)
            checksum = record.checksum if record is not None else None
            rel = c.url[len(root) :]
            copy = _Copy(rel, c.url, c.size, checksum, c.last_access, c.last_access)
            copy.source_etag = made_from.get(c.url)
            copies.append(copy)
        return copies

    def pinned_ids(self) -> set[int]:
        if self._pinned is None:
            self._pinned = pinned_file_ids(self.catalog.conn)
        return self._pinned

    # -- releasing -------------------------------------------------------------

    def release_tier(
        self, mount: Mount, tier: Tier, rel: str, *, age: float | None, goal: int | None
    ) -> ReleaseReport:
        """Release the tier's copies (oldest read first) that are older than ``age``,
        until ``goal`` bytes are freed (None: all of them)."""
        if not (self.dry_run or tier.storage_kind.node_local) and self.catalog.read_only:
            note = f"tier {tier.name!r}: the catalog is read-only here, so no copy is released"
            return ReleaseReport(dry_run=self.dry_run, notes=(note,))
        now, freed, pinned = time.time(), 0, 0
        out: list[ReleasedCopy] = []
        write = self.fs.connector(mount, mount.write_tier)
        local = self.fs.connector(mount, tier.name)
        ahead = _Ahead(self.catalog, write)
        candidates = self.candidates(mount, tier, rel)
        ahead.expect(c.rel for c in candidates)
        for copy in candidates:
            if goal is not None and freed >= goal:
                break
            if age is not None and now - copy.time < age:
                break  # oldest first: every later copy was read more recently
            self._owners(mount, write, copy)
            if not self.allowed(copy.datasets):
                continue
            if copy.pinned:
                pinned += 1
                continue
            entry = self._one(mount, tier, ahead, local, copy)
            out.append(entry)
            if entry.outcome in (RELEASED, WOULD_RELEASE):
                freed += copy.size
        return ReleaseReport(tuple(out), self.dry_run, pinned)

    def _owners(self, mount: Mount, write: Connector, copy: _Copy) -> None:
        """A cache copy's datasets and pin, through the write tier's catalog rows."""
        if copy.datasets:
            return
        rows = self.catalog.conn.execute(
            "SELECT r.file_id, d.name FROM replicas r JOIN files f ON f.id = r.file_id"
            " JOIN versions v ON v.id = f.version_id JOIN datasets d ON d.id = v.dataset_id"
            " WHERE r.url = ?",
            (write.url(copy.rel),),
        ).fetchall()
        for file_id, name in rows:
            copy.datasets.add(name)
            copy.pinned = copy.pinned or file_id in self.pinned_ids()

    def _one(
        self, mount: Mount, tier: Tier, ahead: _Ahead, local: Connector, copy: _Copy
    ) -> ReleasedCopy:
        entry = ReleasedCopy(
            f"aif://{mount.prefix}/{copy.rel}", tier.name, copy.url, copy.size,
            copy.last_access, REFUSED, datasets=tuple(sorted(copy.datasets)),
        )  # fmt: skip
        here = local.stats([copy.rel]).get(copy.rel)
        if here is None:  # removed behind aifdata's back: only the record is left
            if not self.dry_run:
                self._forget(tier, copy)
            return replace(entry, outcome=FORGOTTEN, size=0, reason="the copy was already gone")
        why = self._refusal(mount, tier, ahead, local, copy, here)
        if why is not None:
            return replace(entry, reason=why)
        if self.dry_run:
            return replace(entry, outcome=WOULD_RELEASE)
        with contextlib.suppress(FileNotFoundError):
            local.rm_file(copy.rel)
        self._forget(tier, copy)
        router = Router(mount, {t.name: self.fs.connector(mount, t.name) for t in mount.tiers})
        self.metrics.count(router, tier.name, copy.rel, "releases")
        self.metrics.count(router, tier.name, copy.rel, "bytes_released", copy.size)
        return replace(entry, outcome=RELEASED)

    def _refusal(
        self,
        mount: Mount,
        tier: Tier,
        ahead: _Ahead,
        local: Connector,
        copy: _Copy,
        here: FileStat,
    ) -> str | None:
        """Why this copy may not be released (None: the write tier holds its bytes)."""
        write = ahead.write
        url = write.url(copy.rel)
        name = mount.write_tier
        record, there = ahead.of(copy.rel)
        if record is None:
            return f"the write tier {name!r} has no recorded copy ({url}): this is the only copy"
        if record.bad:
            return f"the write tier's copy {url} is bad ({record.bad}): this is the only good copy"
        if copy.checksum and record.checksum:
            if copy.checksum != record.checksum:
                return f"the write tier's copy {url} holds other bytes (another checksum)"
        elif copy.size != record.size or (
            tier.storage_kind.node_local and _etag(copy.source_etag) != _etag(record.etag)
        ):
            return f"the write tier's copy {url} is not the one this copy was made from"
        if there is None:
            return f"the write tier's object {url} is gone: this is the only copy"
        if not _still(write, copy.rel, record, there):
            return (
                f"the write tier's object {url} changed since the catalog recorded it"
                f" (size {there.size}, ETag {there.etag}): not the same bytes"
            )
        return self._changed_here(tier, local, copy, here)

    def _changed_here(
        self, tier: Tier, local: Connector, copy: _Copy, here: FileStat
    ) -> str | None:
        """Why the copy itself may hold bytes the write tier lacks (None: it does not)."""
        own = self._own_record(tier, copy)
        if own is None or _still(local, copy.rel, own, here):
            return None
        return "the copy changed since it was recorded: it may hold changes the write tier lacks"

    def _own_record(self, tier: Tier, copy: _Copy) -> ReplicaRecord | None:
        if tier.storage_kind.node_local:
            found: dict[str, ReplicaRecord] = self.index(tier.url).records([copy.url])
            return found.get(copy.url)
        return self.catalog.replica_records([copy.url]).get(copy.url)

    def _forget(self, tier: Tier, copy: _Copy) -> None:
        """Drop the copy's record (after its file is gone)."""
        if tier.storage_kind.node_local:
            self.index(tier.url).forget([copy.url])
            return
        with write_transaction(self.catalog.conn) as conn:
            conn.execute("DELETE FROM replicas WHERE tier = ? AND url = ?", (tier.name, copy.url))


class _Ahead:
    """The write tier's records of the next copies release judges, looked up :data:`AHEAD`
    at a time, and each object's live stat (one HEAD, when its copy is judged: a listing
    of a large directory would cost more than the few copies a low-water run frees)."""

    def __init__(self, catalog: Catalog, write: Connector) -> None:
        self.catalog, self.write = catalog, write
        self.records: dict[str, ReplicaRecord | None] = {}
        self.pending: dict[str, int] = {}
        self.order: list[str] = []

    def expect(self, rels: Iterable[str]) -> None:
        """The copies release will judge next, in order."""
        self.order = list(rels)
        self.pending = {rel: i for i, rel in enumerate(self.order)}

    def of(self, rel: str) -> tuple[ReplicaRecord | None, FileStat | None]:
        """The write tier's record and live stat of ``rel``."""
        url = self.write.url(rel)
        if url not in self.records:
            start = self.pending.get(rel, len(self.order))
            batch = [url, *(self.write.url(r) for r in self.order[start + 1 : start + AHEAD])]
            found = self.catalog.replica_records(batch)
            self.records = {u: found.get(u) for u in batch}
        return self.records[url], self.write.stat_or_none(rel)


def _still(conn: Connector, rel: str, record: ReplicaRecord, st: FileStat) -> bool:
    """Whether a live copy is the one ``record`` describes: unchanged (size and ETag, or
    inode and ctime), or, where only its ctime moved, hashed again to its checksum."""
    if record.matches(st):
        return True
    if not record.worth_rehashing(st):
        return False
    hashed = rehash(conn, rel)
    return hashed is not None and hashed.checksum == record.checksum


def _url_range(prefix: str) -> tuple[str, str]:
    """The URLs below ``prefix`` (ending in ``/``) as a range the URL index serves."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _existing(path: str) -> str:
    """``path``, or its nearest existing parent (a cache root is made on first write)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _latest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _etag(etag: str | None) -> str:
    return (etag or "").strip('"')

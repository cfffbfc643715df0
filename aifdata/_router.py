"""Choose the tier that serves a read, and say why.

The rule: walk the mount's read order and take the first tier whose copy the
catalog has checksummed and that has not changed since (same size, and same
ETag, or for a local copy the same inode and ctime, which ``os.utime`` cannot
set back; the device is recorded but not compared, since each client node of
a Lustre, GPFS or NFS mount numbers it its own way). A local copy whose ctime
moved but whose size and mtime did not (a metadata change, or bytes rewritten
with the mtime restored) is hashed again before it is served: the same bytes
are served and recorded anew; other bytes are reported to the catalog as bad,
with one warning, and never served.
Without a verified copy, take the first tier whose copy has the same size as
the write tier's copy (the write tier is the reference); when the write tier
has no copy, the first tier that has one serves it. A copy the catalog holds
bad is never served.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._config import Mount
from ._errors import NotFound
from .connectors import Connector
from .connectors._base import FileStat
from .connectors._seal import rehash, seal


@dataclass(frozen=True)
class Route:
    """Which tier serves a read of ``path``, where the bytes are, and why."""

    path: str
    tier: str
    url: str
    reason: str
    size: int | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    checksum: str | None = None  # the catalog's, when it verified this copy
    #: The copy's stat as routed (a local copy's identity: size, inode, ctime).
    stat: FileStat | None = field(default=None, compare=False, repr=False)
    #: Whether the route rests on the catalog's record of the copy, not a look at it
    #: (:meth:`Router.from_records`): its size is what was recorded.
    recorded: bool = field(default=False, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "path": self.path,
            "tier": self.tier,
            "url": self.url,
            "reason": self.reason,
            "size": self.size,
            "skipped": [{"tier": t, "why": w} for t, w in self.skipped],
            "checksum": self.checksum,
        }


#: Tells the catalog what hashing a copy again found: its stat as hashed, and None
#: when the bytes are the ones checksummed, else why they are bad.
Report = Callable[[FileStat, "str | None"], None]


class ReplicaRecord(NamedTuple):
    """What the catalog knows of one copy: its size, checksum and version markers."""

    size: int
    checksum: str | None
    mtime: float | None
    etag: str | None
    inode: int | None = None
    device: int | None = None
    ctime_ns: int | None = None
    bad: str | None = None  # why a hash found other bytes: never served
    report: Report | None = None  # where a re-hash's outcome goes (None: nowhere)

    def matches(self, st: FileStat) -> bool:
        """Whether a live copy is still the one the catalog checksummed (nothing read)."""
        if st.size != self.size:
            return False
        if _local(st):  # the device is not compared: each node of a cluster numbers its own
            recorded = (self.inode, self.ctime_ns)
            return self.ctime_ns is not None and (st.inode, st.ctime_ns) == recorded
        if self.etag and st.etag:
            return self.etag.strip('"') == st.etag.strip('"')
        if self.mtime is not None and st.mtime is not None:
            return abs(self.mtime - st.mtime) < 1e-6
        return False

    def worth_rehashing(self, st: FileStat) -> bool:
        """A local copy of the recorded size and mtime whose ctime (or inode) moved:
        only its bytes can tell whether it is the copy checksummed."""
        if not (self.checksum and _local(st) and st.size == self.size):
            return False
        return self.mtime is not None and st.mtime is not None and abs(self.mtime - st.mtime) < 1e-6


def _local(st: FileStat) -> bool:
    """Whether a stat is of a local file (it has a ctime: stubs and old connectors may not)."""
    return getattr(st, "ctime_ns", None) is not None


#: Looks up catalog records by physical URL (``s3://b/k`` or a PFS path).
RecordLookup = Callable[[Sequence[str]], Mapping[str, ReplicaRecord]]


class Router:
    """Routes the reads of one mount over its connectors.

    With a catalog (``records``), a copy the catalog has checksummed, and that
    has not changed since (same size, and same ETag or local inode and ctime),
    is preferred in read order; when no copy is verified the size rule
    applies to the copies not held bad.
    """

    def __init__(
        self,
        mount: Mount,
        connectors: Mapping[str, Connector],
        records: RecordLookup | None = None,
    ) -> None:
        self.mount = mount
        self.connectors = connectors
        self.records = records

    def _logical(self, rel: str) -> str:
        return f"{self.mount.prefix}/{rel}" if rel else self.mount.prefix

    def serving_tiers(self, rels: Sequence[str]) -> dict[str, str | NotFound]:
        """The serving tier's name per file, or the NotFound of a file no tier holds
        (skips building routes on one-tier mounts)."""
        if len(self.mount.tiers) == 1:
            return dict.fromkeys(rels, self.mount.tiers[0].name)
        return {
            rel: route if isinstance(route, NotFound) else route.tier
            for rel, route in self.route_many(rels).items()
        }

    def route(self, rel: str) -> Route:
        """The route of one file; raises NotFound when no tier holds it."""
        route = self.route_many([rel])[rel]
        if isinstance(route, NotFound):
            raise route
        return route

    def route_many(self, rels: Sequence[str]) -> dict[str, Route | NotFound]:
        """Routes of many files, with one bulk stat per tier and one catalog lookup;
        a file that no tier holds maps to its NotFound error."""
        mount = self.mount
        if len(mount.tiers) == 1:
            only = mount.tiers[0].name
            conn = self.connectors[only]
            return {
                r: Route(self._logical(r), only, conn.url(r), "the mount's only tier") for r in rels
            }
        routes: dict[str, Route | NotFound] = dict(self.from_records(rels))
        rest = [rel for rel in rels if rel not in routes]
        if rest:
            names = dict.fromkeys([*mount.read_order, mount.write_tier])
            stats = {name: self.connectors[name].stats(rest) for name in names}
            records = self.records_for(rest)
            routes.update((rel, self.choose(rel, stats, records)) for rel in rest)
        return {rel: routes[rel] for rel in rels}

    def from_records(self, rels: Sequence[str]) -> dict[str, Route]:
        """On a managed mount with ``hydrate_check = "on-sync"``: the routes decided
        without asking the write tier, taking its copy to be the one the catalog
        records (a change made behind aifdata's back is seen once ``aifdata sync``
        records it). A verified copy on a local tier read before the write tier
        serves; a file no such tier holds goes to the write tier. The files left
        out are routed by :meth:`choose`, with every tier asked."""
        mount = self.mount
        write = mount.write_tier
        if self.records is None or not mount.trusts_catalog:
            return {}
        ahead = (
            mount.read_order[: mount.read_order.index(write)] if write in mount.read_order else ()
        )
        if not ahead or not all(mount.tier(name).local for name in ahead):
            return {}
        stats = {name: self.connectors[name].stats(rels) for name in ahead}
        records = self.records_for(rels)
        out: dict[str, Route] = {}
        for rel in rels:
            url = self.connectors[write].url(rel)
            ref = records.get(url)
            if ref is None or ref.bad:
                continue
            view = {name: stats.get(name, {}) for name in mount.read_order}
            view[write] = {rel: FileStat(ref.size, ref.mtime, ref.etag)}
            route = self.verified(rel, view, records)
            if route is not None and route.tier != write:
                out[rel] = route
            elif not any(rel in stats[name] for name in ahead):
                reason = (
                    f"no copy on {', '.join(map(repr, ahead))}; the catalog records {write!r}'s"
                )
                out[rel] = Route(self._logical(rel), write, url, reason, ref.size, recorded=True)
        return out

    def choose(
        self,
        rel: str,
        stats: Mapping[str, Mapping[str, FileStat]],
        records: Mapping[str, ReplicaRecord],
    ) -> Route | NotFound:
        """The verified copy if there is one, else the size rule, else NotFound."""
        judged = _Judged(self, rel, stats, records)
        route = self.verified(rel, stats, records, judged) or self.decide(rel, stats, judged.bad)
        if route is not None:
            return route
        if judged.bad:
            bad = "; ".join(f"{tier}: {why}" for tier, why in judged.bad.items())
            return NotFound(f"aif://{self._logical(rel)}: no good copy on any tier ({bad})")
        tiers = ", ".join(self.mount.read_order)
        return NotFound(f"aif://{self._logical(rel)}: no copy on any tier ({tiers})")

    def records_for(self, rels: Sequence[str]) -> Mapping[str, ReplicaRecord]:
        """The catalog's records of every tier's copy of ``rels`` (none without a catalog)."""
        if self.records is None:
            return {}
        tiers = dict.fromkeys([*self.mount.read_order, self.mount.write_tier])
        urls = [self.connectors[t].url(r) for t in tiers for r in rels]
        return self.records(urls)

    def verified(
        self,
        rel: str,
        stats: Mapping[str, Mapping[str, FileStat]],
        records: Mapping[str, ReplicaRecord],
        judged: _Judged | None = None,
    ) -> Route | None:
        """The first copy in read order that the catalog checksummed, that is
        unchanged, and that holds the write tier's version (a replica of an
        older version is skipped: then the write tier's copy is served)."""
        judged = judged or _Judged(self, rel, stats, records)
        write = self.mount.write_tier
        ref_stat = stats.get(write, {}).get(rel)
        ref_record = records.get(self.connectors[write].url(rel))
        reference = None  # the checksum of the write tier's copy, if it is the one recorded
        if ref_record is not None and ref_stat is not None and judged.names_version(write):
            reference = ref_record.checksum
        skipped: list[tuple[str, str]] = []
        other_version = False
        for name in self.mount.read_order:
            url = self.connectors[name].url(rel)
            st, record = stats[name].get(rel), records.get(url)
            good, why = judged.verdict(name)
            if not good or st is None or record is None:
                skipped.append((name, why))
            elif name != write and ref_stat is not None and record.checksum != reference:
                skipped.append((name, f"another version than the write tier {write!r} holds"))
                other_version = True
            else:
                return Route(
                    self._logical(rel), name, url, why, st.size, tuple(skipped), record.checksum, st
                )
        if other_version and ref_stat is not None and write not in judged.bad:
            url = self.connectors[write].url(rel)
            reason = f"{write!r} is the write tier; the verified copies elsewhere are older"
            return Route(self._logical(rel), write, url, reason, ref_stat.size, tuple(skipped))
        return None

    def decide(
        self,
        rel: str,
        stats: Mapping[str, Mapping[str, FileStat]],
        bad: Mapping[str, str] | None = None,
    ) -> Route | None:
        """The size rule: the first copy whose size equals the write tier's copy
        (never a copy in ``bad``, tier -> why)."""
        mount = self.mount
        ref = stats.get(mount.write_tier, {}).get(rel)
        reference = None if ref is None else ref.size
        skipped: list[tuple[str, str]] = []
        for name in mount.read_order:
            st = stats.get(name, {}).get(rel)
            if st is None:
                skipped.append((name, "no copy"))
                continue
            if bad and name in bad:
                skipped.append((name, bad[name]))
                continue
            if mount.tier(name).storage_kind.node_local:
                skipped.append((name, "a node-local cache copy serves only when verified"))
                continue
            if reference is None:
                reason = f"write tier {mount.write_tier!r} has no copy; {name!r} has one"
            elif name == mount.write_tier:
                reason = f"{name!r} is the write tier"
            elif st.size != reference:
                why = f"size {st.size} differs from {reference} on write tier {mount.write_tier!r}"
                skipped.append((name, why))
                continue
            else:
                reason = f"same size as the write tier {mount.write_tier!r} ({st.size} bytes)"
            url = self.connectors[name].url(rel)
            return Route(self._logical(rel), name, url, reason, st.size, tuple(skipped))
        return None


class _Judged:
    """Whether each tier's copy of one file is the one the catalog checksummed,
    decided once per tier (a copy is hashed again at most once per route)."""

    def __init__(
        self,
        router: Router,
        rel: str,
        stats: Mapping[str, Mapping[str, FileStat]],
        records: Mapping[str, ReplicaRecord],
    ) -> None:
        self.router, self.rel, self.stats, self.records = router, rel, stats, records
        self.verdicts: dict[str, tuple[bool, str]] = {}
        self.bad: dict[str, str] = {}  # tiers whose copy must not be served by any rule

    def names_version(self, tier: str) -> bool:
        """Whether this copy's record tells the file's version: the copy is verified,
        or held bad (its record still names the version it should hold)."""
        return self.verdict(tier)[0] or tier in self.bad

    def verdict(self, tier: str) -> tuple[bool, str]:
        """(verified, why): the reason it serves, or why it is skipped."""
        if tier not in self.verdicts:
            self.verdicts[tier] = self._judge(tier)
        return self.verdicts[tier]

    def _judge(self, tier: str) -> tuple[bool, str]:
        conn = self.router.connectors[tier]
        st = self.stats.get(tier, {}).get(self.rel)
        record = self.records.get(conn.url(self.rel))
        if st is None:
            return False, "no copy"
        if record is None:
            return False, "copy not verified by the catalog"
        if record.bad:
            return self._condemned(tier, f"held bad by the catalog: {record.bad}")
        if record.ctime_ns is not None and not _local(st):  # a listing's info: stat it
            st = conn.stats([self.rel]).get(self.rel) or st
        if record.matches(st):
            if record.checksum:
                return True, f"unchanged since the catalog checksummed it ({record.checksum})"
            return True, "unchanged since the catalog recorded it (size and mtime/ETag)"
        if not record.worth_rehashing(st):
            return False, "changed since the catalog checksummed it"
        return self._rehashed(tier, conn, record)

    def _rehashed(self, tier: str, conn: Connector, record: ReplicaRecord) -> tuple[bool, str]:
        """Hash a copy whose ctime moved; serve it only if its bytes are the checksummed ones."""
        hashed = rehash(conn, self.rel)
        if hashed is None:
            return False, "no copy"
        if hashed.checksum is None:
            return False, "changed while it was hashed again"
        if hashed.checksum != record.checksum:
            why = f"hashed again to {hashed.checksum}, not the catalog's {record.checksum}"
            warnings.warn(
                f"{conn.url(self.rel)}: {why}: the copy is marked bad and not served "
                f"(aifdata stage puts a good copy back)",
                RuntimeWarning,
                stacklevel=2,
            )
            _tell(record, hashed.stat, why)
            return self._condemned(tier, why)
        _tell(record, seal(conn, self.rel, hashed.checksum, hashed.stat, write=False), None)
        return True, f"changed in metadata only: hashed again to the catalog's {record.checksum}"

    def _condemned(self, tier: str, why: str) -> tuple[bool, str]:
        self.bad[tier] = why
        return False, why


def _tell(record: ReplicaRecord, stat: FileStat, problem: str | None) -> None:
    if record.report is not None:
        record.report(stat, problem)

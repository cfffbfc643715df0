"""Choose the tier that serves a read, and say why.

The rule: walk the mount's read order and take the first tier whose copy the
catalog has checksummed and that has not changed since (same size, and same
mtime or ETag). Without such a copy, take the first tier whose copy has the
same size as the write tier's copy (the write tier is the reference); when the
write tier has no copy, the first tier that has one serves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._config import Mount
from ._errors import NotFound
from .connectors import Connector
from .connectors._base import FileStat


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


class ReplicaRecord(NamedTuple):
    """What the catalog knows of one copy: its size, checksum and version markers."""

    size: int
    checksum: str | None
    mtime: float | None
    etag: str | None

    def matches(self, st: FileStat) -> bool:
        """Whether a live copy is still the one the catalog checksummed."""
        if st.size != self.size:
            return False
        if self.etag and st.etag:
            return self.etag.strip('"') == st.etag.strip('"')
        if self.mtime is not None and st.mtime is not None:
            return abs(self.mtime - st.mtime) < 1e-6
        return False


#: Looks up catalog records by physical URL (``s3://b/k`` or a PFS path).
RecordLookup = Callable[[Sequence[str]], Mapping[str, ReplicaRecord]]


class Router:
    """Routes the reads of one mount over its connectors.

    With a catalog (``records``), a copy the catalog has checksummed, and that
    has not changed since (same size and mtime or ETag), is preferred in read
    order; when no copy is verified the size rule applies.
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
        names = dict.fromkeys([*mount.read_order, mount.write_tier])
        stats = {name: self.connectors[name].stats(rels) for name in names}
        records = self.records_for(rels)
        return {rel: self.choose(rel, stats, records) for rel in rels}

    def choose(
        self,
        rel: str,
        stats: Mapping[str, Mapping[str, FileStat]],
        records: Mapping[str, ReplicaRecord],
    ) -> Route | NotFound:
        """The verified copy if there is one, else the size rule, else NotFound."""
        route = self.verified(rel, stats, records) or self.decide(rel, stats)
        if route is not None:
            return route
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
    ) -> Route | None:
        """The first copy in read order that the catalog checksummed, that is
        unchanged, and that holds the write tier's version (a replica of an
        older version is skipped: then the write tier's copy is served)."""
        write = self.mount.write_tier
        ref_stat = stats.get(write, {}).get(rel)
        ref_record = records.get(self.connectors[write].url(rel))
        reference = None  # the checksum of the write tier's copy, if it is the one recorded
        if ref_record is not None and ref_stat is not None and ref_record.matches(ref_stat):
            reference = ref_record.checksum
        skipped: list[tuple[str, str]] = []
        other_version = False
        for name in self.mount.read_order:
            url = self.connectors[name].url(rel)
            st, record = stats[name].get(rel), records.get(url)
            if st is None:
                skipped.append((name, "no copy"))
            elif record is None:
                skipped.append((name, "copy not verified by the catalog"))
            elif not record.matches(st):
                skipped.append((name, "changed since the catalog checksummed it"))
            elif name != write and ref_stat is not None and record.checksum != reference:
                skipped.append((name, f"another version than the write tier {write!r} holds"))
                other_version = True
            else:
                reason = (
                    f"unchanged since the catalog checksummed it ({record.checksum})"
                    if record.checksum
                    else "unchanged since the catalog recorded it (size and mtime/ETag)"
                )
                return Route(
                    self._logical(rel), name, url, reason, st.size, tuple(skipped), record.checksum
                )
        if other_version and ref_stat is not None:
            url = self.connectors[write].url(rel)
            reason = f"{write!r} is the write tier; the verified copies elsewhere are older"
            return Route(self._logical(rel), write, url, reason, ref_stat.size, tuple(skipped))
        return None

    def decide(self, rel: str, stats: Mapping[str, Mapping[str, FileStat]]) -> Route | None:
        """The size rule: the first copy whose size equals the write tier's copy."""
        mount = self.mount
        ref = stats.get(mount.write_tier, {}).get(rel)
        reference = None if ref is None else ref.size
        skipped: list[tuple[str, str]] = []
        for name in mount.read_order:
            st = stats.get(name, {}).get(rel)
            if st is None:
                skipped.append((name, "no copy"))
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

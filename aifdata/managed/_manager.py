"""The tier manager the ``aif://`` filesystem calls on every read of a managed mount."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .._config import Config, Mount
from .._router import ReplicaRecord, Route, Router
from ..catalog import Catalog
from ..connectors import Connector
from ..connectors._seal import local_path
from ..connectors.pfs import read_if_same
from ._access import AccessLog
from ._cache_index import CacheIndex
from ._hydrate import HydrateOutcome, hydrate
from ._metrics import Metrics

#: After a hydration that failed during its transfer, the same file is not tried
#: again by this process for this long (seconds): each try costs a transfer that
#: the read then repeats.
RETRY_AFTER = 300.0

#: How old (seconds) the catalog's word on other processes' commits may be for a
#: known route: what the read's own access check asked a moment before.
KNOWN_MAX_AGE = 0.05

_warned: set[tuple[str, str]] = set()  # (tier URL, rel): one warning per file per process
_warned_lock = threading.Lock()


class _Known(NamedTuple):
    """A route to a verified local copy, and what identifies that copy."""

    route: Route
    identity: tuple[int, int, int]  # size, inode, ctime (ns)
    path: str
    router: Router


class Manager:
    """Hydrates reads onto each managed mount's hydration tier, keeps node-local
    cache records, and counts what each tier serves (see :mod:`aifdata.managed`)."""

    def __init__(self, catalog: Catalog, config: Config) -> None:
        self.catalog = catalog
        self.config = config
        self.access = AccessLog(catalog, config)
        self.metrics = Metrics(catalog, config)
        self._caches = {
            t.url.rstrip("/") + "/": t.url
            for m in config.mounts
            for t in m.tiers
            if t.storage_kind.node_local
        }
        self._indexes: dict[str, CacheIndex] = {}
        self._failed: dict[tuple[str, str], float] = {}
        self._known = threading.local()  # per thread: each has its own catalog connection

    def known_route(self, router: Router, rel: str) -> Route | None:
        """On a mount with ``hydrate_check = "on-sync"``: the route of a verified local
        copy this thread routed to before, while the catalog records no new version and
        the copy's stat (size, inode, ctime) holds: a read then costs one local stat, no
        request to the write tier (S3 changes are seen once ``aifdata sync`` records them)."""
        held = self._known_routes().get((router.mount.prefix, rel))
        if held is None:
            return None
        st = router.connectors[held.route.tier].stats([rel]).get(rel)
        if st is None or (st.size, st.inode, st.ctime_ns) != held.identity:
            self.forget(router.mount, rel)
            return None
        return held.route

    def read_known(
        self, mount: Mount, rel: str, start: int | None, end: int | None
    ) -> bytes | None:
        """The bytes of a read served by a known route (see :meth:`known_route`), read
        and counted at once: the copy is opened and its identity checked on the open
        file, so a read costs what a plain ``open().read()`` costs. None: not known."""
        held = self._known_routes().get((mount.prefix, rel))
        if held is None:
            return None
        data = read_if_same(held.path, held.identity, start, end)
        if data is None:
            self.forget(mount, rel)
            return None
        self.served(held.router, held.route, len(data))
        return data

    def forget(self, mount: Mount, rel: str) -> None:
        """Drop this thread's known route of ``rel`` (its copy changed)."""
        self._known_routes().pop((mount.prefix, rel), None)

    def wrote(self, router: Router, rel: str) -> None:
        """``rel`` is being written through ``aif://`` on the write tier: on a managed
        mount the catalog stops vouching for the old copy there, so that every process
        routes the file afresh (the copies made from the old bytes never serve it)."""
        self.forget(router.mount, rel)
        if router.mount.hydrate != "off":
            self.catalog.overwritten(router.connectors[router.mount.write_tier].url(rel))

    def _known_routes(self) -> dict[tuple[str, str], _Known]:
        """This thread's known routes, forgotten when a dataset version was recorded or a
        recorded copy written over since (:meth:`Catalog.routes_mark`; a commit of
        counters or access times alone keeps them)."""
        known = self._known
        mark = self.catalog.generation(max_age=KNOWN_MAX_AGE)
        if getattr(known, "mark", None) != mark:
            known.mark = mark
            routes_mark = self.catalog.routes_mark()
            if getattr(known, "routes_mark", None) != routes_mark:
                known.routes_mark, known.routes = routes_mark, {}
        routes: dict[tuple[str, str], _Known] = known.routes
        return routes

    def remember(self, router: Router, rel: str, route: Route) -> None:
        """Keep a route to a verified local copy for :meth:`known_route` and
        :meth:`read_known` (decided by a read, or by an ``info``)."""
        mount = router.mount
        if not mount.trusts_catalog or route.checksum is None:
            return
        if not mount.tier(route.tier).local or route.tier == mount.write_tier:
            return
        conn = router.connectors[route.tier]
        path = local_path(conn, rel)
        st = route.stat if route.stat is not None else conn.stats([rel]).get(rel)
        if path is None or st is None or st.ctime_ns is None or st.inode is None:
            return
        identity = (st.size, st.inode, st.ctime_ns)
        self._known_routes()[mount.prefix, rel] = _Known(route, identity, path, router)

    # -- TierManager ---------------------------------------------------------

    def serve(self, router: Router, rel: str, route: Route, *, whole: bool) -> Route:
        """The route to read from: a verified copy on the hydration tier when this
        read hydrates (or found one), else ``route``."""
        mount = router.mount
        if mount.tier(route.tier).local:
            self.remember(router, rel, route)
            return route
        if mount.hydrate == "off":
            return route
        if not whole and (route.size is None or route.size > mount.hydrate_ranged_max):
            return route  # a large file's ranges: only whole reads and prefetch hydrate it
        key = (router.connectors[route.tier].url(""), rel)
        if time.monotonic() < self._failed.get(key, 0.0):
            return route
        outcome = self._hydrate(router, rel, route)
        if outcome.outcome == "failed":
            if outcome.costly:
                self._failed[key] = time.monotonic() + RETRY_AFTER
            _warn_once(router, rel, route, outcome.reason)
        if outcome.route is not None:
            self.remember(router, rel, outcome.route)
        return outcome.route or route

    def served(self, router: Router, route: Route, nbytes: int | None) -> None:
        """Count one read served (metrics; last access of a local copy)."""
        self.access.note(router, route)
        self.metrics.served(router, route, nbytes)

    def hydrate_file(self, router: Router, rel: str) -> HydrateOutcome:
        """Hydrate one file whatever its size (``aifdata prefetch``); never warns."""
        route = router.route(rel)
        tier = router.mount.hydration_tier
        if route.tier == tier:
            return HydrateOutcome("present", route=route)
        if router.mount.tier(route.tier).local:
            return HydrateOutcome("skipped", reason=f"served by the local tier {route.tier!r}")
        return self._hydrate(router, rel, route)

    def _hydrate(self, router: Router, rel: str, route: Route) -> HydrateOutcome:
        outcome = hydrate(self, router, rel, route)
        tier = router.mount.hydration_tier or route.tier
        if outcome.outcome == "hydrated":
            self.metrics.count(router, tier, rel, "hydrations")
            self.metrics.count(router, tier, rel, "bytes_hydrated", outcome.bytes)
        elif outcome.outcome == "failed":
            self.metrics.count(router, tier, rel, "hydration_failures")
        return outcome

    # -- routing records -----------------------------------------------------

    def records(self, urls: Sequence[str]) -> Mapping[str, ReplicaRecord]:
        """The catalog's records of these URLs, and the node's own records of the
        copies on node-local cache tiers."""
        cached: dict[str, list[str]] = {}
        shared: list[str] = []
        for url in urls:
            root = next((r for r in self._caches if url.startswith(r)), None)
            (cached.setdefault(root, []) if root else shared).append(url)
        out = dict(self.catalog.replica_records(shared)) if shared else {}
        for root, some in cached.items():
            out.update(self._verified(self.index(self._caches[root]), some, out))
        return out

    def _verified(
        self, index: CacheIndex, urls: list[str], shared: Mapping[str, ReplicaRecord]
    ) -> dict[str, ReplicaRecord]:
        """A cache's records, less those of files ingested without a checksum whose
        write-tier object has another ETag now than the one copied (never served)."""
        records = index.records(urls)
        unsummed = [u for u, r in records.items() if not r.checksum]
        if unsummed:
            made_from = index.source_etags(unsummed)
            for url in unsummed:
                if _etag(made_from.get(url)) != _etag(self._write_etag(url, shared)):
                    del records[url]
        return records

    def _write_etag(self, url: str, shared: Mapping[str, ReplicaRecord]) -> str | None:
        located = self.config.locate(url)
        if located is None:
            return None
        mount, _, rel = located
        write = mount.tier(mount.write_tier).url.rstrip("/") + "/" + rel
        record = shared.get(write) or self.catalog.replica_records([write]).get(write)
        return None if record is None or record.etag is None else record.etag

    def index(self, root: str) -> CacheIndex:
        """The node index of the cache tier rooted at ``root``."""
        if root not in self._indexes:
            self._indexes[root] = CacheIndex(root)
        return self._indexes[root]

    def cache_index(self, conn: Connector) -> CacheIndex:
        """The node index of a cache tier's connector."""
        return self.index(conn.tier.url)

    def flush(self) -> None:
        """Write what is kept in memory (last-access times, counters) now."""
        self.access.flush()
        self.metrics.flush()


def _warn_once(router: Router, rel: str, route: Route, reason: str) -> None:
    """One RuntimeWarning per file per process: why it was not hydrated, naming the tier."""
    tier = router.mount.hydration_tier
    key = (router.connectors[tier or route.tier].url(""), rel)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(
        f"aif://{route.path}: not hydrated onto tier {tier!r} ({reason}); read from"
        f" {route.tier!r} instead",
        RuntimeWarning,
        stacklevel=5,  # the caller of cat_file (and of open, get_file, ...)
    )


def _etag(etag: str | None) -> str:
    return (etag or "").strip('"')

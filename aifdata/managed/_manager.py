"""The tier manager the ``aif://`` filesystem calls on every read of a managed mount."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._config import Config
from .._router import ReplicaRecord, Route, Router
from ..catalog import Catalog
from ._access import AccessLog
from ._metrics import Metrics


class Manager:
    """Hydrates reads onto each managed mount's hydration tier, keeps node-local
    cache records, and counts what each tier serves (see :mod:`aifdata.managed`)."""

    def __init__(self, catalog: Catalog, config: Config) -> None:
        self.catalog = catalog
        self.config = config
        self.access = AccessLog(catalog, config)
        self.metrics = Metrics(catalog, config)

    # -- TierManager ---------------------------------------------------------

    def serve(self, router: Router, rel: str, route: Route, *, whole: bool) -> Route:
        """The route to read from: a verified copy on the hydration tier when this
        read hydrates (or found one), else ``route``."""
        return route

    def served(self, router: Router, route: Route, nbytes: int | None) -> None:
        """Count one read served (metrics; last access of a local copy)."""
        self.access.note(router, route)
        self.metrics.served(router, route, nbytes)

    # -- routing records -----------------------------------------------------

    def records(self, urls: Sequence[str]) -> Mapping[str, ReplicaRecord]:
        """The catalog's records of these URLs, and the node's own records of the
        copies on node-local cache tiers."""
        return self.catalog.replica_records(urls)

    def flush(self) -> None:
        """Write what is kept in memory (last-access times, counters) now."""
        self.access.flush()
        self.metrics.flush()

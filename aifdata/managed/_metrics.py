"""Per-dataset, per-tier counters: bytes and files served, hydrations, releases,
cache hits and misses, S3 requests saved (STUB: filled in by the metrics part)."""

from __future__ import annotations

from .._config import Config
from .._router import Route, Router
from ..catalog import Catalog


class Metrics:
    """Counts in memory, adds to the catalog's totals in batches."""

    def __init__(self, catalog: Catalog, config: Config) -> None:
        self.catalog = catalog
        self.config = config

    def served(self, router: Router, route: Route, nbytes: int | None) -> None:
        """A read of ``route`` was served (``nbytes`` None: a file was opened)."""

    def count(self, router: Router, tier: str, rel: str, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` of the dataset holding ``rel`` on ``tier``."""

    def flush(self) -> None:
        """Add what was counted so far to the catalog's totals."""

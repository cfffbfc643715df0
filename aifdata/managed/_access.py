"""Last access of managed copies, recorded at far less than a write per read.

Clusters mount with ``noatime``, so a copy's last read is kept by aifdata:
in memory per process, written in batches (STUB: filled in by the release part).
"""

from __future__ import annotations

from .._config import Config
from .._router import Route, Router
from ..catalog import Catalog


class AccessLog:
    """Notes which local copies were read, and writes the times in batches."""

    def __init__(self, catalog: Catalog, config: Config) -> None:
        self.catalog = catalog
        self.config = config

    def note(self, router: Router, route: Route) -> None:
        """A read of ``route`` was served (remembered in memory)."""

    def flush(self) -> None:
        """Write the last-access times noted so far."""

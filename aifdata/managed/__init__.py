"""The managed tier: hydrate on read, a node-local cache, prefetch, release, pin,
sync from S3, and per-dataset metrics.

It sits beside the catalog and drives connectors, as FSx for Lustre's data
repository associations or JuiceFS's cache do for their users: the first read
of a file from S3 leaves a verified copy on the mount's fast tier (once per file
across processes and nodes, under a lease that needs no ``flock``), later reads
are served from there, and space is reclaimed only where another tier holds the
same bytes. :class:`Manager` is what :mod:`aifdata._wiring` hands the ``aif://``
filesystem.
"""

from __future__ import annotations

from ._manager import Manager
from ._metrics import TierStats, by_dataset, stats
from ._prefetch import PrefetchReport, prefetch
from ._prefetch import targets as prefetch_targets
from ._release import ReleasedCopy, ReleaseReport, release
from ._sync import sync
from ._sync_report import SyncChange, SyncReport

__all__ = [
    "Manager",
    "PrefetchReport",
    "ReleaseReport",
    "ReleasedCopy",
    "SyncChange",
    "SyncReport",
    "TierStats",
    "by_dataset",
    "prefetch",
    "prefetch_targets",
    "release",
    "stats",
    "sync",
]

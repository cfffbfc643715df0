"""Per-dataset, per-tier counters: bytes and files served, hydrations, releases,
cache hits and misses, S3 requests saved.

Counting is a dict increment in memory; every :data:`FLUSH_SECONDS` (from a read),
at :meth:`Metrics.flush` and at exit, the counts are added to the catalog's
``tier_metrics`` table with ``value = value + ?`` in one transaction, so the
counts of many processes add up exactly. The dataset of each counted file is
looked up at flush time, once per distinct URL (``-`` for a file of no dataset).
A forked child forgets the counts it inherited (its parent adds them).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing.util
import os
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

from .._config import Config, Mount
from .._errors import AifDataError
from .._router import Route, Router
from ..catalog import Catalog
from ..catalog._store import write_transaction

#: Seconds between two flushes made by reads (at most; one read may wait for a flush).
FLUSH_SECONDS = 5.0
#: The dataset name of a file that belongs to no dataset.
NO_DATASET = "-"

#: One counter: the URLs the dataset is looked up by, the tier, the counter's name.
_Key = tuple[tuple[str, ...], str, str]
#: What one read of a copy counts: the URLs, the tier, the counters it adds one to.
_Plan = tuple[tuple[str, ...], str, tuple[str, ...]]

_UPSERT = (
    "INSERT INTO tier_metrics (dataset, tier, name, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (dataset, tier, name) DO UPDATE SET value = tier_metrics.value + excluded.value"
)

_live: weakref.WeakSet[Metrics] = weakref.WeakSet()


class Metrics:
    """Counts in memory, adds to the catalog's totals in batches."""

    def __init__(self, catalog: Catalog, config: Config) -> None:
        self.catalog = catalog
        self.config = config
        self._lock = threading.Lock()
        self._counts: dict[_Key, int] = {}
        self._plans: dict[tuple[str, str], _Plan] = {}  # (mount prefix, copy URL) -> plan
        self._due = time.monotonic() + FLUSH_SECONDS
        self._warned = False
        _live.add(self)

    def served(self, router: Router, route: Route, nbytes: int | None) -> None:
        """A read of ``route`` was served (``nbytes`` None: a file was opened, its
        bytes are not known here)."""
        plan = self._plans.get((router.mount.prefix, route.url)) or self._plan(router, route)
        urls, tier, names = plan
        with self._lock:
            for name in names:
                self._add(urls, tier, name, 1)
            if nbytes:
                self._add(urls, tier, "bytes_served", nbytes)
        if time.monotonic() >= self._due:
            self.flush()

    def _plan(self, router: Router, route: Route) -> _Plan:
        """The counters one read of ``route`` adds one to (worked out once per copy)."""
        mount = router.mount
        rel = route.path[len(mount.prefix) :].lstrip("/")
        urls: tuple[str, ...] = (route.url, router.connectors[mount.write_tier].url(rel))
        names: tuple[str, ...] = ("files_served",)
        if managed(mount):
            local = mount.tier(route.tier).local
            names += ("hits", "s3_requests_saved") if local else ("misses",)
        plan = (urls, route.tier, names)
        if len(self._plans) > 100_000:
            self._plans.clear()
        self._plans[mount.prefix, route.url] = plan
        return plan

    def count(self, router: Router, tier: str, rel: str, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` of the dataset holding ``rel`` on ``tier``."""
        mount = router.mount
        urls = (router.connectors[tier].url(rel), router.connectors[mount.write_tier].url(rel))
        with self._lock:
            self._add(urls, tier, name, n)

    def _add(self, urls: tuple[str, ...], tier: str, name: str, n: int) -> None:
        key = (urls, tier, name)
        self._counts[key] = self._counts.get(key, 0) + n

    def flush(self) -> None:
        """Add what was counted so far to the catalog's totals (a read-only catalog, or
        one no longer there, keeps nothing, quietly; a catalog that cannot be written now
        keeps the counts for the next flush and warns once)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            self._due = time.monotonic() + FLUSH_SECONDS
        if not counts:
            return
        try:
            # a catalog removed meanwhile (a temporary home cleaned up) is never made anew
            if not self.catalog.exists() or self.catalog.read_only:
                return
            rows = _totals(counts, datasets_of(self.catalog, {u for k in counts for u in k[0]}))
            with write_transaction(self.catalog.conn) as conn:
                conn.executemany(_UPSERT, [(*key, value) for key, value in rows.items()])
        except (AifDataError, sqlite3.Error, OSError) as exc:
            with self._lock:
                for key, value in counts.items():
                    self._add(*key, value)
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"tier metrics not written to {self.catalog.path} ({exc}); kept for the next try",
                RuntimeWarning,
                stacklevel=3,
            )

    def _forget(self) -> None:
        """In a forked child: the counts inherited are the parent's to add."""
        self._lock = threading.Lock()
        self._counts = {}


def managed(mount: Mount) -> bool:
    """Whether a mount's fast tiers are managed: it hydrates, or it has a cache tier."""
    return mount.hydrate != "off" or any(t.storage_kind.node_local for t in mount.tiers)


def datasets_of(catalog: Catalog, urls: Iterable[str]) -> dict[str, str]:
    """The dataset each URL is a recorded copy of (the newest record wins); URLs of
    no dataset are left out."""
    found: dict[str, str] = {}
    unique = list(dict.fromkeys(urls))
    for i in range(0, len(unique), 500):
        chunk = unique[i : i + 500]
        rows = catalog.conn.execute(
            "SELECT r.url, d.name FROM replicas r JOIN files f ON f.id = r.file_id"
            " JOIN versions v ON v.id = f.version_id JOIN datasets d ON d.id = v.dataset_id"
            f" WHERE r.url IN ({','.join('?' * len(chunk))}) ORDER BY r.recorded",
            chunk,
        )
        found.update((url, name) for url, name in rows)
    return found


def _totals(
    counts: Mapping[_Key, int], names: Mapping[str, str]
) -> dict[tuple[str, str, str], int]:
    """The counts per (dataset, tier, counter): the first URL of a key that names a
    dataset decides."""
    out: dict[tuple[str, str, str], int] = {}
    for (urls, tier, name), value in counts.items():
        dataset = next((names[u] for u in urls if u in names), NO_DATASET)
        key = (dataset, tier, name)
        out[key] = out.get(key, 0) + value
    return out


@dataclass(frozen=True)
class TierStats:
    """The totals of one dataset on one tier, over every process that counted."""

    dataset: str
    tier: str
    bytes_served: int = 0
    files_served: int = 0
    hits: int = 0
    misses: int = 0
    s3_requests_saved: int = 0
    hydrations: int = 0
    bytes_hydrated: int = 0
    hydration_failures: int = 0
    releases: int = 0
    bytes_released: int = 0

    @property
    def hit_ratio(self) -> float | None:
        """Reads served by a local tier, of the reads of a managed mount (None: none)."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else None

    def __add__(self, other: TierStats) -> TierStats:
        """The sum of two rows (named after this one)."""
        summed = {c: getattr(self, c) + getattr(other, c) for c in COUNTERS}
        return TierStats(self.dataset, self.tier, **summed)

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form, with the hit ratio."""
        return {**asdict(self), "hit_ratio": self.hit_ratio}


#: The counters every process adds up, in the order they are shown.
COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(TierStats))[2:]


def stats(catalog: Catalog, dataset: str | None = None) -> list[TierStats]:
    """The totals per dataset and tier, of the datasets the caller may read (and of
    files in no dataset, ``-``), sorted; ``dataset`` keeps one (UnknownDataset when
    the caller may not read it or it does not exist). The counts of this process's
    reads so far are added first."""
    _flush_all()
    if dataset is not None:
        catalog.versions(dataset)  # refuses a dataset unknown or hidden to the caller
        readable = {dataset}
    else:
        readable = {*catalog.datasets(), NO_DATASET}
    values: dict[tuple[str, str], dict[str, int]] = {}
    for name, tier, counter, value in catalog.conn.execute(
        "SELECT dataset, tier, name, value FROM tier_metrics ORDER BY dataset, tier"
    ):
        if name in readable and counter in COUNTERS:
            values.setdefault((name, tier), {})[counter] = int(value)
    return [TierStats(name, tier, **v) for (name, tier), v in values.items()]


def by_dataset(rows: Iterable[TierStats]) -> dict[str, TierStats]:
    """Each dataset's totals over its tiers (tier ``*``)."""
    out: dict[str, TierStats] = {}
    for row in rows:
        out[row.dataset] = out.get(row.dataset, TierStats(row.dataset, "*")) + row
    return out


def _flush_all() -> None:
    """At exit (and at the end of a multiprocessing child): every live counter flushed."""
    for metrics in list(_live):
        with contextlib.suppress(Exception):  # never fail an exit over a counter
            metrics.flush()


def _after_fork_in_child() -> None:
    for metrics in list(_live):
        metrics._forget()


def _arm_child_exit(_: object) -> None:
    """A multiprocessing child leaves with ``os._exit``: flush from its exit function."""
    multiprocessing.util.Finalize(None, _flush_all, exitpriority=10)


atexit.register(_flush_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
multiprocessing.util.register_after_fork(_flush_all, _arm_child_exit)

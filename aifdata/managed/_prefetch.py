"""Prefetch: hydrate every file of a dataset version onto its mount's hydration
tier before a job reads it (the warm-up of JuiceFS ``warmup`` or an FSx
``hsm_restore``).

Files hydrate in parallel threads, each under its own lease, so a prefetch
and the readers of a job (or a second prefetch) never copy a file twice. It
resumes after a kill: a copy that is in place and verified counts as
``present`` and costs one stat; a copy cut short was never renamed into place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from .._config import Mount
from .._errors import ConfigError, NotFound
from .._filesystem import MountedFileSystem
from .._router import RecordLookup, Router
from .._threads import ThreadPool
from ..catalog import Catalog, Dataset, split_ref
from ..connectors import connector_for


class Outcome(Protocol):
    """What hydrating one file did (:class:`aifdata.managed.HydrateOutcome`)."""

    @property
    def outcome(self) -> str: ...  # hydrated, present, skipped or failed
    @property
    def bytes(self) -> int: ...
    @property
    def reason(self) -> str: ...


class Hydrator(Protocol):
    """What prefetch asks of the tier manager."""

    def hydrate_file(self, router: Router, rel: str) -> Outcome: ...
    def records(self, urls: Sequence[str]) -> Mapping[str, Any]: ...
    def flush(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """One file to prefetch: its mount and path there, its size, its dataset."""

    mount: Mount
    rel: str
    size: int
    dataset: str

    @property
    def url(self) -> str:
        return f"aif://{self.mount.prefix}/{self.rel}"


@dataclass(frozen=True)
class PrefetchReport:
    """What a prefetch did: files hydrated now, already present, skipped (nothing to
    do) and failed (with why), the bytes hydrated, the seconds it took."""

    target: str
    tiers: tuple[str, ...]
    hydrated: int = 0
    present: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: tuple[tuple[str, str], ...] = ()  # (aif:// URL, why)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "tiers": list(self.tiers),
            "hydrated": self.hydrated,
            "present": self.present,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "failures": [{"url": u, "why": w} for u, w in self.failures],
        }


def prefetch(
    catalog: Catalog,
    target: str,
    *,
    workers: int = 8,
    progress: Callable[[int], object] | None = None,
    manager: Hydrator | None = None,
    files: Sequence[Target] | None = None,
) -> PrefetchReport:
    """Hydrate every file of ``target`` onto its mount's hydration tier.

    ``target`` is ``NAME`` (the latest version), ``NAME@V``, or an ``aif://``
    prefix (the files under it of the latest versions of the datasets there).
    Needs read on each dataset. ``progress`` hears the bytes of each file done;
    ``files`` are the :func:`targets` of ``target`` when the caller has them.
    """
    started = time.monotonic()
    files = targets(catalog, target) if files is None else files
    if manager is None:
        from ._manager import Manager

        manager = cast(Hydrator, Manager(catalog, catalog.config))
    routers = {m.prefix: _router(m, manager.records) for m in {f.mount for f in files}}

    def one(f: Target) -> tuple[Target, str, int, str]:
        try:
            done = manager.hydrate_file(routers[f.mount.prefix], f.rel)
            outcome, nbytes, why = done.outcome, done.bytes, done.reason
        except Exception as exc:  # one file's failure is reported, the rest go on
            outcome, nbytes, why = "failed", 0, str(exc) or type(exc).__name__
        if progress is not None:
            progress(f.size)
        return f, outcome, nbytes, why

    with ThreadPool(max_workers=max(1, workers), thread_name_prefix="aif-prefetch") as pool:
        results = list(pool.map(one, files))
    manager.flush()
    counts = dict.fromkeys(("hydrated", "present", "skipped", "failed"), 0)
    for _, outcome, _, _ in results:
        counts[outcome if outcome in counts else "failed"] += 1
    return PrefetchReport(
        target,
        tuple(sorted({f.mount.hydration_tier or "" for f in files})),
        **counts,
        bytes=sum(n for _, o, n, _ in results if o == "hydrated"),
        seconds=time.monotonic() - started,
        failures=tuple((f.url, why) for f, o, _, why in results if o == "failed"),
    )


def targets(catalog: Catalog, target: str) -> list[Target]:
    """The files ``target`` names, each in its mount; ConfigError naming a mount with no
    tier to hydrate onto, NotFound for a prefix with no recorded file under it."""
    if target.startswith("aif://"):
        found = _under(catalog, target)
        if not found:
            raise NotFound(f"{target}: no recorded file of a dataset there")
    else:
        name, version = split_ref(target)
        found = _files(catalog, catalog.dataset(name, version))
    for mount in {f.mount for f in found}:
        if mount.hydration_tier is None:
            raise ConfigError(
                f"mount {mount.prefix!r} has no tier to prefetch onto: it needs a PFS or cache"
                f" tier besides its write tier {mount.write_tier!r}"
            )
    return found


def _under(catalog: Catalog, prefix: str) -> list[Target]:
    """The files under an ``aif://`` prefix of the latest versions of the datasets the
    caller may read."""
    path = MountedFileSystem._strip_protocol(prefix)
    catalog.gate().check(path, "read", "prefetch")
    mount, rel = catalog.config.resolve(path)
    below = rel.rstrip("/") + "/" if rel else ""
    return [
        f
        for name in catalog.datasets()
        for f in _files(catalog, catalog.dataset(name))
        if f.mount == mount and (not below or f.rel.startswith(below) or f.rel == rel)
    ]


def _files(catalog: Catalog, ds: Dataset) -> list[Target]:
    """A version's files, each where its recorded copies are (files recorded outside
    every mount are left out: they have no tier to hydrate onto)."""
    config = catalog.config
    out: dict[tuple[str, str], Target] = {}
    for f in ds.files:
        for _tier, url in f.replicas:
            located = config.locate(url)
            if located is not None:
                mount, _, rel = located
                out.setdefault((mount.prefix, rel), Target(mount, rel, f.size, ds.name))
                break
    return list(out.values())


def _router(mount: Mount, records: RecordLookup) -> Router:
    """A router of ``mount`` whose records come from the tier manager."""
    return Router(mount, {t.name: connector_for(t) for t in mount.tiers}, records)

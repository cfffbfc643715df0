"""``release``: free copies on managed tiers, least recently read first.

A copy on a PFS or cache tier is released (its file removed, then its record)
only where the mount's write tier holds the same bytes: the write tier's
record has this copy's checksum (size and ETag for files ingested without one)
and its live object still matches that record, as Lustre HSM releases only
archived files. The write tier itself, a pinned dataset's copies and a copy
that changed since it was recorded (it may hold what the write tier lacks) are
never released. A copy whose write-tier object is gone or changed is refused,
and the report says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .._config import Config, Mount
from .._errors import BadName, BadURL, CatalogError, NotFound
from .._filesystem import MountedFileSystem
from .._units import parse_duration
from ..catalog import Catalog, current_principal
from ..connectors import Tier
from ..connectors._rules import TierRules
from ._metrics import Metrics
from ._release_report import ReleasedCopy, ReleaseReport
from ._release_tier import TierRelease

__all__ = ["ReleaseReport", "ReleasedCopy", "release"]


def release(
    catalog: Catalog,
    config: Config,
    *,
    target: str | None = None,
    dataset: str | None = None,
    older_than: float | str | None = None,
    to_low_water: bool = False,
    tier: str | None = None,
    dry_run: bool = False,
    metrics: Metrics | None = None,
) -> ReleaseReport:
    """Release copies on the managed (PFS and cache) tiers of ``config``'s mounts.

    ``target`` (an ``aif://`` prefix) and ``dataset`` (a name; all its versions)
    narrow what is looked at, ``tier`` keeps to one tier; ``older_than`` (seconds,
    or a duration such as ``"7d"``) releases only copies not read for that long
    (default: the tier's ``release_after``, else any age); ``to_low_water`` stops
    once the tier's usage is at most its ``low_water`` share of its ``capacity``.
    Copies are taken least recently read first. Needs write on the datasets whose
    copies it releases.
    """
    older_than = _duration(older_than)
    if not dry_run:
        catalog._writable()
    if tier is not None and not any(t.name == tier for m in config.mounts for t in m.tiers):
        known = ", ".join(sorted({t.name for m in config.mounts for t in m.tiers})) or "none"
        raise NotFound(f"no tier {tier!r} in the mount table; tiers: {known}")
    writable = _writable_datasets(catalog, dataset)
    report = ReleaseReport(dry_run=dry_run)
    counts = metrics or Metrics(catalog, config)
    session = TierRelease(catalog, config, counts, dry_run, writable)
    for mount, rel in _scope(config, target):
        for managed in _managed_tiers(mount, tier):
            rules = TierRules.of(managed)
            age = older_than if older_than is not None else rules.release_after
            goal = None
            if to_low_water:
                goal = _above_low_water(session, mount, managed, rules)
                if goal is None:
                    note = f"tier {managed.name!r} of aif://{mount.prefix} has no capacity set"
                    report = report.merged(ReleaseReport(notes=(note,)))
                    continue
            report = report.merged(session.release_tier(mount, managed, rel, age=age, goal=goal))
    if metrics is None:
        counts.flush()
    return report


def _duration(value: float | str | None) -> float | None:
    if value is None:
        return None
    if value == 0:
        return 0.0  # any age (make_room's, and a caller's who means it)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadName(f"older_than: {exc}") from None


def _writable_datasets(catalog: Catalog, dataset: str | None) -> Callable[[set[str]], bool]:
    """Whether release may remove a copy of these datasets (write on each of them)."""
    if dataset is not None:
        catalog.versions(dataset)  # an unknown or hidden dataset: UnknownDataset
        catalog.require(dataset, "write", "release")
        return lambda names: dataset in names and _all_writable(catalog, names, current_principal())
    return lambda names: bool(names) and _all_writable(catalog, names, current_principal())


def _all_writable(catalog: Catalog, names: Iterable[str], who: Any) -> bool:
    policy = catalog.policy()
    return all(policy.allows(who, "write", policy.dataset(n)) for n in names)


def _scope(config: Config, target: str | None) -> list[tuple[Mount, str]]:
    """The mounts release looks at, each with the path within it (``""``: all of it)."""
    if target is None:
        return [(m, "") for m in config.mounts]
    if not target.startswith("aif://"):
        raise BadURL(f"{target}: expected an aif:// prefix (a dataset is named with --dataset)")
    mount, rel = config.resolve(MountedFileSystem._strip_protocol(target))
    return [(mount, rel.strip("/"))]


def _managed_tiers(mount: Mount, name: str | None) -> list[Tier]:
    """The local tiers of a mount that copies may be released from (never the write tier)."""
    if name is not None:
        if name == mount.write_tier and any(t.name == name for t in mount.tiers):
            raise CatalogError(
                f"tier {name!r} is the write tier of aif://{mount.prefix}: its copies are"
                " never released"
            )
        return [t for t in mount.tiers if t.name == name and t.local]
    return [t for t in mount.tiers if t.local and t.name != mount.write_tier]


def _above_low_water(
    session: TierRelease, mount: Mount, tier: Tier, rules: TierRules
) -> int | None:
    """The bytes to free for the tier's usage to reach low water (None: no capacity)."""
    capacity = rules.capacity_bytes(tier.url)
    if capacity is None:
        return None
    return max(0, session.usage(mount, tier, rules) - int(rules.low_water * capacity))

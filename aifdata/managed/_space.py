"""Room on a managed tier: its capacity, and releasing copies to stay under it.

Before a hydration writes N bytes onto a tier with a ``capacity``, the manager
asks :func:`make_room`. Past the tier's ``high_water`` share (usage + N), the
least recently read copies that the write tier also holds (and that no pin
keeps) are released until usage + N is at most ``low_water``; a file that
cannot fit even then is not hydrated, and the reason says why.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from .._config import Config
from .._errors import AifDataError
from .._router import Router
from .._units import format_size
from ..catalog import Catalog
from ..connectors._rules import TierRules
from ._access import node_index
from ._metrics import Metrics
from ._release_tier import TierRelease


class Keeper(Protocol):
    """What making room needs of the tier manager."""

    catalog: Catalog
    config: Config
    metrics: Metrics


def make_room(manager: Keeper, router: Router, tier: str, nbytes: int) -> str | None:
    """Make room for ``nbytes`` more on ``tier`` of ``router``'s mount: None when there
    is room (after releasing least recently read copies past high water), else why
    the bytes cannot fit (the hydration is then skipped with a warning)."""
    mount = router.mount
    managed = mount.tier(tier)
    rules = TierRules.of(managed)
    capacity = rules.capacity_bytes(managed.url)
    if capacity is None:
        return None
    if nbytes > capacity:
        return f"capacity {format_size(capacity)} is smaller than the file ({format_size(nbytes)})"
    index: Any = getattr(manager, "index", node_index)
    session = TierRelease(manager.catalog, manager.config, manager.metrics, False, _any, index)
    try:
        used = session.usage(mount, managed, rules)
        if used + nbytes <= rules.high_water * capacity:
            return None
        goal = used + nbytes - int(rules.low_water * capacity)
        report = session.release_tier(mount, managed, "", age=None, goal=goal)
        used = session.usage(mount, managed, rules)
    except (AifDataError, OSError, sqlite3.Error) as exc:
        return f"tier {tier!r} is past high water and no copy could be released ({exc})"
    if used + nbytes <= capacity:
        return None
    return (
        f"tier {tier!r} is full: {format_size(used)} of {format_size(capacity)} in use and"
        f" {format_size(nbytes)} needed; {len(report.released)} cop(ies) released,"
        f" {len(report.refused)} refused, {report.pinned} kept by a pin"
    )


def _any(names: set[str]) -> bool:
    """Room for a hydration is made whatever datasets the copies belong to."""
    return True

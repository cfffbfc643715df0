"""Choose the tier that serves a read, and say why.

The rule: walk the mount's read order and take the first tier whose copy has
the same size as the write tier's copy (the write tier is the reference). When
the write tier has no copy, the first tier that has one serves it. The
catalog will tighten "same size" to "same checksum".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._config import Mount
from ._errors import NotFound
from .connectors import Connector


@dataclass(frozen=True)
class Route:
    """Which tier serves a read of ``path``, where the bytes are, and why."""

    path: str
    tier: str
    url: str
    reason: str
    size: int | None = None
    skipped: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "path": self.path,
            "tier": self.tier,
            "url": self.url,
            "reason": self.reason,
            "size": self.size,
            "skipped": [{"tier": t, "why": w} for t, w in self.skipped],
        }


class Router:
    """Routes the reads of one mount over its connectors."""

    def __init__(self, mount: Mount, connectors: Mapping[str, Connector]) -> None:
        self.mount = mount
        self.connectors = connectors

    def _logical(self, rel: str) -> str:
        return f"{self.mount.prefix}/{rel}" if rel else self.mount.prefix

    def serving_tiers(self, rels: Sequence[str]) -> dict[str, str]:
        """Only the serving tier's name per file (skips building routes on one-tier mounts)."""
        if len(self.mount.tiers) == 1:
            return dict.fromkeys(rels, self.mount.tiers[0].name)
        return {rel: route.tier for rel, route in self.route_many(rels).items()}

    def route(self, rel: str) -> Route:
        """The route of one file; raises NotFound when no tier holds it."""
        return self.route_many([rel])[rel]

    def route_many(self, rels: Sequence[str]) -> dict[str, Route]:
        """Routes of many files, with one bulk size lookup per tier."""
        mount = self.mount
        if len(mount.tiers) == 1:
            only = mount.tiers[0].name
            conn = self.connectors[only]
            return {
                r: Route(self._logical(r), only, conn.url(r), "the mount's only tier") for r in rels
            }
        sizes = {mount.write_tier: self.connectors[mount.write_tier].sizes(rels)}
        routes: dict[str, Route] = {}
        pending = list(rels)
        for name in mount.read_order:
            if not pending:
                break
            if name not in sizes:
                sizes[name] = self.connectors[name].sizes(pending)
            still = []
            for rel in pending:
                route = self.decide(rel, sizes)
                if route is None:
                    still.append(rel)
                else:
                    routes[rel] = route
            pending = still
        if pending:
            tiers = ", ".join(mount.read_order)
            raise NotFound(f"aif://{self._logical(pending[0])}: no copy on any tier ({tiers})")
        return routes

    def decide(self, rel: str, sizes: Mapping[str, Mapping[str, int]]) -> Route | None:
        """Decide from ``sizes[tier][rel]``; None means 'ask more tiers first' (or nowhere)."""
        mount = self.mount
        reference = sizes[mount.write_tier].get(rel)
        skipped: list[tuple[str, str]] = []
        for name in mount.read_order:
            if name not in sizes:
                return None
            size = sizes[name].get(rel)
            if size is None:
                skipped.append((name, "no copy"))
                continue
            if reference is None:
                reason = f"write tier {mount.write_tier!r} has no copy; {name!r} has one"
            elif name == mount.write_tier:
                reason = f"{name!r} is the write tier"
            elif size != reference:
                skipped.append(
                    (
                        name,
                        f"size {size} differs from {reference} on write tier {mount.write_tier!r}",
                    )
                )
                continue
            else:
                reason = f"same size as the write tier {mount.write_tier!r} ({size} bytes)"
            url = self.connectors[name].url(rel)
            return Route(self._logical(rel), name, url, reason, size, tuple(skipped))
        return None

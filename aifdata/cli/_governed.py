"""The grants of ``aif://``, applied to the storage's own URLs and local paths.

``aif://`` checks the grants itself. An ``s3://`` URL or a local path inside a
governed location (a tier of a mount, or where a dataset lives) is checked the
same way by the commands that read or write it (``ls``, ``cat``, ``cp``,
``partition``, ``convert``): it is mapped back to its ``aif://`` path and asked
of the same catalog, so the storage's own URL reaches no more than the
``aif://`` one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from .. import AccessDenied, AifFileSystem, Catalog, Config
from ..catalog import current_principal
from ..connectors import join, kind_of_url
from ._app import state


def check_url(url: str, privilege: str, action: str) -> None:
    """Raise AccessDenied (audited) unless the principal may ``privilege`` ``url``; an
    ``aif://`` URL, a place no grant governs, or no catalog at all passes."""
    grants = grants_for(url)
    if grants is not None:
        grants.check(url, privilege, action)


def grants_for(url: str) -> Grants | None:
    """The grants that govern a physical URL or local path: those of the catalog that
    ``aif://`` enforces (None: an ``aif://`` URL, which checks itself, or no catalog)."""
    if url.startswith("aif://"):
        return None
    catalog = AifFileSystem(state.config).catalog
    return None if catalog is None else Grants(catalog, state.config)


@dataclass(frozen=True)
class Grants:
    """A catalog's grants, applied to the storage's own URLs and paths: a place inside a
    mount's tier is checked as its ``aif://`` path (the audit names that path), and as
    every dataset whose location holds it by any spelling (inside or outside every mount,
    a symlink also as its target); anywhere else is open."""

    catalog: Catalog
    config: Config

    def check(self, url: str, privilege: str, action: str) -> None:
        """Raise AccessDenied (audited) unless the principal may ``privilege`` ``url``."""
        logical = self.logical(url)
        if logical:
            try:
                self.catalog.gate(self.config).check(logical, privilege, action)
            except AccessDenied as exc:  # the gate's message names the aif:// path
                raise AccessDenied(f"{url}: {exc}") from None
        # every dataset holding it in any spelling (a symlink also where it points), not one
        self.catalog.require_at(url, privilege, action)

    def readable(self, urls: Iterable[str]) -> set[str]:
        """Those of ``urls`` the principal may read (for listings: no audit rows)."""
        logical = {url: self.logical(url) for url in urls}
        inside = sorted({p for paths in logical.values() for p in paths})
        allowed = set(self.catalog.gate(self.config).readable(inside)) if inside else set()
        policy, who = self.catalog.policy(), current_principal()
        out = set()
        for url, paths in logical.items():
            if paths and not allowed.issuperset(paths):
                continue
            datasets = self.catalog.datasets_at(url)
            if all(policy.allows(who, "read", policy.dataset(name)) for name in datasets):
                out.add(url)
        return out

    def logical(self, url: str) -> list[str]:
        """The ``aif://`` paths (without their scheme) of a URL or path inside mounts' tiers,
        by every spelling its storage kind knows (a symlink is also its target); [] outside."""
        kind = kind_of_url(url)
        if kind is None:
            return []
        spellings = kind.aliases(kind.normalise(url))
        found = set()
        for spelling in spellings:
            located = self.config.tier_at(spelling)
            if located is not None:
                mount, _tier, rel = located
                found.add(join(mount.prefix, rel))
        real = {os.path.realpath(s) for s in spellings if "://" not in s}
        for mount in self.config.mounts:
            for root in (os.path.realpath(t.url) for t in mount.tiers if t.local):
                for path in real:
                    if path == root or path.startswith(root.rstrip("/") + "/"):
                        found.add(join(mount.prefix, path[len(root) :].lstrip("/")))
        return sorted(found)

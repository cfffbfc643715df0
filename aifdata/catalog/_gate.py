"""The catalog's access gate for ``aif://``: check a request before storage sees it.

Every operation of :class:`~aifdata.AifFileSystem` names its clean logical
paths and the privilege it needs; the gate finds what each path is (a
dataset, by where its copies live on every tier, or a plain path), asks the
catalog's :class:`~aifdata.catalog._policy.Policy`, and on a refusal writes
the audit row and raises :class:`~aifdata.AccessDenied`. Paths are checked in
the one spelling that reaches storage; a percent-encoded spelling is also
checked decoded, and each physical location by every spelling its storage
kind knows (a PFS symlink is checked as its target), so no spelling reaches
more than the plain one. A path inside several datasets (locations that
overlap, in a catalog older than one owner per location) needs the privilege
on every one of them. A refusal names the dataset only to a principal who
may read it: to anyone else it says a dataset they may not see governs the
path, never which one, nor its owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from urllib.parse import unquote

from .._config import Config
from .._errors import AccessDenied, MountNotFound
from ..connectors import join
from ._policy import Policy, Principal, Resource, current_principal


class Governing(Protocol):
    """What the gate needs of a catalog: its grants, and where refusals are recorded."""

    def policy(self, config: Config | None = None) -> Policy: ...

    def record_audit(
        self,
        who: Principal,
        action: str,
        target: str,
        privilege: str,
        resource: str,
        *,
        allowed: bool,
    ) -> None: ...


class CatalogGate:
    """Checks the current principal's requests against a catalog's grants
    (an :class:`~aifdata._access.AccessGate`)."""

    def __init__(self, catalog: Governing, config: Config) -> None:
        self.catalog = catalog
        self.config = config

    def __repr__(self) -> str:
        return f"CatalogGate({self.catalog!r}, {self.config!r})"

    def check(self, paths: str | Iterable[str], privilege: str, action: str) -> None:
        """Raise AccessDenied (and audit it) unless every path allows ``privilege``."""
        policy = self.catalog.policy(self.config)
        who = current_principal()
        if policy.is_admin(who):
            return
        for path in [paths] if isinstance(paths, str) else paths:
            for spelling in _spellings(path):
                for resource in self._resources(policy, spelling):
                    if not policy.allows(who, privilege, resource):
                        self._refuse(policy, who, path, privilege, action, resource)

    def _refuse(
        self,
        policy: Policy,
        who: Principal,
        path: str,
        privilege: str,
        action: str,
        resource: Resource,
    ) -> None:
        self.catalog.record_audit(
            who, action, f"aif://{path}", privilege, resource.name, allowed=False
        )
        if resource.dataset and not policy.may_see(who, resource):
            hint = "a catalog admin finds which one in: aifdata policy audit"
        else:
            hint = f"an admin can allow it with: aifdata policy grant {who} {privilege} "
            hint += resource.name
        raise AccessDenied(
            f"{who} may not {privilege} aif://{path}: {policy.shown(who, resource)}; {hint}"
        )

    def readable(self, paths: Iterable[str]) -> list[str]:
        """The paths the current principal may read (for listings: no audit rows)."""
        policy = self.catalog.policy(self.config)
        who = current_principal()
        paths = list(paths)
        if policy.is_admin(who):
            return paths
        return [
            p
            for p in paths
            if all(
                policy.allows(who, "read", r)
                for s in _spellings(p)
                for r in self._resources(policy, s)
            )
        ]

    def _resources(self, policy: Policy, path: str) -> tuple[Resource, ...]:
        """What ``path`` is: each dataset holding it, or the plain path."""
        try:
            mount, rel = self.config.resolve(path)
        except MountNotFound:
            return policy.located_all(path, ())
        physical: list[str] = []
        for tier in mount.tiers:
            url = join(tier.url, rel)
            physical.append(url)
            physical.extend(sorted(tier.storage_kind.aliases(url) - {url}))
        return policy.located_all(path, physical)


def _spellings(path: str) -> tuple[str, ...]:
    decoded = unquote(path) if "%" in path else path
    return (path,) if decoded == path else (path, decoded)

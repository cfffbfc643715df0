"""The catalog's access gate for ``aif://``: check a request before storage sees it.

Every operation of :class:`~aifdata.AifFileSystem` names its clean logical
paths and the privilege it needs; the gate finds what each path is (a
dataset, by where its copies live on every tier, or a plain path), asks the
catalog's :class:`~aifdata.catalog._policy.Policy`, and on a refusal writes
the audit row and raises :class:`~aifdata.AccessDenied`. Paths are checked in
the one spelling that reaches storage; a percent-encoded spelling is also
checked decoded, and each physical location by every spelling its storage
kind knows (a PFS symlink is checked as its target), so no spelling reaches
more than the plain one.
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
                resource = self._resource(policy, spelling)
                if not policy.allows(who, privilege, resource):
                    self.catalog.record_audit(
                        who, action, f"aif://{path}", privilege, resource.name, allowed=False
                    )
                    raise AccessDenied(
                        f"{who} may not {privilege} aif://{path}: {resource.describe()}; "
                        f"an admin can allow it with: aifdata policy grant {who} {privilege} "
                        f"{resource.name}"
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
            if all(policy.allows(who, "read", self._resource(policy, s)) for s in _spellings(p))
        ]

    def _resource(self, policy: Policy, path: str) -> Resource:
        try:
            mount, rel = self.config.resolve(path)
        except MountNotFound:
            return policy.located(path, ())
        physical: list[str] = []
        for tier in mount.tiers:
            url = join(tier.url, rel)
            physical.append(url)
            physical.extend(sorted(tier.storage_kind.aliases(url) - {url}))
        return policy.located(path, physical)


def _spellings(path: str) -> tuple[str, ...]:
    decoded = unquote(path) if "%" in path else path
    return (path,) if decoded == path else (path, decoded)

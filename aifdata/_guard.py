"""The ``aif://`` side of access policies: check a request before storage sees it.

Every operation of :class:`~aifdata.AifFileSystem` names its clean logical
paths and the privilege it needs; the guard finds what each path is (a
dataset, by where its copies live on every tier, or a plain path), asks the
catalog's :class:`~aifdata.catalog._policy.Policy`, and on a refusal writes
the audit row and raises :class:`~aifdata.AccessDenied`. Paths are checked in
the one spelling that reaches storage; a percent-encoded spelling is also
checked decoded, and a PFS path also by its real path (a symlink is checked
as its target), so no spelling reaches more than the plain one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from ._config import Config
from ._errors import AccessDenied, MountNotFound


class Guard:
    """Checks the current principal's requests against a catalog's grants."""

    def __init__(self, catalog: Any, config: Config) -> None:
        self.catalog = catalog
        self.config = config

    def check(self, paths: str | Iterable[str], privilege: str, action: str) -> None:
        """Raise AccessDenied (and audit it) unless every path allows ``privilege``."""
        from .catalog._policy import current_principal

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
        from .catalog._policy import current_principal

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

    def _resource(self, policy: Any, path: str) -> Any:
        try:
            mount, rel = self.config.resolve(path)
        except MountNotFound:
            return policy.located(path, ())
        physical = []
        for tier in mount.tiers:
            url = f"{tier.url.rstrip('/')}/{rel}" if rel else tier.url
            physical.append(url)
            if tier.kind == "pfs":  # a symlink inside the tier is another name for its target
                real = os.path.realpath(url)
                if real != url:
                    physical.append(real)
        return policy.located(path, physical)


def _spellings(path: str) -> tuple[str, ...]:
    decoded = unquote(path) if "%" in path else path
    return (path,) if decoded == path else (path, decoded)

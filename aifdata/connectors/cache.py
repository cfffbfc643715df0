"""The node-local cache tier: a directory on node-local NVMe or tmpfs.

A ``kind = "cache"`` tier holds copies that reads leave behind (hydration) for
every process on the node: DataLoader workers, Dask workers. It is a PFS tier
in how it reads and writes (atomic renames, no path escapes), with three
differences: its root is made when missing (it is scratch space), it is never a
mount's write tier, and what it holds is recorded in the node's own index
beside the copies, not in the site catalog (another node's cache at the same
path holds other files).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._atomic import LEASE_SUFFIX
from ._base import Info
from ._kind import OptionCheck
from ._tier import Tier
from .pfs import PFSConnector, PFSKind

#: The directory in a cache root that holds the node's index (never listed).
INDEX_DIR = ".aifdata"


def hidden(rel: str) -> bool:
    """Whether a path is the cache's own bookkeeping, not a copy."""
    return rel.split("/", 1)[0] == INDEX_DIR or rel.rsplit("/", 1)[-1].endswith(LEASE_SUFFIX)


class CacheKind(PFSKind):
    """A node-local cache directory (never a write tier)."""

    name = "cache"
    options: ClassVar[dict[str, OptionCheck]] = dict(PFSKind.options)
    connector = "aifdata.connectors.cache:CacheConnector"
    #: Copies here are kept by the node, not recorded in the catalog.
    node_local: ClassVar[bool] = True

    def serves(self, url: str) -> bool:
        return False  # a path outside every mount is the PFS kind's


CACHE_KIND = CacheKind()


class CacheConnector(PFSConnector):
    """A tier rooted at a node-local cache directory (made on first write)."""

    def __init__(self, tier: Tier) -> None:
        super().__init__(tier)
        self.create = bool(tier.options.get("create", True))

    def __reduce__(self) -> tuple[Any, ...]:
        return CacheConnector, (self.tier,)

    def info(self, rel: str) -> Info:
        if hidden(rel):
            raise self._not_found(rel)
        return super().info(rel)

    def ls(self, rel: str) -> list[Info]:
        if hidden(rel):
            raise self._not_found(rel)
        return [i for i in super().ls(rel) if not hidden(i["name"])]

    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        if hidden(rel):
            return {}
        return {k: v for k, v in super().find(rel, withdirs).items() if not hidden(k)}

"""Wiring: the one place that knows every part, and builds ``aif://`` from them.

:class:`AifFileSystem` is the virtual filesystem of :mod:`aifdata._filesystem`
with its catalog found the way users expect: the one given, else the one
``$AIFDATA_CATALOG`` names (a file, or a worker's Parquet snapshot), else
``$AIFDATA_HOME/catalog.db`` once it exists. Its grants gate every request
and its verified replicas guide routing. Importing this module also makes
``aif://`` URLs resolvable by the lower layers (format plug-ins, ingest).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem

from ._access import AccessGate
from ._config import Config, Mount, aifdata_home
from ._filesystem import MountedFileSystem
from ._router import RecordLookup
from ._tiering import TierManager
from ._urls import register_scheme
from .catalog import Catalog, catalogs_opened, named_catalog

CATALOG_RECHECK_SECONDS = 1.0  # while $AIFDATA_HOME/catalog.db is absent


def _made_catalog(path: Path) -> bool:
    """Whether a file is at ``path``: any file there is opened, and one that is not a
    catalog (an empty one too) is refused by name, never taken as no catalog at all
    (catalogs appear whole: they are made under another name and linked into place)."""
    return os.path.lexists(path)


class AifFileSystem(MountedFileSystem):
    """The ``aif://`` virtual filesystem: a mount table over S3, PFS and other tiers,
    governed by a catalog.

    ``config`` is a :class:`~aifdata.Config`, a path to a TOML file, or None
    for :func:`~aifdata.load_config`'s default lookup. ``catalog`` is a
    :class:`~aifdata.Catalog` or the path of one; None (the default) takes
    ``$AIFDATA_HOME/catalog.db`` once it exists; False means none.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        catalog: Catalog | str | os.PathLike[str] | bool | None = None,
        **kwargs: Any,
    ):
        if "gate" in kwargs or "records" in kwargs:
            raise TypeError(
                "AifFileSystem takes its gate and records from its catalog; for others, use"
                " aifdata._filesystem.MountedFileSystem(config, gate=..., records=...)"
            )
        super().__init__(config, **kwargs)
        self._catalog_option = catalog
        self._catalog: Catalog | None = None
        self._catalog_gate: AccessGate | None = None
        self._catalog_absent_until = 0.0  # monotonic time of the next look for catalog.db
        self._catalogs_seen = -1  # catalogs_opened() when last looked for
        self._managed = any(_managed(m) for m in self.config.mounts)
        self._manager: Any = None

    @property
    def catalog(self) -> Catalog | None:
        """The catalog whose checksums guide routing and whose grants are enforced:
        the one given, else ``$AIFDATA_CATALOG``'s (a file or a Parquet snapshot),
        else ``$AIFDATA_HOME/catalog.db`` once it exists (while it
        does not, looked for again at most every ``CATALOG_RECHECK_SECONDS``, and at
        once after this process opens a catalog, so a catalog made later in a
        long-lived process is enforced); ``catalog=False`` for none."""
        option = self._catalog_option
        if self._catalog is not None or option is False:
            return self._catalog
        if isinstance(option, Catalog):
            self._catalog = option
        elif option is not None and option is not True:
            self._catalog = Catalog(option, config=self.config)
        elif time.monotonic() >= self._catalog_absent_until or (
            self._catalogs_seen != catalogs_opened()
        ):
            self._catalogs_seen = catalogs_opened()
            named = named_catalog() or self.config.catalog
            if named is not None or _made_catalog(aifdata_home() / "catalog.db"):
                self._catalog = Catalog(config=self.config)
            else:
                self._catalog_absent_until = time.monotonic() + CATALOG_RECHECK_SECONDS
        return self._catalog

    def _access_gate(self) -> AccessGate | None:
        if self._catalog_gate is None:
            catalog = self.catalog
            if catalog is not None:
                self._catalog_gate = catalog.gate(self.config)
        return self._catalog_gate

    def _replica_lookup(self) -> RecordLookup | None:
        manager = self._tier_manager()
        if manager is not None:
            lookup: RecordLookup = manager.records
            return lookup
        catalog = self.catalog
        return catalog.replica_records if catalog is not None else None

    def _tier_manager(self) -> Any:
        """The catalog's tier manager, on a config with a managed mount (hydrate on
        read, or a node-local cache tier); None otherwise or without a catalog."""
        if self._manager is None and self._managed:
            catalog = self.catalog
            if catalog is not None:
                from .managed import Manager

                self._manager = Manager(catalog, self.config)
        manager: TierManager | None = self._manager
        return manager

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt elsewhere with the same config and catalog option (given either way)."""
        options = {k: v for k, v in self.storage_options.items() if k != "config"}
        options["catalog"] = self._catalog_option
        return _rebuild, (self.config, options)


def _managed(mount: Mount) -> bool:
    """Whether a mount's fast tiers are managed: it hydrates, or it has a cache tier."""
    return mount.hydrate != "off" or any(t.storage_kind.node_local for t in mount.tiers)


def _rebuild(config: Config, options: dict[str, Any]) -> AifFileSystem:
    return AifFileSystem(config, **options)


def filesystem(
    config: Config | str | os.PathLike[str] | None = None,
    catalog: Catalog | str | os.PathLike[str] | bool | None = None,
) -> AifFileSystem:
    """An ``aif://`` filesystem over ``config`` (default: :func:`~aifdata.load_config`).

    ``catalog`` (a :class:`~aifdata.Catalog` or a path; default: the one in
    ``$AIFDATA_HOME`` if it exists; False: none) lets verified checksums guide
    reads and enforces its grants.
    """
    return AifFileSystem(config, catalog=catalog)


def _resolve_aif(url: str, config: Config) -> tuple[AbstractFileSystem, str]:
    fs = AifFileSystem(config)
    return fs, fs._strip_protocol(url)


register_scheme("aif", _resolve_aif)

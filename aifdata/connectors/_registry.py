"""The table of storage kinds: built-ins by dotted path, third parties by entry point.

Like fsspec's ``registry.py``, a kind is named by ``"module:object"`` and its
module is imported only when a tier of that kind is first checked. A third
party adds a kind with one module and one entry point::

    [project.entry-points."aifdata.connectors"]
    toy = "toykind:TOY"          # a StorageKind instance (or subclass)

A broken or duplicate entry point warns instead of breaking every config.
"""

from __future__ import annotations

from .._errors import ConfigError
from .._plugins import Registry
from ._kind import StorageKind

ENTRY_POINT_GROUP = "aifdata.connectors"


REGISTRY: Registry[StorageKind] = Registry(
    ENTRY_POINT_GROUP,
    "storage kind",
    {
        "s3": "aifdata.connectors._s3_settings:S3_KIND",
        "pfs": "aifdata.connectors.pfs:PFS_KIND",
        "fsspec": "aifdata.connectors.fsspec_tier:FSSPEC_KIND",
        "cache": "aifdata.connectors.cache:CACHE_KIND",
        "service": "aifdata.connectors.service:SERVICE_KIND",
    },
    ConfigError,
    lambda name: f"tier kind {name!r} is not one of {', '.join(map(repr, names()))}",
    StorageKind,
    default_hint="pip install the package that provides it",
)


def rescan() -> None:
    """Forget the entry points read so far (after installing a kind at run time)."""
    REGISTRY.rescan()


def names() -> list[str]:
    """Every kind's name: the built-ins first, then the installed ones, sorted."""
    return REGISTRY.names()


def register(kind: StorageKind | type[StorageKind]) -> StorageKind:
    """Add (or replace) a kind at run time; returns the instance registered.

    A kind registered this way is known to this process only: tiers of it do not
    unpickle in spawned workers (Dask, DataLoader) unless they register it too, so a
    package should declare its kind as an ``aifdata.connectors`` entry point instead.
    """
    return REGISTRY.register(kind)


def get_kind(name: str) -> StorageKind:
    """The kind called ``name``; ConfigError names the known ones."""
    if not isinstance(name, str):
        known = ", ".join(map(repr, names()))
        raise ConfigError(f"tier kind {name!r} is not one of {known}")
    return REGISTRY.get(name)


def kind_of_url(url: str) -> StorageKind | None:
    """The kind that serves a location given outside any mount (``s3://...``, a path)."""
    for name in names():
        try:
            kind = get_kind(name)
        except ConfigError:
            continue
        if kind.serves(url):
            return kind
    return None

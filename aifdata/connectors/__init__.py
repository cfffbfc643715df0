"""Connectors: one module per storage kind, one table that names them.

A storage kind (:class:`StorageKind`) says everything aifdata needs to know
of a kind of storage; its connector (:class:`Connector`) serves one tier of
it. Like fsspec's ``registry.py``, the table maps a kind's name to a dotted
path, imported only when a tier of that kind is first used; third parties add
kinds through the ``aifdata.connectors`` entry-point group.
"""

from __future__ import annotations

from .._errors import ConfigError
from .._plugins import load
from ._atomic import AtomicWriter
from ._base import Connector, FileStat, Info
from ._kind import (
    BYTES,
    COUNT,
    FLAG,
    HTTP_URL,
    SECONDS,
    TABLE,
    TEXT,
    OptionCheck,
    StorageKind,
    join,
    shown,
)
from ._registry import ENTRY_POINT_GROUP, get_kind, kind_of_url, names, register
from ._tier import Tier
from ._writer import TierWriter

__all__ = [
    "BYTES",
    "COUNT",
    "ENTRY_POINT_GROUP",
    "FLAG",
    "HTTP_URL",
    "SECONDS",
    "TABLE",
    "TEXT",
    "AtomicWriter",
    "Connector",
    "FileStat",
    "Info",
    "OptionCheck",
    "StorageKind",
    "Tier",
    "TierWriter",
    "connector_for",
    "get_kind",
    "join",
    "kind_of_url",
    "names",
    "register",
    "shown",
]


def connector_for(tier: Tier) -> Connector:
    """Make the connector that serves ``tier`` (its kind's module imported now)."""
    kind = tier.storage_kind
    found = load(kind.connector, f"tier kind {kind.name!r}", kind.install_hint, ConfigError)
    if not (isinstance(found, type) and issubclass(found, Connector)):
        raise ConfigError(f"tier kind {kind.name!r}: {kind.connector} is not a Connector class")
    return found(tier)

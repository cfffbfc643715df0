"""Connectors: one module per storage kind, one table that names them.

Like fsspec's ``registry.py``, the table maps a tier kind to a dotted class
path and an install hint; the module is imported only when a tier of that
kind is first used.
"""

from __future__ import annotations

import importlib

from .._config import Tier
from .._errors import ConfigError
from ._base import Connector

REGISTRY: dict[str, tuple[str, str]] = {
    "s3": ("aifdata.connectors.s3.S3Connector", "pip install aifdata (needs s3fs, obstore)"),
    "pfs": ("aifdata.connectors.pfs.PFSConnector", "pip install aifdata"),
}

__all__ = ["REGISTRY", "Connector", "connector_for"]


def connector_for(tier: Tier) -> Connector:
    """Make the connector that serves ``tier``."""
    try:
        dotted, hint = REGISTRY[tier.kind]
    except KeyError:
        raise ConfigError(f"no connector for tier kind {tier.kind!r}") from None
    module_name, _, class_name = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"tier kind {tier.kind!r} needs {exc.name}: {hint}") from exc
    cls: type[Connector] = getattr(module, class_name)
    return cls(tier)

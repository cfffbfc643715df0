"""aifdata: one namespace over S3 object storage and HPC parallel file systems.

The public face is what this module exports; everything else is private.
"""

from . import lineage
from ._config import Config, Mount, load_config, parse_config
from ._copy import CopiedFile, copy, url_to_fs
from ._errors import (
    AccessDenied,
    AifDataError,
    BadArgument,
    BadName,
    BadURL,
    CatalogError,
    ConfigError,
    FormatError,
    IngestError,
    InvalidToken,
    MountNotFound,
    NotFound,
    PathEscape,
    StorageError,
    StorageUnavailable,
    UnknownDataset,
    one_line,
)
from ._router import Route
from ._version import __version__
from ._wiring import AifFileSystem, filesystem
from .catalog import Catalog, Dataset, FileRecord, open_dataset
from .connectors import StorageKind, Tier
from .formats import Partition, partition

__all__ = [
    "AccessDenied",
    "AifDataError",
    "AifFileSystem",
    "BadArgument",
    "BadName",
    "BadURL",
    "Catalog",
    "CatalogError",
    "Config",
    "ConfigError",
    "CopiedFile",
    "Dataset",
    "FileRecord",
    "FormatError",
    "IngestError",
    "InvalidToken",
    "Mount",
    "MountNotFound",
    "NotFound",
    "Partition",
    "PathEscape",
    "Route",
    "StorageError",
    "StorageKind",
    "StorageUnavailable",
    "Tier",
    "UnknownDataset",
    "__version__",
    "copy",
    "filesystem",
    "lineage",
    "load_config",
    "one_line",
    "open_dataset",
    "parse_config",
    "partition",
    "refs",
    "url_to_fs",
]


def __getattr__(name: str) -> object:
    """``aifdata.dask``, ``aifdata.torch``, ``aifdata.xarray``, ``aifdata.ray``,
    ``aifdata.lithops`` and ``aifdata.refs`` load on first use (they import heavy libraries)."""
    if name in ("dask", "torch", "xarray", "ray", "lithops", "refs"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'aifdata' has no attribute {name!r}")

"""``aifdata convert URL --to zarr DEST``: a GeoTIFF as a Zarr v3 store, with its lineage.

The store is written through ``aif://`` (or to ``s3://`` or a local path),
chunked like the source's tiles, from the source's windows read in parallel
by Dask. When the source belongs to a catalog dataset, the conversion is a
recorded run: that dataset's version in, the store ingested as a new dataset
out. A failed conversion removes what it wrote.
"""

from __future__ import annotations

import time
from typing import Any

from ._config import Config, load_config
from ._errors import AifDataError
from ._urls import resolve_url
from .catalog import Catalog
from .formats._base import MAX_PARTITIONS

#: As many windows as may be asked for: more than the tiles, so a window is one tile
#: (one Zarr chunk) in any image of up to a million tiles.
_ONE_TILE_PER_WINDOW = MAX_PARTITIONS


def default_dataset(dest: str) -> str:
    """The output dataset's name when none is given: ``DEST`` without scheme and ``.zarr``."""
    name = dest.split("://", 1)[-1].strip("/")
    return name.removesuffix(".zarr") or name


def geotiff_to_zarr(
    url: str,
    dest: str,
    *,
    dataset: str | None = None,
    source_dataset: str | None = None,
    level: int = 0,
    config: Config | None = None,
) -> str | None:
    """Write ``level`` of the GeoTIFF at ``url`` to a Zarr v3 store at ``dest``.

    Returns the output dataset recorded in the catalog (None when the source
    is not a catalog dataset and ``source_dataset`` names none).
    """
    from .xarray import open_geotiff

    config = config or load_config()
    fs, path = resolve_url(dest, config)
    if fs.exists(path):
        raise AifDataError(
            f"{dest}: already exists; convert writes a new store (remove it, or choose another"
            " DEST)"
        )
    array = open_geotiff(url, level=level, n=_ONE_TILE_PER_WINDOW, config=config)
    catalog = _catalog(config)
    sources = [source_dataset] if source_dataset else _datasets_of(catalog, url)
    if catalog is None or not sources:
        _write(array, fs, path)
        return None
    from . import lineage

    name = dataset or default_dataset(dest)
    catalog.require(name, "write", "convert")  # refused before a byte is written
    params = {"url": url, "dest": dest, "level": level, "format": "zarr v3"}
    with lineage.run("aifdata convert --to zarr", sources, params=params,
                     catalog=catalog) as run:  # fmt: skip
        _write(array, fs, path)
        run.output(name, source=dest)
    return name


def _write(array: Any, fs: Any, path: str) -> None:
    from fsspec.implementations.local import LocalFileSystem

    # zarr's own local store makes the store's directories; an fsspec mapper would not
    store = path if isinstance(fs, LocalFileSystem) else fs.get_mapper(path)
    try:
        array.to_dataset(name=array.name or "data").to_zarr(
            store, mode="w-", zarr_format=3, consolidated=False
        )
    except FileExistsError:
        raise  # made by someone else since the check: not ours to remove
    except BaseException:
        _remove(fs, path)  # nothing half-written stays behind
        raise


def _remove(fs: Any, path: str) -> None:
    """Remove a failed store; Dask threads may still be writing chunks at first."""
    for attempt in range(6):
        try:
            if not fs.exists(path):
                return
            fs.rm(path, recursive=True)
        except OSError:
            time.sleep(0.1 * 2**attempt)  # a chunk landed in a directory being removed


def _catalog(config: Config) -> Catalog | None:
    catalog = Catalog(config=config)  # $AIFDATA_HOME's, if there is one
    return catalog if catalog.exists() else None


def _datasets_of(catalog: Catalog | None, url: str) -> list[str]:
    """Every catalog dataset whose location holds ``url`` (the run's inputs); AccessDenied
    unless the principal may read each, naming none they may not read."""
    return [] if catalog is None else catalog.require_at(url, "read", "convert")

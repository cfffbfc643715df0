"""GeoTIFF / COG as a lazy, Dask-backed ``xarray.DataArray``, one chunk per window.

::

    scene = aifdata.xarray.open_geotiff("aif://imagery/scene1/scene.tif")
    scene.sel(x=slice(500_000, 505_000)).mean().compute()   # reads only those windows

Planning reads the header only (one or two range requests for a COG); each
chunk is one partition, read where it is computed. Coordinates are the
centres of the pixels, from the geotransform; ``attrs`` hold the CRS, the
geotransform (GDAL order) and nodata.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.delayed import delayed

from ._config import Config
from .formats import Partition, RangeSource
from .formats.geotiff import pixel_type, plan_level

__all__ = ["open_geotiff"]


def open_geotiff(
    url: str,
    level: int = 0,
    n: int | None = None,
    target_bytes: int | None = None,
    config: Config | None = None,
) -> xr.DataArray:
    """``level`` of a GeoTIFF (0: full resolution) as a lazy DataArray over its windows.

    ``n`` or ``target_bytes`` set the chunking as for :func:`aifdata.partition`;
    dims are ``(y, x)``, or ``(y, x, band)`` for several samples per pixel.
    """
    source = RangeSource(url, config)
    parts = plan_level(source, level, n, target_bytes)
    if not parts:
        raise ValueError(f"{url}: level {level} has no pixels")
    samples, dtype = pixel_type(source, level)
    rows: dict[int, list[Partition]] = {}
    for p in parts:
        rows.setdefault(p["row"], []).append(p)
    blocks = [
        [_chunk(p, samples, dtype, config) for p in sorted(row, key=lambda p: p["col"])]
        for _, row in sorted(rows.items())
    ]
    data = da.block(blocks)
    dims = ("y", "x") if samples == 1 else ("y", "x", "band")
    origin = next(p for p in parts if p["row"] == 0 and p["col"] == 0)
    transform = origin["transform"]
    coords: dict[str, Any] = {}
    attrs: dict[str, Any] = {"crs": origin["crs"], "nodata": origin["nodata"], "level": level}
    if transform is not None:
        x0, dx, rx, y0, ry, dy = transform
        if rx == 0 and ry == 0:  # no rotation: 1-D coordinates
            coords["x"] = x0 + (np.arange(data.shape[1]) + 0.5) * dx
            coords["y"] = y0 + (np.arange(data.shape[0]) + 0.5) * dy
        attrs["transform"] = tuple(transform)
    if samples > 1:
        coords["band"] = np.arange(1, samples + 1)
    return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name=url.rsplit("/", 1)[-1])


def _chunk(p: Partition, samples: int, dtype: Any, config: Config | None) -> da.Array:
    shape = (p["height"], p["width"]) + ((samples,) if samples > 1 else ())
    pixels = delayed(_pixels, pure=True)(p, config)
    chunk: da.Array = da.from_delayed(pixels, shape=shape, dtype=dtype)
    return chunk


def _pixels(p: Partition, config: Config | None) -> np.ndarray:
    data: np.ndarray = p.read(config=config).data
    return data

"""An xarray backend: ``xr.open_dataset("aif://.../scene.tif", engine="aifdata")``.

It is :func:`aifdata.xarray.open_geotiff` behind xarray's own entry point: a
lazy variable ``band_data``; with ``chunks={}``, one Dask chunk per window.
This module stays small, so xarray can list the engine without importing Dask.
"""

from __future__ import annotations

from typing import Any

from xarray.backends import BackendEntrypoint

_EXTENSIONS = (".tif", ".tiff")


class GeoTiffBackend(BackendEntrypoint):
    """GeoTIFF / COG levels through ``aif://``, ``s3://`` or a path, read window by window."""

    description = "GeoTIFF / COG through aif://, lazily, one Dask chunk per window (aifdata)"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "level", "n", "target_bytes")

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Any = None,
        level: int = 0,
        n: int | None = None,
        target_bytes: int | None = None,
    ) -> Any:
        from .xarray import open_geotiff

        array = open_geotiff(str(filename_or_obj), level=level, n=n, target_bytes=target_bytes)
        dataset = array.to_dataset(name="band_data")
        dataset.attrs = dict(array.attrs)
        # ``chunks={}`` then gives one Dask chunk per window, as open_geotiff does
        dataset["band_data"].encoding["preferred_chunks"] = dict(
            zip(array.dims, (sizes[0] for sizes in array.chunks or ()), strict=False)
        )
        return dataset.drop_vars(drop_variables or [], errors="ignore")

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Only ``aif://`` GeoTIFFs: other paths are left to the engines made for them."""
        name = str(filename_or_obj).lower()
        return name.startswith("aif://") and name.endswith(_EXTENSIONS)

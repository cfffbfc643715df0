"""Test helpers: optional-dependency flags in the xarray style."""

from __future__ import annotations

import importlib.util

import pytest


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


has_pandas = _has("pandas")
has_dask = _has("dask")
has_zarr = _has("zarr")
has_xarray = _has("xarray")

requires_pandas = pytest.mark.skipif(not has_pandas, reason="needs pandas (extra: dataframe)")
requires_dask = pytest.mark.skipif(not has_dask, reason="needs dask (extra: dataframe)")
requires_zarr = pytest.mark.skipif(not has_zarr, reason="needs zarr (extra: zarr)")
requires_xarray = pytest.mark.skipif(not has_xarray, reason="needs xarray (extra: zarr)")

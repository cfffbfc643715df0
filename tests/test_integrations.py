"""pandas, Dask, zarr and xarray read and write through ``aif://`` with no glue.

The mount table comes from ``$AIFDATA_CONFIG``, as it would for a user: the
libraries only ever see ``aif://`` URLs.
"""

from __future__ import annotations

import numpy as np
import pytest

from aifdata import AifFileSystem

from . import requires_dask, requires_pandas, requires_xarray, requires_zarr
from .conftest import s3_options_toml, two_tier_toml


@pytest.fixture
def configured(seaweedfs, bucket, pfs_dir, tmp_path, monkeypatch):
    """Mounts ``lake`` (PFS read first, S3 writes) and ``cloud`` (S3 only), via a TOML file."""
    text = two_tier_toml(seaweedfs, f"s3://{bucket}/lake", pfs_dir, "lake")
    text += f"""
[mounts.cloud.s3]
url = "s3://{bucket}/cloud"
{s3_options_toml(seaweedfs)}
"""
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("AIFDATA_CONFIG", str(path))
    AifFileSystem.clear_instance_cache()
    return path


def frame():
    import pandas as pd

    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {"id": np.arange(1000), "x": rng.normal(size=1000), "k": rng.integers(0, 5, 1000)}
    )


@requires_pandas
@pytest.mark.parametrize("mount", ["lake", "cloud"])
def test_pandas_csv_and_parquet(configured, mount):
    import pandas as pd

    df = frame()
    df.to_csv(f"aif://{mount}/tables/t.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(f"aif://{mount}/tables/t.csv"), df)
    df.to_parquet(f"aif://{mount}/tables/t.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(f"aif://{mount}/tables/t.parquet"), df)


@requires_pandas
def test_pandas_reads_the_pfs_replica(configured, pfs_dir):
    import pandas as pd

    frame().to_csv("aif://lake/t.csv", index=False)  # written to S3, the write tier
    replica = pfs_dir / "t.csv"
    text = (frame().assign(x=0.0)).to_csv(index=False)
    assert len(text) != len(frame().to_csv(index=False))  # a stale copy: skipped
    replica.write_text(text)
    assert pd.read_csv("aif://lake/t.csv")["x"].abs().sum() > 0
    AifFileSystem.clear_instance_cache()
    import fsspec

    fs = fsspec.filesystem("aif")
    replica.write_bytes(fs.cat("aif://lake/t.csv"))  # now an exact copy: served from PFS
    assert fs.where("aif://lake/t.csv").tier == "pfs"
    pd.testing.assert_frame_equal(pd.read_csv("aif://lake/t.csv"), frame())


@requires_dask
@pytest.mark.parametrize("mount", ["lake", "cloud"])
def test_dask_dataframe_parquet(configured, mount):
    import dask
    import dask.dataframe as dd
    import pandas as pd

    with dask.config.set(scheduler="threads"):
        ddf = dd.from_pandas(frame(), npartitions=4)
        ddf.to_parquet(f"aif://{mount}/dask/out.parquet")
        back = dd.read_parquet(f"aif://{mount}/dask/out.parquet")
        assert back.npartitions == 4
        result = back.compute().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(result[frame().columns], frame(), check_dtype=False)
    assert back.groupby("k").x.count().compute().sum() == 1000


@requires_zarr
@pytest.mark.parametrize("mount", ["lake", "cloud"])
def test_zarr_group_round_trip(configured, mount):
    import zarr

    data = np.arange(10_000, dtype="float32").reshape(100, 100)
    group = zarr.open_group(f"aif://{mount}/arrays/g.zarr", mode="w")
    group.create_array("a", shape=data.shape, chunks=(25, 50), dtype=data.dtype)[:] = data
    again = zarr.open_group(f"aif://{mount}/arrays/g.zarr", mode="r")
    np.testing.assert_array_equal(again["a"][:], data)
    np.testing.assert_array_equal(again["a"][10:20, 40:60], data[10:20, 40:60])


@requires_xarray
@requires_zarr
def test_xarray_zarr_round_trip(configured):
    import xarray as xr

    ds = xr.Dataset(
        {"t": (("y", "x"), np.random.default_rng(1).normal(size=(40, 60)))},
        coords={"y": np.arange(40), "x": np.linspace(0, 1, 60)},
    )
    ds.to_zarr("aif://cloud/xr/ds.zarr", mode="w", consolidated=False)
    back = xr.open_zarr("aif://cloud/xr/ds.zarr", consolidated=False)
    xr.testing.assert_identical(back.load(), ds)


@pytest.mark.parametrize("mount", ["lake", "cloud"])
def test_h5py_reads_an_hdf5_file_through_aif(configured, pfs_dir, mount):
    h5py = pytest.importorskip("h5py")
    import io

    import fsspec

    rng = np.random.default_rng(3)
    temperature = rng.normal(size=(200, 300)).astype("float32")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("climate/t", data=temperature, chunks=(50, 100), compression="gzip")
        f["climate/t"].attrs["units"] = "K"
        f.create_dataset("ids", data=np.arange(1000))
    url = f"aif://{mount}/hdf5/sample.h5"
    fs = fsspec.filesystem("aif")
    fs.pipe(url, buffer.getvalue())
    with fsspec.open(url, "rb") as raw, h5py.File(raw, "r") as f:
        assert f["climate/t"].attrs["units"] == "K"
        np.testing.assert_array_equal(f["climate/t"][60:120, 150:260], temperature[60:120, 150:260])
        np.testing.assert_array_equal(f["ids"][:], np.arange(1000))
    if mount == "lake":  # an exact PFS copy: h5py now reads it from the PFS
        (pfs_dir / "hdf5").mkdir()
        (pfs_dir / "hdf5" / "sample.h5").write_bytes(buffer.getvalue())
        assert fs.where(url).tier == "pfs"
        with fsspec.open(url, "rb") as raw, h5py.File(raw, "r") as f:
            np.testing.assert_array_equal(f["climate/t"][:], temperature)

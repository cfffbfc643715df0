"""``aifdata refs``: kerchunk references to HDF5, NetCDF4 and GeoTIFF files through ``aif://``,
with the source's fingerprint; refused once the source changed; lineage recorded."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
xr = pytest.importorskip("xarray")
pytest.importorskip("kerchunk")
pytest.importorskip("zarr")
tifffile = pytest.importorskip("tifffile")

import aifdata  # noqa: E402
from aifdata import FormatError, _synthetic  # noqa: E402
from aifdata import refs as refs_api  # noqa: E402
from aifdata.catalog import Catalog  # noqa: E402
from aifdata.cli import main  # noqa: E402

from .test_hdf5 import EXTENDIBLE, netcdf_file  # noqa: E402

TEMPERATURE = np.random.default_rng(4).normal(280, 5, (90, 7, 11)).astype("f4")


def h5_bytes() -> bytes:
    """Chunked gzip+shuffle with a partial last chunk, a contiguous 1-D and a group variable."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("t", data=TEMPERATURE, chunks=(16, 7, 11), compression="gzip",
                         shuffle=True)  # fmt: skip
        f.create_dataset("ids", data=np.arange(90, dtype="i8"))  # kerchunk: phony_dim_0 too
        f.create_dataset("group/v", data=np.linspace(0, 1, 300), chunks=(64,))
    return buffer.getvalue()


def chunk_urls(references) -> set[str]:
    return {v[0] for v in references["refs"].values() if isinstance(v, list) and len(v) == 3}


def same_as_h5py(ds, path: str) -> None:
    with h5py.File(path) as f:
        np.testing.assert_array_equal(ds["t"].values, f["t"][:])
        np.testing.assert_array_equal(ds["ids"].values, f["ids"][:])
    with xr.open_dataset(path, engine="h5netcdf", phony_dims="access", group="group") as g:
        np.testing.assert_array_equal(g["v"].values, np.linspace(0, 1, 300))


@pytest.mark.parametrize("form", ["json", "parquet"])
def test_hdf5_references_read_back_exactly_with_the_fingerprint(tmp_path, form):
    path = tmp_path / "climate.h5"
    path.write_bytes(h5_bytes())
    suffix = "json" if form == "json" else "parq"
    written = refs_api.write(str(path), format=form)
    assert written.output == f"{path}.refs.{suffix}" and written.format == form
    assert written.dataset is None  # no catalog here
    ds = refs_api.open(written.output, mask_and_scale=False)
    same_as_h5py(ds, str(path))
    fingerprint = aifdata.formats.RangeSource(str(path)).fingerprint
    assert ds.attrs[refs_api.ATTRIBUTE] == {str(path): fingerprint}
    assert refs_api.check(written.output) == {str(path): fingerprint}


def test_references_are_made_by_kerchunk_and_point_at_the_url_given(tmp_path):
    path = tmp_path / "climate.h5"
    path.write_bytes(h5_bytes())
    references = refs_api.generate(str(path))
    assert references["version"] == 1
    assert chunk_urls(references) == {str(path)}
    root = json.loads(references["refs"][".zattrs"])
    assert list(root[refs_api.ATTRIBUTE]) == [str(path)]
    assert json.loads(references["refs"]["t/.zarray"])["chunks"] == [16, 7, 11]


def test_netcdf4_references_match_xarray_on_the_file(tmp_path):
    path = netcdf_file(tmp_path / "climate.nc")
    written = refs_api.write(path, str(tmp_path / "climate.json"))
    with xr.open_dataset(path, engine="netcdf4") as direct:
        got = refs_api.open(written.output)
        expected = direct["temperature"].values
        np.testing.assert_array_equal(got["temperature"].values, expected)
        assert np.isnan(expected).sum() == 5 * 12  # the fill values, masked by both
        np.testing.assert_array_equal(got["time"].values, direct["time"].values)
        assert got["temperature"].attrs["units"] == "K"


def test_geotiff_references(tmp_path):
    data = _synthetic.geotiff(side=192, tile=64, seed=2)
    path = tmp_path / "scene.tif"
    path.write_bytes(data)
    written = refs_api.write(str(path), str(tmp_path / "scene.refs.json"))
    ds = refs_api.open(written.output)
    image = tifffile.imread(io.BytesIO(data))
    assert ds[refs_api.TIFF_VARIABLE].dtype == image.dtype
    np.testing.assert_array_equal(ds[refs_api.TIFF_VARIABLE].values, image)
    assert refs_api.ATTRIBUTE in ds.attrs


def test_a_real_hdf5_file(real_file, tmp_path):
    source = real_file(EXTENDIBLE)
    written = refs_api.write(str(source), str(tmp_path / "real.json"))
    ds = refs_api.open(written.output, mask_and_scale=False)
    with h5py.File(source) as f:
        np.testing.assert_array_equal(ds["ExtendibleArray"].values, f["ExtendibleArray"][:])


# -- a changed source ---------------------------------------------------------------


@pytest.mark.parametrize("form", ["json", "parquet"])
def test_references_to_a_changed_file_are_refused_naming_it(tmp_path, form):
    path = tmp_path / "c.h5"
    path.write_bytes(h5_bytes())
    written = refs_api.write(str(path), format=form)
    with h5py.File(path, "a") as f:
        f["t"][0, 0, 0] = -1.0  # same size, new content (and mtime)
    os.utime(path, ns=(1, 1))
    pattern = rf"{written.output}: {path} changed since these references were made"
    with pytest.raises(FormatError, match=pattern):
        refs_api.open(written.output)
    with pytest.raises(FormatError, match="aifdata refs"):
        refs_api.check(written.output)
    again = refs_api.write(str(path), format=form, overwrite=True)
    assert refs_api.open(again.output, mask_and_scale=False)["t"].values[0, 0, 0] == -1.0


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "c.h5"
    path.write_bytes(h5_bytes())
    refs_api.write(str(path))
    with pytest.raises(aifdata.AifDataError, match="already exists"):
        refs_api.write(str(path))


def test_references_without_a_fingerprint_are_refused(tmp_path):
    import kerchunk.hdf

    path = tmp_path / "c.h5"
    path.write_bytes(h5_bytes())
    plain = kerchunk.hdf.SingleHdf5ToZarr(str(path)).translate()
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    with pytest.raises(FormatError, match=r"plain\.json: records no source fingerprint"):
        refs_api.open(str(tmp_path / "plain.json"))


def test_other_formats_are_refused(tmp_path):
    fastq = tmp_path / "r.fastq"
    fastq.write_text("@r1\nACGT\n+\nIIII\n")
    with pytest.raises(FormatError, match=r"r\.fastq: a fastq file; references are made for"):
        refs_api.write(str(fastq))
    old = tmp_path / "old.nc"
    old.write_bytes(b"CDF\x01" + b"\x00" * 60)
    with pytest.raises(FormatError, match="classic netCDF-3"):
        refs_api.write(str(old))
    assert not list(tmp_path.glob("*.refs.*"))


# -- aif:// --------------------------------------------------------------------------


def test_chunk_urls_are_aif_paths_and_read_through_aif(pfs_fs):
    pfs_fs.pipe("pfsonly/climate/c.h5", h5_bytes())
    url = "aif://pfsonly/climate/c.h5"
    written = refs_api.write(url, config=pfs_fs.config)
    assert written.output == f"{url}.refs.json"
    references = json.loads(pfs_fs.cat(written.output))
    assert chunk_urls(references) == {url}
    ds = refs_api.open(written.output, config=pfs_fs.config, mask_and_scale=False)
    np.testing.assert_array_equal(ds["t"].values, TEMPERATURE)


@pytest.mark.s3
@pytest.mark.parametrize("form", ["json", "parquet"])
def test_references_on_s3_read_through_aif(s3_fs, form):
    s3_fs.pipe("s3only/climate/c.h5", h5_bytes())
    url = "aif://s3only/climate/c.h5"
    written = refs_api.write(url, format=form, config=s3_fs.config)
    ds = refs_api.open(written.output, config=s3_fs.config, mask_and_scale=False)
    np.testing.assert_array_equal(ds["t"].values, TEMPERATURE)
    np.testing.assert_array_equal(ds["ids"].values, np.arange(90))
    s3_fs.pipe("s3only/climate/c.h5", h5_bytes() + b"\x00")  # a new version: other ETag
    with pytest.raises(FormatError, match=rf"{url} changed since"):
        refs_api.open(written.output, config=s3_fs.config)


# -- lineage and the command line ------------------------------------------------------


@pytest.fixture
def catalogued(monkeypatch):
    """An HDF5 file in catalog dataset ``climate/run1`` on the default ``local`` mount."""
    monkeypatch.setenv("AIFDATA_USER", "alice")
    catalog = Catalog()
    fs = aifdata.filesystem(catalog=catalog)
    fs.pipe_file("aif://local/climate/run1/c.h5", h5_bytes())
    catalog.ingest("aif://local/climate/run1", "climate/run1")
    return catalog, fs


def test_the_reference_set_is_recorded_as_derived_from_its_source(catalogued, capsys):
    catalog, _ = catalogued
    url, out = "aif://local/climate/run1/c.h5", "aif://local/refs/run1.refs.json"
    assert main(["refs", url, "--output", out, "--dataset", "climate/run1-refs"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (kerchunk json" in printed
    assert "recorded: climate/run1-refs derived from" in printed
    ((record, parents),) = catalog.lineage("climate/run1-refs")["upstream"].runs
    assert record.job == "aifdata refs" and record.state == "COMPLETE"
    assert [(p.dataset, p.version) for p in parents] == [("climate/run1", 1)]
    assert record.params["output"] == out
    ds = refs_api.open(out, mask_and_scale=False)
    np.testing.assert_array_equal(ds["t"].values, TEMPERATURE)


def test_the_command_refuses_a_bad_format(catalogued, capsys):
    code = main(["refs", "aif://local/climate/run1/c.h5", "--format", "yaml"])
    assert code != 0 and "--format yaml" in capsys.readouterr().err


@pytest.mark.e2e
def test_the_command_in_a_process_writes_parquet_references(tmp_path):
    path = tmp_path / "c.h5"
    path.write_bytes(h5_bytes())
    out = tmp_path / "c.parq"
    done = subprocess.run(
        [sys.executable, "-m", "aifdata", "refs", str(path), "--format", "parquet", "-o", str(out)],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (kerchunk parquet" in done.stdout
    assert (out / ".zmetadata").is_file()
    ds = refs_api.open(str(out), mask_and_scale=False)
    np.testing.assert_array_equal(ds["t"].values, TEMPERATURE)
    Path(path).write_bytes(h5_bytes()[:-1] + b"\x01")
    os.utime(path, ns=(1, 1))
    done = subprocess.run(
        [sys.executable, "-m", "aifdata", "refs", str(path), "-o", str(out), "--format", "parquet"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode != 0 and "already exists" in done.stderr

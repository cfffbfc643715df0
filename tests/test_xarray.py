"""GeoTIFF as a lazy xarray DataArray: one chunk per window, coordinates from the geotransform."""

from __future__ import annotations

import io

import pytest

np = pytest.importorskip("numpy")
tifffile = pytest.importorskip("tifffile")
xr = pytest.importorskip("xarray")
pytest.importorskip("dask")

import aifdata  # noqa: E402
from aifdata import _synthetic  # noqa: E402
from aifdata.formats import RangeSource  # noqa: E402


@pytest.fixture
def scene(tmp_path):
    data = _synthetic.geotiff(side=512, tile=128, seed=4)
    path = tmp_path / "scene.tif"
    path.write_bytes(data)
    return str(path), tifffile.imread(io.BytesIO(data))


def test_open_geotiff_is_lazy_and_equals_the_image(scene):
    url, image = scene
    array = aifdata.xarray.open_geotiff(url, n=16)
    assert isinstance(array, xr.DataArray) and array.dims == ("y", "x")
    assert array.chunks == ((128,) * 4, (128,) * 4)  # 16 windows of one 128 x 128 tile
    np.testing.assert_array_equal(array.values, image)
    assert array.attrs["crs"] == f"EPSG:{_synthetic.GEOTIFF_EPSG}"


def test_coordinates_are_pixel_centres_from_the_geotransform(scene):
    url, _ = scene
    array = aifdata.xarray.open_geotiff(url, n=4)
    east, north = _synthetic.GEOTIFF_ORIGIN
    pixel = _synthetic.GEOTIFF_PIXEL
    assert float(array.x[0]) == east + pixel / 2
    assert float(array.y[0]) == north - pixel / 2
    assert float(array.x[-1]) == east + (512 - 0.5) * pixel
    window = array.sel(x=slice(east, east + 100 * pixel), y=slice(north, north - 50 * pixel))
    assert window.shape == (50, 100)


def test_opening_reads_the_header_only(scene, monkeypatch):
    url, _ = scene
    read = []
    original = RangeSource.read
    monkeypatch.setattr(
        RangeSource, "read", lambda s, a, b: read.append(b - a) or original(s, a, b)
    )
    array = aifdata.xarray.open_geotiff(url, n=16)
    size = RangeSource(url).size
    assert sum(read) < size / 4  # the header and tile tables, no tile
    read.clear()
    array[:128, :128].compute()
    assert 0 < sum(read) < size / 8  # one window's tile (and its tables, once)


def test_xarray_opens_an_aif_geotiff_through_the_aifdata_engine(scene):
    _, image = scene
    fs = aifdata.filesystem()
    url = "aif://local/imagery/scene.tif"
    fs.pipe_file(url, _synthetic.geotiff(side=512, tile=128, seed=4))
    # named, or guessed from an aif:// .tif where xarray's netCDF4 engine (which claims every
    # URL, for OPeNDAP) is not installed
    guessable = "netcdf4" not in xr.backends.list_engines()
    assert xr.backends.list_engines()["aifdata"].guess_can_open(url)
    for engine in ("aifdata", None) if guessable else ("aifdata",):
        dataset = xr.open_dataset(url, engine=engine, n=4)
        assert not dataset["band_data"]._in_memory  # lazy
        np.testing.assert_array_equal(dataset["band_data"].values, image)
        assert dataset.attrs["crs"] == f"EPSG:{_synthetic.GEOTIFF_EPSG}"
    chunked = xr.open_dataset(url, engine="aifdata", n=4, chunks={})["band_data"]
    assert chunked.chunks == ((256, 256), (256, 256))  # a Dask chunk per window
    np.testing.assert_array_equal(chunked[:10, 300:310].values, image[:10, 300:310])
    dropped = xr.open_dataset(url, engine="aifdata", level=0, drop_variables=["band_data"])
    assert list(dropped.data_vars) == []

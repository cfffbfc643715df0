"""NetCDF4 files written by other people's tools, through the HDF5 plug-in.

The files come from packages' source distributions (fetched at test time by the
``real_file`` fixture, never copied here): a CMIP6 product written by CMOR (netCDF-C 4.9.3,
HDF5 1.14.6; a one-row chunk per time step, fill values in the data, an unlimited time
whose chunk is longer than the variable), a regional climate file with contiguous 2-D
variables and one chunk spanning every row, a small CF field written contiguous, a
NETCDF4_CLASSIC-model file, a file written by h5netcdf with a group, an enum and a
coordinate holding its fill value (all from pyfive's tests), the CF field chunked with a
partial last chunk and a UGRID mesh written by netCDF-C 4.9.2 (cf-python's tests). For
every plan the partitions, read one after another, equal what netCDF4 (without masking,
as the plug-in documents) and h5py give for the whole variable; masking the result where
it equals the variable's ``_FillValue`` gives netCDF4's own mask; ``to_xarray`` pieces
put together equal ``xarray.open_dataset``'s variable with its dimensions and dimension
coordinates.

netCDF4-python's own sdist ships test files too, but pip cannot download it without the
netCDF-C and HDF5 headers (its build backend looks for them to make its metadata).
"""

from __future__ import annotations

import itertools

import pytest

np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
netCDF4 = pytest.importorskip("netCDF4")
xr = pytest.importorskip("xarray")

from aifdata import FormatError  # noqa: E402
from aifdata.formats import get, partition  # noqa: E402

from ._realdata import RealFile  # noqa: E402

NS = (1, 2, 3, 5, 8, 17)

#: CMIP6 zonal-mean NOy of UKESM1-0-LL (CMOR): noy (12, 39, 144) float32, gzip, chunks
#: (1, 39, 144), 108 values equal to _FillValue 1e20; time is unlimited, chunks (512,).
NOY = RealFile("pyfive", "1.3.0",
               "tests/data/noy_AERmonZ_UKESM1-0-LL_piControl_r1i1p1f2_gnz_200001-200012.nc",
               "531af7b3a5939c76f9621f91971e7c85c101b1b89b6c26b4ec4389a0d03fc333",
               "BSD-3-Clause")  # fmt: skip
#: A rotated-pole regional model file (netCDF-C 4.9.3): lat and lon (300, 300) contiguous,
#: tasmax (108, 300, 300) gzip in chunks (108, 100, 100), vertices_lat (300, 300, 4) gzip.
RLAT = RealFile("pyfive", "1.3.0", "tests/data/fractal_heap_no_mci_rlat.nc",
                "33c24a1d5a5df7bc95fc93c2aa6998866c47fa897db2d47790f38ed5f70cd673",
                "BSD-3-Clause")  # fmt: skip
#: cf-python's example field 0 written contiguous (netCDF-C 4.9.3-development): q (5, 8).
CONTIGUOUS = RealFile("pyfive", "1.3.0", "tests/data/issue23_A_contiguous.nc",
                      "c8f35ce20c347cf41722d8afcd8e43ec560066b265faa887b3f04e8c3abf6fb6",
                      "BSD-3-Clause")  # fmt: skip
#: The same field chunked (3, 4) and gzip (cf-python's tests): q's second row chunk is partial.
FIELD = RealFile("cf-python", "3.21.0", "cf/test/example_field_0.nc",
                 "82082d1e08a5d39ccb60e716e33087b370ecd531a6e1847c06118f288a318419",
                 "MIT")  # fmt: skip
#: A NETCDF4_CLASSIC-model file (netCDF-C 4.9.2): var1, var2 (4,) int32 contiguous.
CLASSIC_MODEL = RealFile("pyfive", "1.3.0", "tests/data/netcdf4_classic.nc",
                         "c4c11e40b552660632a83ebfe52886c7e8c30e3d5cec4285129a119245e8d665",
                         "BSD-3-Clause")  # fmt: skip
#: A file written by h5netcdf for pyfive's tests: foo (4, 5) gzip over dimensions x (no
#: coordinate) and y (a coordinate with _FillValue -1 in it), an enum variable, a 2-D
#: character coordinate z(z, string3), and variables in a group over the root's x.
H5NETCDF = RealFile("pyfive", "1.3.0", "tests/data/h5netcdf_test.hdf5",
                    "5809066d01f1fab065e7a4ab922101271ac4836f19ce7f93b54afa37a24d8973",
                    "BSD-3-Clause")  # fmt: skip
#: A UGRID global mesh (netCDF-C 4.9.2): face_nodes (13824, 4) int32 gzip in one chunk,
#: theta (1, 13824); its dimensions have no coordinate variables.
UGRID = RealFile("cf-python", "3.21.0", "cf/test/ugrid_global_2.nc",
                 "cdf20cced6805e29d1eed87b0a1a92fea4e0ba12c1ffd9eda70ccb717529f1e9",
                 "MIT")  # fmt: skip
#: A classic netCDF-3 (CDF-1) file from cf-python's tests.
CLASSIC = RealFile("cf-python", "3.21.0", "cf/test/file.nc",
                   "4bfd9c9c2d748646e2cb91e2b26d23421611dc59958ea7f60d79da39092549b7",
                   "MIT")  # fmt: skip

CASES = [
    (NOY, "noy"),
    (NOY, "time"),
    (NOY, "lat_bnds"),
    (RLAT, "lat"),
    (RLAT, "tasmax"),
    (RLAT, "vertices_lat"),
    (CONTIGUOUS, "q"),
    (FIELD, "q"),
    (FIELD, "lat_bnds"),
    (CLASSIC_MODEL, "var1"),
    (H5NETCDF, "foo"),
    (H5NETCDF, "y"),
    (H5NETCDF, "enum_var"),
    (H5NETCDF, "/subgroup/y_var"),
    (H5NETCDF, "/subgroup/subvar"),
    (UGRID, "face_nodes"),
    (UGRID, "theta"),
]


def references(url: str, variable: str):
    """The whole variable as netCDF4 gives it without masking (checked equal to h5py's),
    and netCDF4's masked array."""
    with netCDF4.Dataset(url) as nc:
        var = nc[variable]
        masked = var[:]
        var.set_auto_maskandscale(False)
        raw = var[:]
    with h5py.File(url) as f:
        stored = f[variable][...]
    assert raw.dtype == stored.dtype
    np.testing.assert_array_equal(raw, stored)
    return np.asarray(raw), masked


def read_all(url: str, variable: str, expected, **plan) -> list:
    """Partitions of the plan cover the rows once, in order, on chunk boundaries, and read
    back to ``expected`` exactly (dtype and values)."""
    parts = partition(url, variable=variable, **plan)
    assert [p.ordinal for p in parts] == list(range(len(parts)))
    assert parts[0]["row_start"] == 0 and parts[-1]["row_stop"] == len(expected)
    for a, b in itertools.pairwise(parts):
        assert a["row_stop"] == b["row_start"] > a["row_start"]
    with h5py.File(url) as f:
        chunks = f[variable].chunks
    if chunks:
        assert all(p["row_start"] % chunks[0] == 0 for p in parts)
    pieces = [p.read() for p in parts]
    assert {piece.dtype for piece in pieces} == {expected.dtype}
    got = np.concatenate(pieces)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    return parts


@pytest.mark.parametrize(("real", "variable"), CASES)
def test_real_netcdf4_partitions_equal_netcdf4_and_h5py(real_file, real, variable):
    url = str(real_file(real))
    expected, masked = references(url, variable)
    counts = {len(read_all(url, variable, expected, n=n)) for n in NS}
    read_all(url, variable, expected, target_bytes=max(1, expected.nbytes // 3))
    with h5py.File(url) as f:
        rows, step = len(expected), (f[variable].chunks or (1,))[0]
    assert max(counts) == min(17, -(-rows // step))  # as many as the chunks allow
    # the plug-in gives the stored values; the fill value marks what netCDF4 masks
    got = np.concatenate([p.read() for p in partition(url, n=5, variable=variable)])
    with netCDF4.Dataset(url) as nc:
        fill = (
            nc[variable].getncattr("_FillValue") if "_FillValue" in nc[variable].ncattrs() else None
        )
    if fill is not None:
        np.testing.assert_array_equal(got == fill, np.ma.getmaskarray(masked))
    else:
        assert not np.ma.getmaskarray(masked).any()


def test_fill_values_in_a_cmip6_file_are_kept_as_stored(real_file):
    url = str(real_file(NOY))
    got = np.concatenate([p.read() for p in partition(url, n=8, variable="noy")])
    with netCDF4.Dataset(url) as nc:
        masked = nc["noy"][:]
    assert int((got == np.float32(1e20)).sum()) == np.ma.count_masked(masked) == 108
    np.testing.assert_array_equal(np.ma.masked_equal(got, np.float32(1e20)), masked)


@pytest.mark.parametrize(("real", "variable"), CASES)
def test_real_netcdf4_to_xarray_equals_open_dataset(real_file, real, variable):
    url = str(real_file(real))
    plugin = get("hdf5")
    parts = partition(url, n=3, variable=variable)
    pieces = [plugin.to_xarray(p) for p in parts]
    group, _, name = variable.rpartition("/")
    with xr.open_dataset(
        url, engine="netcdf4", group=group or None, mask_and_scale=False, decode_times=False
    ) as ds:
        expected = ds[name].load()
    got = xr.concat(pieces, dim=expected.dims[0]) if len(pieces) > 1 else pieces[0]
    assert got.dims == expected.dims
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got.values, expected.values)
    assert set(got.indexes) == set(expected.indexes)  # dimension coordinates only
    for name in expected.indexes:
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    for key in ("units", "standard_name", "long_name"):
        if key in expected.attrs:
            assert got.attrs[key] == expected.attrs[key]


def test_a_real_netcdf3_file_is_refused_with_what_to_do(real_file):
    url = str(real_file(CLASSIC))
    with pytest.raises(FormatError, match=r"file\.nc: byte 0: a classic netCDF-3 .*nccopy"):
        partition(url)


def test_a_coordinate_variable_names_its_own_dimension(tmp_path):
    """A NetCDF4 coordinate variable is a dimension scale, which has nothing attached: its
    DataArray's dimension is its own name (it was ``dim_0``), its coordinate itself."""
    path = tmp_path / "coordinate.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createVariable("time", "f8", ("time",), chunksizes=(4,))[:] = np.arange(10) * 0.5
    plugin = get("hdf5")
    pieces = [plugin.to_xarray(p) for p in partition(str(path), n=3, variable="time")]
    got = xr.concat(pieces, dim="time")
    with xr.open_dataset(path, engine="netcdf4", decode_times=False) as ds:
        expected = ds["time"].load()
    assert got.dims == expected.dims == ("time",)
    np.testing.assert_array_equal(got["time"].values, expected["time"].values)
    assert pieces[1]["time"].values[0] == 2.0  # the rows' own values


def test_a_two_dimensional_character_coordinate_variable_is_no_coordinate(tmp_path):
    """NetCDF4 keeps strings as ``z(z, strlen)`` characters: a 2-D dimension scale, named by
    itself along its rows, whose characters are data and not a coordinate."""
    path = tmp_path / "strings.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("z", 6)
        nc.createDimension("strlen", 3)
        z = nc.createVariable("z", "S1", ("z", "strlen"))
        z[:] = netCDF4.stringtochar(np.array(["a", "b", "c", "foo", "bar", "baz"], "S3"))
    with h5py.File(path) as f:
        assert f["z"].is_scale and f["z"].ndim == 2
        expected = f["z"][...]
    plugin = get("hdf5")
    pieces = [plugin.to_xarray(p) for p in partition(str(path), n=2, variable="z")]
    got = xr.concat(pieces, dim="z")
    assert got.dims[0] == "z" and "z" not in got.coords
    np.testing.assert_array_equal(got.values, expected)

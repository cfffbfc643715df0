"""HDF5 / NetCDF4 partitions: exact row ranges on chunk boundaries, metadata-only plans,
clear errors; compared with h5py and netCDF4 reading the whole file."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import re
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
netCDF4 = pytest.importorskip("netCDF4")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.hdf5 import PAGE_BYTES, end_of_file, row_bounds  # noqa: E402

from ._realdata import RealFile  # noqa: E402

NS = (1, 2, 3, 5, 8, 17)

#: Files written by the HDF5 C library's examples and by PyTables (shipped in its wheel's
#: tests): chunked big-endian extendible, chunked compound, contiguous big-endian.
EXTENDIBLE = RealFile("tables", "3.11.1", "tables/tests/smpl_SDSextendible.h5",
                      "09f9f65173739bfb9e2d4ff2fac4999d746bedadb21aff987ab62481a14bf2a7",
                      "BSD-3-Clause", wheel=True)  # fmt: skip
COMPOUND = RealFile("tables", "3.11.1", "tables/tests/smpl_compound_chunked.h5",
                    "b5ecc7c6bf32be80be55c1b38a9ef02e94f10b3231859b214a86a9cb2cc6cbfd",
                    "BSD-3-Clause", wheel=True)  # fmt: skip
F64BE = RealFile("tables", "3.11.1", "tables/tests/smpl_f64be.h5",
                 "9e952007132146a8e70c7cd0ac164754b502b2fc3a7f6da655ad1c056e52a6cb",
                 "BSD-3-Clause", wheel=True)  # fmt: skip
#: A classic netCDF-3 file from xarray's tests: refused, with what to do instead.
NETCDF3_REAL = RealFile("xarray", "2025.6.1", "xarray/tests/data/example_1.nc",
                        "1247c2e7b7565de963817cb9b2276b247246d760f5826414c8f0cad7c5b3953e",
                        "Apache-2.0")  # fmt: skip


class LoggedSource(RangeSource):
    """A RangeSource that remembers every range it read."""

    def __init__(self, url: str, config=None) -> None:
        super().__init__(url, config)
        self.ranges: list[tuple[int, int]] = []

    def read(self, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return super().read(start, end)


def check_exact(url: str, variable: str | None, expected, n: int | None = None, **plan) -> list:
    """Partitions of ``url`` cover the rows once, in order, on chunk boundaries, and read
    back to ``expected`` exactly."""
    parts = partition(url, n=n, variable=variable, **plan)
    assert [p.ordinal for p in parts] == list(range(len(parts)))
    assert parts[0]["row_start"] == 0 and parts[-1]["row_stop"] == len(expected)
    for a, b in itertools.pairwise(parts):
        assert a["row_stop"] == b["row_start"] > a["row_start"]
    with h5py.File(url) as f:
        chunks = f[parts[0]["variable"]].chunks
    if chunks:
        assert all(p["row_start"] % chunks[0] == 0 for p in parts)
    pieces = [p.read() for p in parts]
    assert {piece.dtype for piece in pieces} == {expected.dtype}
    got = np.concatenate(pieces)
    np.testing.assert_array_equal(got, expected)
    return parts


def h5_file(path: Path, build) -> str:
    with h5py.File(path, "w") as f:
        build(f)
    return str(path)


# -- synthetic HDF5: the hard cases --------------------------------------------------

RNG = np.random.default_rng(5)


def kw(**options):
    """create_dataset's keyword arguments."""
    return options


CASES = {
    # name: (dataset kwargs, data); every chunked one ends in a partial chunk
    "chunked-gzip-shuffle": kw(data=RNG.normal(size=(1003, 7)).astype("f4"),
                                 chunks=(64, 7), compression="gzip", shuffle=True),
    "chunked-2d-chunks": kw(data=RNG.integers(0, 1000, (250, 90), dtype="i8"),
                              chunks=(16, 32), compression="gzip"),
    "contiguous": kw(data=RNG.normal(size=(777, 3))),
    "one-dim": kw(data=np.arange(10_001, dtype="u2"), chunks=(1000,), compression="lzf"),
    "three-dim": kw(data=RNG.integers(-50, 50, (61, 20, 9), dtype="i2"),
                      chunks=(8, 10, 9), compression="gzip", shuffle=True),
    "big-endian": kw(data=np.arange(500, dtype=">f8"), chunks=(33,)),
    "compound": kw(data=np.array([(i, i * 0.5, b"r%d" % i) for i in range(300)],
                                   dtype=[("id", "i4"), ("x", "f8"), ("tag", "S6")]),
                     chunks=(40,)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", NS)
def test_partitions_read_back_the_variable_exactly(tmp_path, case, n):
    kwargs = dict(CASES[case])
    url = h5_file(tmp_path / f"{case}.h5", lambda f: f.create_dataset("v", **kwargs))
    with h5py.File(url) as f:
        expected = f["v"][:]
    parts = check_exact(url, None, expected, n=n)
    rows = len(expected)
    step = kwargs.get("chunks", (1,))[0]
    assert len(parts) == min(n, -(-rows // step))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_target_bytes_plan_is_exact_and_sized(tmp_path, case):
    kwargs = dict(CASES[case])
    url = h5_file(tmp_path / f"{case}.h5", lambda f: f.create_dataset("v", **kwargs))
    expected = kwargs["data"]
    target = max(1, expected.nbytes // 6)
    parts = check_exact(url, "v", expected, target_bytes=target)
    step = kwargs.get("chunks", (1,))[0]
    assert len(parts) == min(6 + (expected.nbytes % target > 0), -(-len(expected) // step))


def test_fill_values_of_unwritten_chunks(tmp_path):
    def build(f):
        d = f.create_dataset("sparse", shape=(100, 4), chunks=(10, 4), dtype="f4",
                             fillvalue=-999.0, compression="gzip")  # fmt: skip
        d[20:35] = 1.5
        d[90:] = 2.5

    url = h5_file(tmp_path / "fill.h5", build)
    with h5py.File(url) as f:
        expected = f["sparse"][:]
    assert (expected == -999.0).sum() == 4 * 75
    for n in NS:
        check_exact(url, "sparse", expected, n=n)


def test_a_variable_in_a_group(tmp_path):
    data = np.arange(600.0).reshape(200, 3)

    def build(f):
        f.create_dataset("/climate/surface/t", data=data, chunks=(25, 3))
        f.create_dataset("/other", data=np.arange(5))

    url = h5_file(tmp_path / "g.h5", build)
    for name in ("/climate/surface/t", "climate/surface/t"):
        parts = check_exact(url, name, data, n=3)
        assert parts[0]["variable"] == "/climate/surface/t"


def test_a_userblock_before_the_superblock(tmp_path):
    data = np.arange(1000, dtype="i4")
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f.create_dataset("x", data=data, chunks=(100,))
    raw = bytearray(path.read_bytes())
    raw[:9] = b"# notes\n\x00"
    path.write_bytes(bytes(raw))
    assert get("hdf5").sniff(bytes(raw[:4096]), "ub.bin")
    assert aifdata.formats.detect("ub.bin", bytes(raw[:4096])).name == "hdf5"
    check_exact(str(path), None, data, n=5)


def test_row_bounds_are_chunk_multiples_balanced_by_chunks():
    assert row_bounds(103, 7, 5) == [0, 21, 42, 63, 84, 103]  # 15 chunks, 3 each
    assert row_bounds(10, 64, 4) == [0, 10]  # one partial chunk: one partition
    assert row_bounds(0, 8, 3) == []
    assert row_bounds(5, 1, 17) == [0, 1, 2, 3, 4, 5]


# -- NetCDF4 --------------------------------------------------------------------------


def netcdf_file(path: Path, group: bool = True) -> str:
    """NetCDF4: an unlimited time dimension, coordinate variables, fill values, a group."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", 12)
        nc.createDimension("lon", 20)
        nc.createVariable("time", "f8", ("time",))[:] = np.arange(37)
        nc.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-60, 60, 12)
        nc.createVariable("lon", "f4", ("lon",))[:] = np.linspace(0, 342, 20)
        t = nc.createVariable("temperature", "f4", ("time", "lat", "lon"), zlib=True,
                              shuffle=True, chunksizes=(5, 6, 20), fill_value=-1e30)  # fmt: skip
        t[:37] = np.random.default_rng(2).normal(280, 5, (37, 12, 20))
        t[4:9, :, 3] = np.ma.masked  # written as the fill value
        t.units = "K"
        if not group:
            return str(path)
        g = nc.createGroup("surface")
        g.createDimension("station", None)
        s = g.createVariable("pressure", "i4", ("station",), fill_value=-1, chunksizes=(16,))
        s[:50] = np.arange(50) * 10
        s[60] = 7  # 50..59 never written: the fill value
    return str(path)


def netcdf_raw(path: str, variable: str):
    with netCDF4.Dataset(path) as nc:
        var = nc[variable]
        var.set_auto_maskandscale(False)
        return var[:]


@pytest.mark.parametrize("n", NS)
def test_netcdf4_unlimited_dimension_and_fill_values(tmp_path, n):
    url = netcdf_file(tmp_path / "climate.nc")
    expected = netcdf_raw(url, "temperature")
    assert (expected == np.float32(-1e30)).sum() == 5 * 12
    parts = check_exact(url, "temperature", expected, n=n)
    assert parts[0]["variable"] == "/temperature"
    pressure = netcdf_raw(url, "surface/pressure")
    assert (pressure == -1).sum() == 10
    check_exact(url, "/surface/pressure", pressure, n=n)
    check_exact(url, "time", netcdf_raw(url, "time"), n=n)


def test_coordinate_variables_are_not_candidates(tmp_path):
    url = netcdf_file(tmp_path / "climate.nc")
    with pytest.raises(
        FormatError, match=r"several datasets; .*: /surface/pressure, /temperature$"
    ):
        partition(url)
    alone = netcdf_file(tmp_path / "alone.nc", group=False)
    assert partition(alone, n=2)[0]["variable"] == "/temperature"


def test_netcdf4_target_bytes(tmp_path):
    url = netcdf_file(tmp_path / "climate.nc", group=False)
    expected = netcdf_raw(url, "temperature")
    parts = check_exact(url, None, expected, target_bytes=expected.nbytes // 3)
    assert len(parts) == 3


def test_netcdf4_through_h5netcdf_too(tmp_path):
    h5netcdf = pytest.importorskip("h5netcdf")
    url = netcdf_file(tmp_path / "climate.nc")
    with h5netcdf.File(url, "r") as f:
        expected = f["temperature"][:]
    check_exact(url, "temperature", expected, n=4)


# -- real files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("real", "variable"),
    [(EXTENDIBLE, "ExtendibleArray"), (COMPOUND, "CompoundChunked"), (F64BE, "TestArray")],
)
def test_real_files_read_back_exactly(real_file, real, variable):
    url = str(real_file(real))
    with h5py.File(url) as f:
        expected = f[variable][:]
    for n in NS:
        check_exact(url, None, expected, n=n)
    check_exact(url, variable, expected, target_bytes=max(1, expected.nbytes // 2))


def test_a_real_netcdf3_file_is_refused_with_what_to_do(real_file):
    url = str(real_file(NETCDF3_REAL))
    with pytest.raises(FormatError, match=r"example_1\.nc: byte 0: a classic netCDF-3 .*nccopy"):
        partition(url)


# -- what planning and reading cost -----------------------------------------------------


def big_file(path: Path) -> tuple[str, np.ndarray]:
    data = np.random.default_rng(9).normal(size=(4096, 256)).astype("f4")  # 4 MiB
    url = h5_file(path, lambda f: f.create_dataset("big", data=data, chunks=(128, 256)))
    return url, data


def chunk_spans(url: str, name: str) -> list[tuple[int, int]]:
    with h5py.File(url) as f:
        spans = []
        f[name].id.chunk_iter(lambda c: spans.append((c.byte_offset, c.byte_offset + c.size)))
    return spans


def test_planning_reads_only_the_first_page_of_a_chunked_file(tmp_path):
    url, data = big_file(tmp_path / "big.h5")
    source = LoggedSource(url)
    parts = get("hdf5").plan(source, n=8)
    assert len(parts) == 8
    assert source.requests == 1 and source.bytes_read <= PAGE_BYTES  # the head, then pages
    assert source.bytes_read < data.nbytes / 50


def test_later_partitions_read_only_their_chunks_in_one_request(tmp_path):
    url, data = big_file(tmp_path / "big.h5")
    parts = get("hdf5").plan(RangeSource(url), n=8)
    parts[0].read()  # the chunk index pages are now kept too
    spans = chunk_spans(url, "big")
    for p in parts[1:]:
        source = LoggedSource(url)
        rows = p.read(source=source)
        np.testing.assert_array_equal(rows, data[p["row_start"] : p["row_stop"]])
        mine = spans[p["row_start"] // 128 : p["row_stop"] // 128]
        assert source.requests == 1  # the partition's chunks, merged
        assert source.bytes_read == sum(b - a for a, b in mine)


def test_the_header_of_a_real_file_fits_one_request(real_file):
    source = LoggedSource(str(real_file(EXTENDIBLE)))
    get("hdf5").plan(source, n=3)
    assert source.requests <= 2


# -- pandas, pickling, other processes --------------------------------------------------


def test_to_pandas_for_one_and_two_dimensions_and_compound(tmp_path):
    def build(f):
        f.create_dataset("one", data=np.arange(100), chunks=(10,))
        f.create_dataset("two", data=np.arange(300).reshape(100, 3), chunks=(10, 3))
        f.create_dataset("three", data=np.zeros((10, 2, 2)))
        f.create_dataset("rec", data=CASES["compound"]["data"], chunks=(40,))

    url = h5_file(tmp_path / "p.h5", build)
    one = partition(url, n=3, variable="one")
    frame = one[1].to_pandas()
    assert list(frame.columns) == ["one"] and frame.index[0] == one[1]["row_start"]
    assert frame["one"].tolist() == list(range(one[1]["row_start"], one[1]["row_stop"]))
    two = partition(url, n=2, variable="two")[1].to_pandas()
    assert two.shape == (50, 3) and two.iloc[0].tolist() == [150, 151, 152]
    rec = partition(url, n=2, variable="rec")[0].to_pandas()
    assert list(rec.columns) == ["id", "x", "tag"] and rec["x"].iloc[3] == 1.5
    with pytest.raises(FormatError, match=r"3 dimensions.*use read"):
        partition(url, n=1, variable="three")[0].to_pandas()


def test_a_partition_is_small_frozen_and_picklable(tmp_path):
    url = netcdf_file(tmp_path / "climate.nc")
    part = partition(url, n=3, variable="temperature")[1]
    blob = pickle.dumps(part)
    assert len(blob) < 1024
    assert pickle.loads(blob) == part
    with pytest.raises(AttributeError):
        part.url = "elsewhere"  # type: ignore[misc]


def _read_in_fresh_process(blob: bytes) -> float:
    return float(pickle.loads(blob).read().astype("f8").sum())


@pytest.mark.e2e
def test_partitions_read_in_a_fresh_process(tmp_path):
    url = netcdf_file(tmp_path / "climate.nc")
    expected = netcdf_raw(url, "temperature")
    parts = partition(url, n=3, variable="temperature")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        sums = pool.map(_read_in_fresh_process, [pickle.dumps(p) for p in parts])
    for p, total in zip(parts, sums, strict=True):
        assert total == float(expected[p["row_start"] : p["row_stop"]].astype("f8").sum())


@pytest.mark.s3
def test_plan_and_read_through_aif_on_s3(s3_fs, tmp_path):
    url_local = netcdf_file(tmp_path / "climate.nc")
    s3_fs.pipe("s3only/climate/c.nc", Path(url_local).read_bytes())
    url = "aif://s3only/climate/c.nc"
    source = RangeSource(url, s3_fs.config)
    parts = get("hdf5").plan(source, n=5, variable="temperature")
    assert len(parts) == 5 and source.requests <= 2
    got = np.concatenate([p.read(config=s3_fs.config) for p in parts])
    np.testing.assert_array_equal(got, netcdf_raw(url_local, "temperature"))


def test_a_changed_file_is_not_read_with_an_old_plan(tmp_path):
    path = tmp_path / "c.h5"
    url = h5_file(path, lambda f: f.create_dataset("x", data=np.arange(100), chunks=(10,)))
    part = partition(url, n=2)[0]
    h5_file(path, lambda f: f.create_dataset("x", data=np.arange(200), chunks=(10,)))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


# -- bad input ---------------------------------------------------------------------------


def test_several_candidates_need_a_variable_and_the_error_lists_them(tmp_path):
    def build(f):
        f.create_dataset("a", data=np.arange(3))
        f.create_dataset("g/b", data=np.zeros((2, 2)))
        f.create_dataset("scalar", data=1.0)

    url = h5_file(tmp_path / "two.h5", build)
    with pytest.raises(FormatError, match=r"two\.h5: has several datasets.*variable=: /a, /g/b$"):
        partition(url)
    with pytest.raises(FormatError, match=r"two\.h5: '/nope': no such variable; .*/a, /g/b"):
        partition(url, variable="nope")
    with pytest.raises(FormatError, match=r"'/g': a group, not a variable"):
        partition(url, variable="g")
    with pytest.raises(FormatError, match=r"'/scalar': a scalar"):
        partition(url, variable="scalar")


def test_a_file_with_no_dataset(tmp_path):
    url = h5_file(tmp_path / "empty.h5", lambda f: f.create_group("nothing"))
    with pytest.raises(FormatError, match="has no dataset to partition"):
        partition(url)


def test_a_synthetic_netcdf3_file_is_refused(tmp_path):
    path = tmp_path / "old.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("x", 3)
        nc.createVariable("v", "f4", ("x",))[:] = [1, 2, 3]
    with pytest.raises(FormatError, match=r"old\.nc: byte 0: a classic netCDF-3 file \(CDF-2"):
        partition(str(path))
    with pytest.raises(FormatError, match="classic netCDF-3"):
        partition(str(path), format="hdf5")


def test_wrong_magic_is_refused_at_byte_0(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"not an hdf5 file at all" * 100)
    with pytest.raises(FormatError, match=r"fake\.h5: byte 0: this is not an HDF5 file"):
        partition(str(path))
    with pytest.raises(FormatError, match=r"fake\.h5: byte 0: this is not an HDF5 file"):
        get("hdf5").plan(RangeSource(str(path)))


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_a_truncated_file_is_refused_naming_the_file_and_its_end(tmp_path, keep):
    url, _ = big_file(tmp_path / "whole.h5")
    data = Path(url).read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert end_of_file(data[:64]) == len(data)
    with pytest.raises(FormatError, match=rf"cut\.h5: byte {cut.stat().st_size}: .*truncated"):
        partition(str(cut), n=4)


def test_a_file_truncated_after_planning_is_an_error_when_read(tmp_path):
    url, _ = big_file(tmp_path / "t.h5")
    parts = partition(url, n=4)
    data = Path(url).read_bytes()
    Path(url).write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"t\.h5: changed since"):
        parts[3].read()


def test_corrupt_metadata_is_a_format_error_naming_file_and_bytes(tmp_path):
    url, _ = big_file(tmp_path / "bad.h5")
    raw = bytearray(Path(url).read_bytes())
    raw[96:800] = b"\xff" * 704  # the root group's object header and B-tree
    Path(url).write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"bad\.h5: byte \d+: cannot read .* \(from bytes \d+"):
        partition(url, n=2)


def test_a_corrupt_chunk_is_a_format_error_naming_the_rows(tmp_path):
    url = h5_file(tmp_path / "z.h5", lambda f: f.create_dataset(
        "z", data=np.arange(10_000.0), chunks=(1000,), compression="gzip"))  # fmt: skip
    parts = partition(url, n=5)
    offset, end = chunk_spans(url, "z")[7]
    raw = bytearray(Path(url).read_bytes())
    raw[offset + 2 : end] = b"\x00" * (end - offset - 2)
    Path(url).write_bytes(bytes(raw))
    parts = partition(url, n=5)  # same size, new mtime: plan again
    parts[0].read()
    with pytest.raises(
        FormatError, match=r"z\.h5: byte \d+: cannot read rows 6000\.\.8000 of '/z'"
    ):
        parts[3].read()


def test_sniff_and_registry(tmp_path):
    plugin = get("hdf5")
    assert "hdf5" in aifdata.formats.available()
    for ext in (".h5", ".hdf5", ".he5", ".nc", ".nc4"):
        assert plugin.matches_name(f"x{ext}")
    url = h5_file(tmp_path / "noext", lambda f: f.create_dataset("x", data=np.arange(4)))
    head = Path(url).read_bytes()[:4096]
    assert aifdata.formats.detect("noext", head) is plugin
    assert not plugin.sniff(b"CDF\x01" + b"\x00" * 100, "a.nc")


def small_file_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("v", data=np.arange(3000.0).reshape(300, 10), chunks=(32, 10),
                         compression="gzip", shuffle=True)  # fmt: skip
        f.create_dataset("w", data=np.arange(100))
    return buffer.getvalue()


SMALL = small_file_bytes()
_fuzz_names = itertools.count()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    changes=st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), max_size=8),
    keep=st.one_of(st.none(), st.integers(0, len(SMALL))),
)
def test_damaged_files_give_format_errors_never_anything_else(tmp_path, changes, keep):
    data = bytearray(SMALL)
    for at, value in changes:
        data[at] = value
    path = tmp_path / f"damaged-{next(_fuzz_names)}.h5"  # a new name: nothing kept applies
    path.write_bytes(bytes(data if keep is None else data[:keep]))
    try:
        rows = [p.read() for p in partition(str(path), n=3, variable="v")]
    except FormatError as exc:
        message = str(exc)
    else:  # harmless damage (free space, an unused field), or an empty file: no records
        assert sum(len(r) for r in rows) == (300 if path.stat().st_size else 0)
        return
    assert str(path) in message


def test_to_xarray_names_netcdf_dimensions_and_slices_coordinates(tmp_path):
    url = netcdf_file(tmp_path / "climate.nc")
    plugin = get("hdf5")
    parts = partition(url, n=3, variable="temperature")
    pieces = [plugin.to_xarray(p) for p in parts]
    import xarray as xr

    got = xr.concat(pieces, dim="time")
    with xr.open_dataset(url, engine="netcdf4", mask_and_scale=False) as ds:
        expected = ds["temperature"].load()
    assert got.dims == expected.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(got.values, expected.values)
    for name in ("time", "lat", "lon"):
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    assert got.attrs["units"] == "K" and "DIMENSION_LIST" not in got.attrs
    assert pieces[1]["time"].values[0] == parts[1]["row_start"]  # the rows' own coordinates
    plain = h5_file(tmp_path / "plain.h5", lambda f: f.create_dataset("x", data=np.ones((4, 2))))
    array = plugin.to_xarray(partition(plain, n=1)[0])
    assert array.dims == ("dim_0", "dim_1") and array.name == "x"


def test_a_sparse_chunked_variable_plans_and_reads_from_its_stored_chunks(tmp_path):
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as f:  # 6,000 chunk slots, 4 of them stored
        v = f.create_dataset("v", shape=(300, 20_000), chunks=(100, 10), dtype="f4")
        v[0:5, 0:20] = 1.0
        v[250:260, 100:110] = 2.0
        expected = v[...]
    parts = partition(str(path), n=3, variable="v")
    np.testing.assert_array_equal(np.concatenate([p.read() for p in parts]), expected)


@pytest.mark.parametrize("keep", [9, 12, 13])
def test_a_superblock_cut_before_its_offset_sizes_is_refused(tmp_path, keep):
    path = tmp_path / "cut.h5"
    path.write_bytes(SMALL[:keep])
    with pytest.raises(FormatError, match=re.escape(str(path))):
        partition(str(path), n=3, variable="v")

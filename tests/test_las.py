"""LAS and LAZ partitions: point ranges (whole LAZ chunks), each point once, as laspy reads it."""

from __future__ import annotations

import io
import itertools
import pickle
import struct
from pathlib import Path

import pytest

laspy = pytest.importorskip("laspy")
lazrs = pytest.importorskip("lazrs")
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from laspy.vlrs.vlrlist import VLRList  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.formats import Partition, RangeSource, detect, get, partition, read_all  # noqa: E402

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
LASPY = ("laspy", "2.7.0")
BSD = "BSD-2-Clause (laspy's LICENSE.txt)"
REAL = {
    name: RealFile(*LASPY, f"tests/data/{name}", digest, BSD)
    for name, digest in {
        "simple.las": "a0570ef57b685b77a6d3e3992cbdfeecdb2c3065d3780bbeaba490818258b734",
        "simple.laz": "87ac5d2e8edb6cd3c63f1dd1b982d76b1b3c23ca634658ac6c658e1a70e73e71",
        "autzen_trim.laz": "75867b3e75cfc3c2e96da9f753c04c9fbaa6a59468dea13e2859f3109b38bd66",
        "1_4_w_evlr.las": "7123dad6ee56dfb52220a4b3fe22a0b92e62181557db7fbe915789b8d766139a",
        "1_4_w_evlr.laz": "c16e65ec5c704f0a60d90b154cf21b1df9e5cd9b40cec58b2488754a0ced1a5b",
        "extra.laz": "8aa6c3ff384d4bd7d7d48bfdb6d5973507fa80dd12b1ec698ba606ca4686efed",
        "extrabytes.las": "b8daf5a96114ac86c42fff13e07abdc736e00e1eb34188506a6895b1126ed75b",
        "append-bug.laz": "15b8493da724b03f073f7b677981fd14177a00da5ff9751c57c0285d6c0b3f16",
        "simple1_3.las": "6753c0da6e89b9e9e1e866946746dadb2b2c31b7eb8fd4602bcaf6a1d1ad2cea",
        "simple1_4.las": "1162a745e71e9eedddf453062e01c476e791ea09a75190f68f52050dad4a0330",
        "plane.laz": "2251306106cd2aaaf4d67b30a81704b421c7d46de0e49eebcd2d87efc00b5948",
    }.items()
}


# -- writing test files ---------------------------------------------------------------


def cloud(point_format: int, count: int, seed: int = 0, extra: bool = True) -> object:
    """A seeded ``LasData`` of ``count`` points (extra bytes when ``extra``)."""
    version = "1.4" if point_format >= 6 else "1.2"
    header = laspy.LasHeader(version=version, point_format=point_format)
    if extra:
        header.add_extra_dims(
            [laspy.ExtraBytesParams("height", "f4"), laspy.ExtraBytesParams("pair", "3u2")]
        )
    header.scales = np.array([0.01, 0.01, 0.001])
    header.offsets = np.array([600_000.0, 4_000_000.0, 0.0])
    las = laspy.LasData(header)
    rng = np.random.default_rng(seed)
    las.X = rng.integers(0, 10**7, count)
    las.Y = rng.integers(0, 10**7, count)
    las.Z = rng.integers(0, 10**5, count)
    las.intensity = rng.integers(0, 2**16, count)
    las.classification = rng.integers(0, 32, count)
    las.return_number = rng.integers(1, 6, count)
    if "gps_time" in las.point_format.dimension_names:
        las.gps_time = rng.random(count) * 1e6
    if extra:
        las.height = rng.random(count).astype("f4")
        las.pair = rng.integers(0, 2**16, (count, 3))
    return las


def write(las: object, path: Path, evlr: bool = False) -> Path:
    if evlr:
        las.evlrs = VLRList([laspy.VLR("aifdata", 7, "after the points", b"e" * 3000)])
    las.write(path)
    return path


def write_variable_chunks(path: Path, las: object, sizes: list[int]) -> Path:
    """A LAZ file whose chunks hold ``sizes`` points each (laszip's variable-size chunks)."""
    assert sum(sizes) == len(las.points)
    header = las.header
    fmt = header.point_format
    vlr = lazrs.LazVlr.new_for_compression(fmt.id, fmt.num_extra_bytes, True)
    header.vlrs = VLRList([laspy.vlrs.known.LasZipVlr(vlr.record_data())])
    header.point_count = sum(sizes)
    header.are_points_compressed = True
    out = io.BytesIO()
    header.write_to(out)
    compressor = lazrs.LasZipCompressor(out, vlr)
    raw = np.frombuffer(las.points.array.tobytes(), np.uint8)
    bounds = [0, *itertools.accumulate(sizes)]
    compressor.compress_chunks(
        [raw[a * fmt.size : b * fmt.size] for a, b in itertools.pairwise(bounds)]
    )
    compressor.done()
    path.write_bytes(out.getvalue())
    return path


def reference(path: Path) -> np.ndarray:
    return laspy.read(path).points.array


def union(parts) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([p.read().array for p in parts])


def check_exact(path: Path, counts=COUNTS, target_bytes: int | None = None) -> list:  # type: ignore[no-untyped-def]
    """Every plan gives every point once, in order, as laspy reads the whole file."""
    expected = reference(path)
    plans = [partition(str(path), n=n) for n in counts]
    if target_bytes is not None:
        plans.append(partition(str(path), target_bytes=target_bytes))
    for parts in plans:
        assert [p.ordinal for p in parts] == list(range(len(parts)))
        assert [p["first"] for p in parts] == [0, *itertools.accumulate(p["count"] for p in parts)][
            :-1
        ]
        assert sum(p["count"] for p in parts) == len(expected)
        assert np.array_equal(union(parts), expected)
        assert all(len(pickle.dumps(p)) < 1024 for p in parts)
    return plans


# -- synthetic hard cases -------------------------------------------------------------


@pytest.mark.parametrize("point_format", [1, 3, 6, 7, 8])
@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_every_point_format_with_extra_bytes_reads_back_whole(tmp_path, point_format, suffix):
    path = write(
        cloud(point_format, 7_001, seed=point_format), tmp_path / f"pf{point_format}{suffix}"
    )
    plans = check_exact(path, target_bytes=20_000)
    if suffix == ".las":
        assert [len(parts) for parts in plans[:-1]] == list(COUNTS)
        assert len(plans[-1]) == -(-7_001 * laspy.read(path).header.point_format.size // 20_000)
    else:
        assert all(len(parts) == 1 for parts in plans)  # one chunk of 50,000 points: never split


def test_laz_of_several_chunks_splits_only_between_them(tmp_path):
    path = write(cloud(3, 120_001, seed=1), tmp_path / "three.laz")  # 50,000 + 50,000 + 20,001
    plans = check_exact(path, target_bytes=100_000)
    for parts in plans:
        assert {p["first"] for p in parts} <= {0, 50_000, 100_000}
    assert [len(parts) for parts in plans] == [1, 2, 3, 3, 3, 3, 3]


def test_variable_size_chunks(tmp_path):
    sizes = [1, 777, 5_000, 3, 12_000, 64, 2_500]
    las = cloud(7, sum(sizes), seed=2)
    path = write_variable_chunks(tmp_path / "variable.laz", las, sizes)
    plans = check_exact(path, target_bytes=30_000)
    starts = set(itertools.accumulate([0, *sizes]))
    for parts in plans:
        assert {p["first"] for p in parts} <= starts
    assert len(plans[COUNTS.index(17)]) == len(sizes)
    counts = [p["count"] for p in partition(str(path), n=3)]
    assert counts == [5_781, 12_000, 2_564]  # balanced by points, not by chunks


def test_many_chunks_are_named_by_their_table_not_listed(tmp_path):
    sizes = [100] * 200  # a partition of 200 chunks: its spec cannot list them all
    path = write_variable_chunks(tmp_path / "many.laz", cloud(6, 20_000, seed=3), sizes)
    parts = partition(str(path), n=1)
    assert "sizes" not in parts[0].options and len(pickle.dumps(parts[0])) < 1024
    assert np.array_equal(parts[0].read().array, reference(path))
    four = partition(str(path), n=8)
    assert all("sizes" in p.options for p in four)  # 25 chunks each: listed


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(1, 400), min_size=1, max_size=12), n=st.integers(1, 20))
def test_any_chunk_sizes_and_any_n_give_every_point_once(tmp_path_factory, sizes, n):
    path = tmp_path_factory.mktemp("laz") / "any.laz"
    write_variable_chunks(path, cloud(6, sum(sizes), seed=len(sizes), extra=False), sizes)
    parts = partition(str(path), n=n)
    assert len(parts) == min(n, len(sizes))
    assert np.array_equal(union(parts), reference(path))


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_1_4_with_evlrs_after_the_points(tmp_path, suffix):
    path = write(cloud(6, 60_000, seed=4), tmp_path / f"evlr{suffix}", evlr=True)
    assert laspy.read(path).evlrs  # the EVLR is there, after the points
    check_exact(path, counts=(1, 2, 5), target_bytes=200_000)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_a_file_of_no_points_has_no_partitions(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    laspy.LasData(laspy.LasHeader(version="1.4", point_format=6)).write(path)
    assert partition(str(path), n=3) == []
    assert partition(str(path), target_bytes=1) == []


def test_planning_reads_the_header_and_the_chunk_table_only(tmp_path):
    path = write(cloud(3, 220_000, seed=5, extra=False), tmp_path / "big.laz")
    source = RangeSource(str(path))
    parts = get("las").plan(source, n=5)
    assert len(parts) == 5
    assert source.requests == 2  # the header, VLRs and table pointer; the table
    assert source.bytes_read <= 16 * 2**10 + 4096
    plain = write(cloud(3, 220_000, seed=5, extra=False), tmp_path / "big.las")
    source = RangeSource(str(plain))
    assert len(get("las").plan(source, n=17)) == 17
    assert source.requests == 1 and source.bytes_read <= 16 * 2**10


def test_a_partition_reads_only_its_own_bytes(tmp_path):
    path = write(cloud(3, 160_000, seed=6, extra=False), tmp_path / "four.laz")
    parts = partition(str(path), n=4)
    get("las").read(parts[0], source=RangeSource(str(path)))  # the header, kept per process
    source = RangeSource(str(path))
    points = get("las").read(parts[2], source=source)
    assert len(points) == parts[2]["count"] == 50_000
    assert source.requests == 1 and source.bytes_read == parts[2]["end"] - parts[2]["start"]


def test_read_all_gives_the_same_points_as_reading_each(tmp_path):
    for suffix in (".las", ".laz"):
        path = write(cloud(6, 120_000, seed=7, extra=False), tmp_path / f"all{suffix}")
        parts = partition(str(path), n=5)
        got = np.concatenate([points.array for _, points in read_all(parts, block_bytes=100_000)])
        assert np.array_equal(got, reference(path))


def test_to_pandas_scales_coordinates_and_names_every_dimension(tmp_path):
    path = write(cloud(8, 3_000, seed=8), tmp_path / "frame.las")
    parts = partition(str(path), n=2)
    whole = laspy.read(path)
    frame = parts[1].to_pandas()
    first = parts[1]["first"]
    assert frame.index[0] == first and len(frame) == parts[1]["count"]
    assert np.allclose(frame["x"], whole.x[first:])
    assert np.array_equal(frame["classification"], whole.classification[first:])
    assert np.array_equal(frame["gps_time"], whole.gps_time[first:])
    assert np.array_equal(frame["pair_2"], whole.pair[first:, 2])
    for column in ("y", "z", "intensity", "return_number", "nir", "height"):
        assert column in frame.columns
    assert get("las").table(parts[0]) == get("las").table(parts[1])
    assert len(list(get("las").records(parts[0]))) == parts[0]["count"]


def test_names_and_bytes_pick_the_format(tmp_path):
    laz = write(cloud(6, 10, extra=False), tmp_path / "a.laz")
    head = laz.read_bytes()[:4096]
    assert detect("x.laz", head).name == "las"
    assert detect("x.las", head).name == "las"
    assert detect("x.bin", head).name == "las"
    assert detect("x.copc.laz", head).name == "las"  # named COPC, but no COPC info VLR


# -- malformed files ---------------------------------------------------------------------


def test_wrong_magic_names_the_file_and_byte_0(tmp_path):
    path = tmp_path / "wrong.las"
    path.write_bytes(b"LASX" + write(cloud(3, 10), tmp_path / "ok.las").read_bytes()[4:])
    with pytest.raises(FormatError, match=r"wrong\.las: byte 0: .*'LASF'"):
        partition(str(path))
    with pytest.raises(FormatError, match=r"byte 0"):
        get("las").plan(RangeSource(str(path)))


def test_truncated_las_point_data_is_refused_at_its_end(tmp_path):
    data = write(cloud(3, 1_000), tmp_path / "whole.las").read_bytes()
    cut = tmp_path / "cut.las"
    cut.write_bytes(data[:-100])
    with pytest.raises(FormatError, match=rf"cut\.las: byte {len(data) - 100}: .*truncated"):
        partition(str(cut), n=2)


def test_a_partition_given_too_few_bytes_says_where_the_points_end(tmp_path):
    path = write(cloud(3, 1_000), tmp_path / "short.las")
    part = partition(str(path), n=2)[1]
    source = RangeSource(str(path))
    data = source.read(part["start"], part["end"])[:-7]
    with pytest.raises(FormatError, match=rf"short\.las: byte {part['end'] - 7}: .*inside point"):
        get("las").decode(part, data, source)


def test_truncated_laz_has_its_chunk_table_past_the_end(tmp_path):
    data = write(cloud(3, 120_001, extra=False), tmp_path / "whole.laz").read_bytes()
    cut = tmp_path / "cut.laz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        FormatError, match=r"cut\.laz: byte \d+: the LAZ chunk table offset .* truncated"
    ):
        partition(str(cut), n=2)


def test_a_chunk_table_pointing_past_the_end_is_refused(tmp_path):
    path = write(cloud(3, 1_000), tmp_path / "bad.laz")
    data = bytearray(path.read_bytes())
    at = laspy.read(path).header.offset_to_point_data
    struct.pack_into("<q", data, at, len(data) + 1_000)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"bad\.laz: byte {at}: the LAZ chunk table offset"):
        partition(str(path))


def test_a_laszip_vlr_lazrs_cannot_take_is_refused(tmp_path):
    path = write(cloud(3, 1_000, extra=False), tmp_path / "items.laz")
    data = bytearray(path.read_bytes())
    record = data.index(b"laszip encoded") - 2 + 54
    struct.pack_into("<H", data, record + 34, 106)  # an item type laszip does not know
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"items\.laz: the laszip VLR cannot be read"):
        partition(str(path))
    struct.pack_into("<HH", data, record + 34, 6, 7)  # a point item of 7 bytes: not 20
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"items\.laz: byte 105: the laszip VLR describes"):
        partition(str(path))


def test_a_streamed_laz_keeps_its_chunk_table_offset_at_the_end(tmp_path):
    path = write(cloud(3, 120_001, extra=False), tmp_path / "streamed.laz")
    expected = reference(path)
    data = bytearray(path.read_bytes())
    at = laspy.read(path).header.offset_to_point_data
    (table,) = struct.unpack_from("<q", data, at)
    struct.pack_into("<q", data, at, -1)  # as laszip writes when it cannot seek back
    path.write_bytes(bytes(data) + struct.pack("<q", table))
    parts = partition(str(path), n=3)
    assert len(parts) == 3 and np.array_equal(union(parts), expected)


def test_a_chunk_table_that_does_not_match_the_points_is_refused(tmp_path):
    path = write(cloud(3, 120_001, extra=False), tmp_path / "table.laz")
    data = bytearray(path.read_bytes())
    at = laspy.read(path).header.offset_to_point_data
    (table,) = struct.unpack_from("<q", data, at)
    struct.pack_into("<I", data, table + 4, 2)  # says 2 chunks where there are 3
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"table\.laz: byte {table}: .*does not match"):
        partition(str(path))
    struct.pack_into("<I", data, table + 4, 2**31)  # lazrs would try to allocate for them all
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"byte {table}: not a LAZ chunk table"):
        partition(str(path))


def test_corrupt_or_short_compressed_points_raise_a_format_error(tmp_path):
    path = write(cloud(3, 2_000, extra=False), tmp_path / "noise.laz")
    part = partition(str(path))[0]
    source = RangeSource(str(path))
    data = source.read(part["start"], part["end"])
    with pytest.raises(FormatError, match=rf"noise\.laz: byte {part['end'] - 500}: .*ended early"):
        get("las").decode(part, data[:-500], source)  # lazrs would panic on it
    noise = data[:50]  # a table that matches bytes too few for the points: laszip runs dry
    sizes = struct.pack("<Q", len(noise))
    bad = Partition.make(part.url, "las", 0, part.fingerprint, **{**part.options, "sizes": sizes})
    with pytest.raises(FormatError, match=rf"noise\.laz: bytes {part['start']}\.\.\d+: cannot"):
        get("las").decode(bad, noise, source)


def test_a_changed_file_is_refused_not_misread(tmp_path):
    path = write(cloud(3, 1_000), tmp_path / "changed.las")
    parts = partition(str(path), n=2)
    write(cloud(3, 2_000, seed=9), path)
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        parts[1].read()


# -- real files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_from_laspy_read_back_whole(real_file, name):
    path = real_file(REAL[name])
    plans = check_exact(path, target_bytes=4_096)
    if name == "autzen_trim.laz":  # written by PDAL: three chunks of 50,000, 50,000, 10,000
        assert [len(parts) for parts in plans] == [1, 2, 3, 3, 3, 3, 3]


# -- review fixes ---------------------------------------------------------------


#: A long ``aif://`` URL (200 characters) and a fingerprint with a sha256 checksum: the
#: most a partition's URL and fingerprint take in practice.
LONG_URL = "aif://" + "lidar-survey-2024/" * 10 + "tiles/" + "t" * 4 + ".laz"
SHA_FINGERPRINT = "123456789012:1718000000.123456#sha256:" + "ab" * 32


class LongNamed(RangeSource):
    """A local file seen under a long ``aif://`` URL with a checksum fingerprint."""

    def __init__(self, path: Path, url: str = LONG_URL) -> None:
        super().__init__(str(path))
        self.url = url

    @property
    def fingerprint(self) -> str:
        return SHA_FINGERPRINT


def test_partitions_of_a_long_url_and_a_checksum_stay_under_1_kb(tmp_path):
    assert len(LONG_URL) == 200
    sizes = [1 + (i * 7919) % 900 for i in range(96)]  # variable chunks: two sizes per chunk
    las = cloud(7, sum(sizes), seed=5)
    path = write_variable_chunks(tmp_path / "long.laz", las, sizes)
    expected = reference(path)
    plugin = get("las")
    listed = 0
    for n in (*COUNTS, 4, 6, 12, 48, 96):
        parts = plugin.plan(LongNamed(path), n=n)
        assert all(len(pickle.dumps(p)) < 1024 for p in parts), n
        listed += sum("sizes" in p.options for p in parts)
        got = np.concatenate([plugin.read(p, LongNamed(path)).array for p in parts])
        assert np.array_equal(got, expected), n
    assert listed  # small runs still carry their sizes

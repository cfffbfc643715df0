"""GeoTIFF / COG partitions: exact windows, header-only plans, georeferencing, clear errors."""

from __future__ import annotations

import io
import multiprocessing
import pickle
import struct
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("imagecodecs")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, geotiff, get, partition  # noqa: E402
from aifdata.formats.geotiff import (  # noqa: E402
    HEAD_BYTES,
    Raster,
    block_shape,
    levels,
    plan_level,
)

#: EPSG:32633 (WGS 84 / UTM 33N), 10 m pixels, top-left corner at (500000, 5000000).
TRANSFORM = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
GEOKEYS = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)
GEO_TAGS = [
    (33550, "d", 3, (10.0, 10.0, 0.0), False),
    (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 5000000.0, 0.0), False),
    (34735, "H", len(GEOKEYS), GEOKEYS, False),
]


def image(seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Seeded pixels: noise on a gradient, so compression has something to find."""
    rng = np.random.default_rng(seed)
    gradient = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) % 50
    if len(shape) == 3:
        gradient = gradient[..., None]
    if np.dtype(dtype).kind == "f":
        return (gradient + rng.standard_normal(shape)).astype(dtype)
    noise = rng.integers(0, 8, shape)
    return (gradient + noise - (25 if np.dtype(dtype).kind == "i" else 0)).astype(dtype)


def overviews(full: np.ndarray, count: int) -> list[np.ndarray]:
    """``full`` and up to ``count`` halvings of it, each smaller in both directions."""
    pyramid = [full]
    while len(pyramid) <= count and min(pyramid[-1].shape[:2]) >= 2:
        pyramid.append(pyramid[-1][::2, ::2])
    return pyramid


def photometric(array: np.ndarray) -> str:
    return "rgb" if array.ndim == 3 else "minisblack"


# -- a COG writer: every IFD and tag value first, then the tiles ---------------

_FMT = {2: "s", 3: "H", 4: "I", 12: "d", 16: "Q"}


def encode(array, tile, compression, predictor, order) -> tuple[dict, list[bytes]]:
    """tifffile's encoding of one level: the IFD tags to write and the tile bytes."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, tile=tile, compression=compression, predictor=predictor,
                     photometric=photometric(array), metadata=None, byteorder=order)  # fmt: skip
    data = buf.getvalue()
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        p = tif.pages[0]
        spp = p.samplesperpixel
        tags = {256: (4, [p.imagewidth]), 257: (4, [p.imagelength]), 259: (3, [p.compression]),
                258: (3, [p.bitspersample] * spp), 262: (3, [p.photometric]), 277: (3, [spp]),
                284: (3, [1]), 317: (3, [p.predictor]), 322: (3, [p.tilewidth]),
                323: (3, [p.tilelength]), 339: (3, [p.sampleformat] * spp)}  # fmt: skip
        tiles = [data[o : o + n] for o, n in zip(p.dataoffsets, p.databytecounts, strict=True)]
    return tags, tiles


def cog_bytes(
    levels_: list[np.ndarray],
    tile=(32, 32),
    compression=None,
    predictor=None,
    order: str = "<",
    big: bool = False,
    geo: bool = True,
    mask: bool = False,
    sparse: bool = False,
    nodata: bytes | None = None,
) -> bytes:
    """A Cloud-Optimized GeoTIFF: header, all IFDs, all tag values, then tiles."""
    ifds, blobs = [], []
    for k, array in enumerate(levels_):
        tags, tiles = encode(array, tile, compression, predictor, order)
        tags[254] = (4, [1 if k else 0])
        if k == 0 and geo:
            tags |= {33550: (12, [10.0, 10.0, 0.0]), 34735: (3, list(GEOKEYS)),
                     33922: (12, [0.0, 0.0, 0.0, 500000.0, 5000000.0, 0.0])}  # fmt: skip
            if nodata is not None:
                tags[42113] = (2, nodata + b"\x00")
        if k == 0 and sparse:
            tiles[0] = b""
        ifds.append(tags)
        blobs.append(tiles)
        if k == 0 and mask:  # a GDAL-style mask between the image and its overviews
            mask_tags, mask_tiles = encode(
                np.full(array.shape[:2], 255, "u1"), tile, None, None, order
            )
            ifds.append(mask_tags | {254: (4, [4])})
            blobs.append(mask_tiles)
    return assemble(ifds, blobs, order, big)


def assemble(ifds: list[dict], blobs: list[list[bytes]], order: str, big: bool) -> bytes:
    """The file bytes for IFDs given as ``{tag: (type, values)}``; tile offsets filled in."""
    offset_type, pointer = (16, "Q") if big else (4, "I")
    entry, field, count_fmt, head = (20, 8, "Q", 16) if big else (12, 4, "H", 8)
    for tags, tiles in zip(ifds, blobs, strict=True):
        tags[324] = (offset_type, [0] * len(tiles))
        tags[325] = (offset_type, [len(t) for t in tiles])

    def packed(type_: int, values) -> bytes:
        if type_ == 2:
            return bytes(values)
        return struct.pack(f"{order}{len(values)}{_FMT[type_]}", *values)

    sizes = [struct.calcsize(count_fmt) + entry * len(t) + field for t in ifds]
    pos = head + sum(sizes)
    where: list[dict[int, int]] = []
    for tags in ifds:
        where.append({})
        for code, (type_, values) in sorted(tags.items()):
            if len(packed(type_, values)) > field:
                where[-1][code] = pos
                pos += len(packed(type_, values))
    for tags, tiles in zip(ifds, blobs, strict=True):
        offsets = []
        for t in tiles:
            offsets.append(pos if t else 0)
            pos += len(t)
        tags[324] = (offset_type, offsets)
    out = bytearray(
        (b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42)
    )
    out += struct.pack(order + "HHQ", 8, 0, head) if big else struct.pack(order + "I", head)
    at = head
    for k, tags in enumerate(ifds):
        at += sizes[k]
        out += struct.pack(order + count_fmt, len(tags))
        for code, (type_, values) in sorted(tags.items()):
            out += struct.pack(order + "HH" + pointer, code, type_, len(values))
            data = packed(type_, values)
            inline = data.ljust(field, b"\x00")
            out += struct.pack(order + pointer, where[k][code]) if code in where[k] else inline
        out += struct.pack(order + pointer, at if k + 1 < len(ifds) else 0)
    for tags, places in zip(ifds, where, strict=True):
        out += b"".join(packed(*tags[code]) for code in sorted(places))
    for tiles in blobs:
        out += b"".join(tiles)
    return bytes(out)


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def tiff_file(path: Path, levels_: list[np.ndarray], kind: str, **kw) -> str:
    """A file by tifffile: ``tiled``, ``stripped`` (no overviews), or ``subifds`` pyramid."""
    options = {"photometric": photometric(levels_[0]), "extratags": GEO_TAGS} | kw
    order, big = options.pop("order", "<"), options.pop("big", False)
    with tifffile.TiffWriter(path, byteorder=order, bigtiff=big) as tif:
        if kind == "stripped":
            options.pop("tile", None)
            tif.write(levels_[0], **options)
            return str(path)
        options.pop("rowsperstrip", None)
        subifds = {"subifds": len(levels_) - 1} if kind == "subifds" else {}
        tif.write(levels_[0], **options, **subifds)
        options.pop("extratags")
        for overview in levels_[1:]:
            tif.write(overview, subfiletype=1, **options)
    return str(path)


def stitch(parts, shape, dtype, **options) -> tuple[np.ndarray, np.ndarray]:
    """The windows put together, and how many windows covered each pixel."""
    out = np.zeros(shape, dtype)
    covered = np.zeros(shape[:2], int)
    for p in parts:
        r = p.read(**options)
        h, w = r.data.shape[:2]
        assert (h, w) == (p["height"], p["width"])
        assert (r.row, r.col) == (p["row"], p["col"])
        out[r.row : r.row + h, r.col : r.col + w] = r.data
        covered[r.row : r.row + h, r.col : r.col + w] += 1
    return out, covered


# -- exactness ----------------------------------------------------------------

case = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["cog", "tiled", "stripped", "subifds"]),
        "dtype": st.sampled_from(["uint8", "uint16", "int16", "float32"]),
        "samples": st.sampled_from([1, 3]),
        "compression": st.sampled_from([None, "zlib", "lzw", "zstd", "jpeg"]),
        "predictor": st.booleans(),
        "tile": st.tuples(st.sampled_from([16, 32, 48]), st.sampled_from([16, 32, 64])),
        "rowsperstrip": st.integers(1, 40),
        "height": st.integers(1, 130),
        "width": st.integers(1, 130),
        "order": st.sampled_from(["<", ">"]),
        "big": st.booleans(),
        "overviews": st.integers(0, 3),
        "seed": st.integers(0, 2**16),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(c=case, n=st.integers(1, 40), level_pick=st.integers(0, 3))
def test_windows_stitch_to_the_image_exactly_once(tmp_path, c, n, level_pick):
    shape = (c["height"], c["width"]) + ((3,) if c["samples"] == 3 else ())
    if c["compression"] == "jpeg" and c["dtype"] != "uint8":
        c["compression"] = "zlib"
    compressed = c["compression"] not in (None, "jpeg")
    predictor = True if c["predictor"] and compressed else None
    count = 0 if c["kind"] == "stripped" else c["overviews"]
    pyramid = overviews(image(c["seed"], shape, c["dtype"]), count)
    path = tmp_path / f"{c['kind']}.tif"
    if c["kind"] == "cog":
        data = cog_bytes(pyramid, c["tile"], c["compression"], predictor, c["order"], c["big"])
        url = write(path, data)
    else:
        url = tiff_file(path, pyramid, c["kind"], tile=c["tile"], compression=c["compression"],
                        predictor=predictor, rowsperstrip=c["rowsperstrip"], order=c["order"],
                        big=c["big"])  # fmt: skip
    level = min(level_pick, len(pyramid) - 1)
    if level:
        parts = plan_level(RangeSource(url), level, n=n)
    else:
        parts = partition(url, n=n, format="geotiff")
    expected = tifffile.imread(url, level=level) if level else tifffile.imread(url)
    got, covered = stitch(parts, expected.shape, expected.dtype)
    assert (covered == 1).all()
    np.testing.assert_array_equal(got, expected)
    if c["compression"] != "jpeg":
        np.testing.assert_array_equal(got, pyramid[level])
    # tile-aligned, ordered, about n of them (at most one per tile)
    th, tw = c["tile"]
    if c["kind"] == "stripped":  # tifffile may round rows per strip (JPEG)
        with tifffile.TiffFile(url) as tif:
            th, tw = min(tif.pages[0].rowsperstrip, c["height"]), c["width"]
    assert all(p["row"] % th == 0 and p["col"] % tw == 0 for p in parts)
    wanted = min(n, -(-expected.shape[0] // th) * -(-expected.shape[1] // tw))
    assert wanted / 2 <= len(parts) <= 2 * wanted
    assert [p.ordinal for p in parts] == list(range(len(parts)))
    assert {p["level"] for p in parts} == {level}


def test_planar_separate_big_endian_bigtiff(tmp_path):
    planes = image(4, (3, 70, 90), "float32")
    url = str(tmp_path / "planar.tif")
    options = {"compression": "zlib", "predictor": True, "byteorder": ">", "bigtiff": True}
    tifffile.imwrite(
        url, planes, tile=(16, 32), planarconfig="separate", photometric="rgb", **options
    )
    parts = partition(url, n=6, format="geotiff")
    got, covered = stitch(parts, (70, 90, 3), "float32")
    assert (covered == 1).all()
    np.testing.assert_array_equal(got, np.moveaxis(planes, 0, -1))


def test_stripped_windows_are_whole_strips_of_full_width(tmp_path):
    full = image(5, (1000, 300), "int16")
    options = {"rowsperstrip": 10, "compression": "lzw"}
    url = tiff_file(tmp_path / "strips.tif", [full], "stripped", **options)
    parts = partition(url, n=8, format="geotiff")
    assert len(parts) == 8
    assert all(p["width"] == 300 and p["col"] == 0 and p["row"] % 10 == 0 for p in parts)
    np.testing.assert_array_equal(stitch(parts, full.shape, full.dtype)[0], full)


def test_n_and_target_bytes_set_the_number_of_windows(tmp_path):
    full = image(6, (512, 512), "uint16")
    url = write(tmp_path / "n.tif", cog_bytes([full], tile=(32, 32)))  # 16 x 16 tiles
    for n in (1, 2, 4, 16, 64, 256):
        assert len(partition(url, n=n, format="geotiff")) == n
    assert len(partition(url, n=10_000, format="geotiff")) == 256  # one per tile at most
    data_bytes = 512 * 512 * 2
    parts = partition(url, target_bytes=data_bytes // 8, format="geotiff")
    assert len(parts) == 8
    sizes = {(p["height"], p["width"]) for p in parts}
    assert max(h * w for h, w in sizes) * 2 <= data_bytes // 8


@pytest.mark.parametrize(
    ("down", "across", "count", "expected"),
    [(10, 10, 4, (5, 5)), (10, 10, 1, (10, 10)), (1, 7, 3, (1, 3)), (4, 4, 100, (1, 1))],
)
def test_block_shape(down, across, count, expected):
    assert block_shape(down, across, count) == expected


# -- COG plans: header only ---------------------------------------------------


@pytest.fixture(scope="module")
def big_cog(tmp_path_factory) -> tuple[str, np.ndarray]:
    """2048 x 2048 in 16 x 16 tiles: the tile offset arrays run past the first 64 KiB."""
    full = image(7, (2048, 2048), "uint8")
    path = tmp_path_factory.mktemp("cog") / "big.tif"
    return write(path, cog_bytes(overviews(full, 3), tile=(16, 16))), full


def test_planning_a_cog_takes_two_requests_when_its_arrays_pass_64_kib(big_cog):
    url, full = big_cog
    size = Path(url).stat().st_size
    source = RangeSource(url)
    parts = get("geotiff").plan(source, n=16)
    assert source.requests == 2
    assert source.bytes_read < size / 20
    assert source.bytes_read <= HEAD_BYTES + 2 * 16384 * 4 + 4096  # head + both arrays
    assert len(parts) == 16 and all(len(pickle.dumps(p)) < 1024 for p in parts)
    r = parts[5].read()
    np.testing.assert_array_equal(r.data, full[r.row : r.row + 512, r.col : r.col + 512])


def test_later_windows_of_a_level_read_only_their_tiles(tmp_path):
    """The IFD and tile tables read for one window are kept for the next ones."""
    full = image(9, (1024, 1024), "uint16")
    url = write(tmp_path / "kept.tif", cog_bytes(overviews(full, 1), tile=(64, 64)))
    parts = get("geotiff").plan(RangeSource(url), n=16)
    sources = [RangeSource(url) for _ in parts]
    for part, source in zip(parts, sources, strict=True):
        r = part.read(source=source)
        np.testing.assert_array_equal(r.data, full[r.row : r.row + 256, r.col : r.col + 256])
    assert sources[0].requests >= 2  # the first window reads the header and tables, then tiles
    assert all(s.requests == 1 for s in sources[1:])  # the others, only their (merged) tiles


def test_planning_a_small_cog_takes_one_request(tmp_path):
    full = image(8, (400, 300, 3), "uint8")
    url = write(tmp_path / "small.tif", cog_bytes(overviews(full, 2), compression="zlib"))
    for level in (0, 1, 2):
        source = RangeSource(url)
        plan_level(source, level, n=4)
        assert (source.requests, source.bytes_read) == (1, min(HEAD_BYTES, source.size))
    assert levels(RangeSource(url)) == [(400, 300), (200, 150), (100, 75)]


@pytest.mark.parametrize(("order", "big"), [("<", False), (">", False), ("<", True), (">", True)])
def test_geotransform_and_crs_of_windows_and_levels(tmp_path, order, big):
    full = image(9, (300, 200), "float32")
    url = write(
        tmp_path / "geo.tif", cog_bytes(overviews(full, 1), order=order, big=big, nodata=b"-9999")
    )
    parts = partition(url, n=6, format="geotiff")
    first = parts[0].read()
    assert isinstance(first, Raster)
    assert (first.transform, first.crs, first.nodata) == (TRANSFORM, "EPSG:32633", -9999.0)
    for p in parts[1:]:
        x0, dx, _, y0, _, dy = p.read().transform
        assert (x0, y0) == (500000.0 + 10.0 * p["col"], 5000000.0 - 10.0 * p["row"])
        assert (dx, dy) == (10.0, -10.0)
    source = RangeSource(url)
    overview = plan_level(source, 1, n=4)
    assert source.requests == 1
    last = overview[-1]
    x0, dx, _, y0, _, dy = last.read().transform  # pixels twice as large
    assert (dx, dy) == (20.0, -20.0)
    assert (x0, y0) == (500000.0 + 20.0 * last["col"], 5000000.0 - 20.0 * last["row"])


def test_model_transformation_pixel_is_point_and_no_georeferencing(tmp_path):
    matrix = (0.5, 0.1, 0.0, 100.0, 0.2, -0.5, 0.0, 200.0, 0, 0, 0, 0, 0, 0, 0, 1)
    keys = (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 2, 2048, 0, 1, 4326)
    full = image(10, (64, 64), "uint8")
    url = str(tmp_path / "matrix.tif")
    tifffile.imwrite(url, full, tile=(16, 16), extratags=[
        (34264, "d", 16, matrix, False), (34735, "H", len(keys), keys, False)])  # fmt: skip
    r = partition(url, n=1, format="geotiff")[0].read()
    # PixelIsPoint: GDAL moves the origin half a pixel up and left
    assert r.transform == pytest.approx((100.0 - 0.3, 0.5, 0.1, 200.0 + 0.15, 0.2, -0.5))
    assert r.crs == "EPSG:4326"
    plain = str(tmp_path / "plain.tiff")
    tifffile.imwrite(plain, full, tile=(16, 16))
    r = partition(plain, n=1, format="geotiff")[0].read()
    assert (r.transform, r.crs, r.nodata) == (None, None, None)


def test_masks_are_skipped_and_sparse_tiles_read_as_nodata(tmp_path):
    full = image(11, (64, 64), "int16")
    url = write(
        tmp_path / "mask.tif",
        cog_bytes(overviews(full, 2), mask=True, sparse=True, nodata=b"-9999"),
    )
    assert levels(RangeSource(url)) == [(64, 64), (32, 32), (16, 16)]
    got = stitch(plan_level(RangeSource(url), 1, n=3), (32, 32), "int16")[0]
    np.testing.assert_array_equal(got, full[::2, ::2])
    got = stitch(partition(url, n=3, format="geotiff"), (64, 64), "int16")[0]
    assert (got[:32, :32] == -9999).all()  # the first tile was never written
    np.testing.assert_array_equal(got[32:], full[32:])


def test_records_yields_the_one_raster(tmp_path):
    url = write(tmp_path / "rec.tif", cog_bytes([image(1, (40, 40), "uint8")]))
    part = partition(url, n=1, format="geotiff")[0]
    (raster,) = list(get("geotiff").records(part))
    assert raster.data.shape == (40, 40) and raster.level == 0


# -- partitions travel --------------------------------------------------------


def _read_in_fresh_process(blob: bytes) -> tuple[int, int, float]:
    raster = pickle.loads(blob).read()
    return raster.row, raster.col, float(raster.data.astype("f8").sum())


def test_a_partition_pickles_small_and_reads_in_a_fresh_process(tmp_path):
    full = image(12, (200, 200, 3), "uint16")
    url = write(tmp_path / "spawn.tif", cog_bytes(overviews(full, 1), compression="zstd"))
    parts = partition(url, n=4, format="geotiff")
    blobs = [pickle.dumps(p) for p in parts]
    assert all(len(b) < 1024 for b in blobs)
    assert pickle.loads(blobs[1]) == parts[1]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        results = pool.map(_read_in_fresh_process, blobs)
    for p, (row, col, total) in zip(parts, results, strict=True):
        window = full[row : row + p["height"], col : col + p["width"]]
        assert (row, col) == (p["row"], p["col"])
        assert total == float(window.astype("f8").sum())


@pytest.mark.s3
def test_a_cog_on_s3_through_aif(s3_fs, monkeypatch):
    full = image(13, (512, 512), "uint16")
    data = cog_bytes(overviews(full, 2), tile=(32, 32), compression="zstd", predictor=True)
    s3_fs.pipe("s3only/scenes/cog.tif", data)
    url = "aif://s3only/scenes/cog.tif"
    source = RangeSource(url, s3_fs.config)
    parts = get("geotiff").plan(source, n=4)
    assert (len(parts), source.requests) == (4, 1)
    monkeypatch.setattr(geotiff, "MERGE_GAP", 0)  # a range per tile: concurrent cat_ranges
    reading = RangeSource(url, s3_fs.config)
    assert parts[3].read(source=reading).data.shape == (256, 256)
    assert reading.requests > 3
    got, covered = stitch(parts, full.shape, full.dtype, config=s3_fs.config)
    assert (covered == 1).all()
    np.testing.assert_array_equal(got, full)
    overview = plan_level(RangeSource(url, s3_fs.config), 2, n=2)
    got = stitch(overview, (128, 128), full.dtype, config=s3_fs.config)[0]
    np.testing.assert_array_equal(got, full[::4, ::4])


def test_a_changed_file_is_not_read_with_an_old_plan(tmp_path):
    path = tmp_path / "c.tif"
    url = write(path, cog_bytes([image(1, (40, 40), "uint8")]))
    part = partition(url, n=1, format="geotiff")[0]
    write(path, cog_bytes([image(2, (50, 40), "uint8")]))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


# -- bad input ----------------------------------------------------------------


def patched(tmp_path, name: str, data: bytes, at: int, fmt: str, value: int) -> str:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return write(tmp_path / name, bytes(out))


def good_cog(**kw) -> bytes:
    return cog_bytes(overviews(image(3, (64, 64), "uint8"), 2), tile=(16, 16), **kw)


def entry_position(data: bytes, ifd: int, tag: int) -> int:
    count = struct.unpack_from("<H", data, ifd)[0]
    for k in range(count):
        if struct.unpack_from("<H", data, ifd + 2 + 12 * k)[0] == tag:
            return ifd + 2 + 12 * k
    raise AssertionError(f"no tag {tag}")


@pytest.mark.timeout(60)
def test_first_ifd_offset_past_the_end(tmp_path):
    data = good_cog()
    url = patched(tmp_path, "far.tif", data, 4, "<I", len(data) + 100)
    with pytest.raises(FormatError, match=r"far\.tif: byte 4: IFD offset \d+ is past the end"):
        partition(url, n=2, format="geotiff")


@pytest.mark.timeout(60)
def test_truncated_ifd(tmp_path):
    url = write(tmp_path / "cut.tif", good_cog()[:40])
    with pytest.raises(FormatError, match=r"cut\.tif: byte 8: IFD of \d+ entries runs to byte"):
        partition(url, n=2, format="geotiff")


@pytest.mark.timeout(60)
def test_impossible_tag_count(tmp_path):
    data = good_cog()
    pos = entry_position(data, 8, 324)
    url = patched(tmp_path, "count.tif", data, pos + 4, "<I", 2**31)
    with pytest.raises(FormatError, match=rf"count\.tif: byte {pos}: TileOffsets \(324\) claims"):
        partition(url, n=2, format="geotiff")


@pytest.mark.timeout(60)
def test_too_few_tile_offsets(tmp_path):
    data = good_cog()
    pos = entry_position(data, 8, 325)
    url = patched(tmp_path, "few.tif", data, pos + 4, "<I", 3)
    with pytest.raises(FormatError, match=rf"few\.tif: byte {pos}: TileByteCounts .* needs 16"):
        partition(url, n=2, format="geotiff")


@pytest.mark.timeout(60)
def test_tile_past_the_end_and_undecodable_tile(tmp_path):
    data = good_cog(compression="zlib")
    pos = entry_position(data, 8, 324)
    array_at = struct.unpack_from("<I", data, pos + 8)[0]
    url = patched(tmp_path, "tile.tif", data, array_at + 4, "<I", len(data) - 2)
    with pytest.raises(FormatError, match=rf"tile\.tif: byte {array_at + 4}: segment 1 claims"):
        partition(url, n=2, format="geotiff")
    first_tile = struct.unpack_from("<I", data, array_at)[0]
    url = patched(tmp_path, "zlib.tif", data, first_tile, "<I", 0xDEADBEEF)
    part = partition(url, n=4, format="geotiff")[0]
    with pytest.raises(FormatError, match=rf"zlib\.tif: byte {first_tile}: segment 0 .* decoded"):
        part.read()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("width", [60_000_000, 436_207_646])
def test_a_corrupt_width_fails_before_allocating_the_window(tmp_path, width):
    url = tiff_file(tmp_path / "wide.tif", [image(3, (60, 30), "int16")], "stripped",
                    rowsperstrip=7, compression="lzw", extratags=[])  # fmt: skip
    data = Path(url).read_bytes()
    pos = entry_position(data, struct.unpack_from("<I", data, 4)[0], 256)
    type_ = struct.unpack_from("<H", data, pos + 2)[0]
    assert type_ == 4  # LONG: room for a huge width
    url = patched(tmp_path, "wide.tif", data, pos + 8, "<I", width)
    with pytest.raises(FormatError, match=r"wide\.tif: byte \d+: "):
        for part in partition(url, n=3, format="geotiff"):
            part.read()


@pytest.mark.timeout(60)
def test_a_loop_in_the_ifd_chain_is_an_error_not_a_hang(tmp_path):
    data = good_cog()
    first = 8
    second = first + 2 + 12 * struct.unpack_from("<H", data, first)[0] + 4
    third = second + 2 + 12 * struct.unpack_from("<H", data, second)[0] + 4
    next_of_third = third + 2 + 12 * struct.unpack_from("<H", data, third)[0]
    url = patched(tmp_path, "loop.tif", data, next_of_third, "<I", second)
    with pytest.raises(FormatError, match=rf"loop\.tif: byte {next_of_third}: .*loops back"):
        plan_level(RangeSource(url), 5)
    with pytest.raises(FormatError, match="loops back"):
        partition(url, n=2, format="geotiff")  # the whole chain is in the first read


@pytest.mark.timeout(60)
def test_not_a_tiff_is_refused_at_byte_0(tmp_path):
    url = write(tmp_path / "noise.tif", np.random.default_rng(0).bytes(10_000))
    with pytest.raises(FormatError, match=r"noise\.tif: byte 0: this is not a TIFF file"):
        partition(url, n=2, format="geotiff")
    with pytest.raises(FormatError, match=r"short\.tif: byte 0: .*too short"):
        plan_level(RangeSource(write(tmp_path / "short.tif", b"II*\x00\x08")))


@pytest.mark.timeout(60)
def test_a_format_forced_on_the_wrong_file(tmp_path):
    url = write(tmp_path / "reads.fq", b"@r1\nACGT\n+\nIIII\n" * 10)
    with pytest.raises(FormatError, match=r"reads\.fq: byte 0: this is not a TIFF file"):
        partition(url, n=2, format="geotiff")
    assert issubclass(FormatError, ValueError)


def test_a_level_that_is_not_there(tmp_path):
    url = write(tmp_path / "lv.tif", good_cog())
    with pytest.raises(ValueError, match=r"has 3 level\(s\) \(0\.\.2\), no level 3"):
        plan_level(RangeSource(url), 3)


def test_sniff_and_registry():
    plugin = aifdata.formats.get("geotiff")
    assert plugin.name == "geotiff" and plugin.extensions == (".tif", ".tiff")
    for head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        assert plugin.sniff(head + bytes(12), "x")
    assert not plugin.sniff(b"@r1\nACGT", "x.tif")
    assert plugin.description and "\n" not in plugin.description

"""GeoTIFF and Cloud-Optimized GeoTIFF: tile-aligned windows planned from the header alone.

Planning reads the first 64 KiB of the file and parses the TIFF structure
itself (``_tiff``: classic and BigTIFF, either byte order): the IFD chain,
then only the tag values it needs (tile or strip offsets and byte counts of
the chosen level, the GeoTIFF tags of the full-resolution image). A COG
keeps every IFD at the front, so its plan takes one request, or two when the
offset arrays run past the first 64 KiB (the missing bytes are read in one
merged request). Other files cost one more request per IFD that lies
elsewhere.

Levels are the full-resolution image (IFD 0) and its overviews: the
reduced-resolution IFDs that follow it in the main chain (GDAL, COG; masks
are skipped) or, when IFD 0 has SubIFDs, those (tifffile). A partition is a
rectangle of whole tiles (a band of whole strips, full width, for stripped
files) of one level; the rectangles cover the level exactly once, with smaller
ones at the right and bottom edges. Its spec holds the window, the byte offset
of the level's IFD and the window's georeferencing, so it pickles small;
:meth:`GeoTiffFormat.read` re-reads that one IFD, the slice of the offset
arrays the window needs, then the window's tiles (nearby ranges merged), and
decodes them with tifffile's codec tables (imagecodecs).

The result is a :class:`Raster`: pixels shaped ``(height, width)`` or
``(height, width, samples)``, the GDAL-order geotransform of the window
(``x0, dx, rx, y0, ry, dy``; PixelIsPoint files are shifted half a pixel, as
GDAL does) and the CRS as ``"EPSG:<code>"`` when the GeoKeys name one.
Broken structure (an IFD or tag values past the end of the file, a loop in
the IFD chain, too few tile offsets) raises :class:`~aifdata.FormatError`
with the file and the byte offset of the problem.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .._config import Config
from .._errors import FormatError
from ._base import (
    FormatPlugin,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)
from ._tiff import HEAD_BYTES as HEAD_BYTES
from ._tiff import (
    IFD_BYTES,
    INTEGER_TYPES,
    MAGICS,
    MAX_LEVELS,
    Entry,
    Ifd,
    Reader,
    Tag,
    not_a_tiff,
    tag_name,
)

if TYPE_CHECKING:
    import numpy as np

#: Byte ranges closer than this are read as one request.
MERGE_GAP = 256 * 2**10
#: Each level's IFD and segment tables, kept per file version for the next window.
_KEPT = KeptMetadata()
#: Larger tiles or strips are refused (a corrupt width would otherwise allocate without end).
MAX_SEGMENT_BYTES = 2**31
#: (SampleFormat, BitsPerSample) -> numpy dtype code (SampleFormat 4, "void", reads as 1).
_DTYPES = {
    (f, b): f"{k}{b // 8}" for f, k in ((1, "u"), (2, "i"), (3, "f")) for b in (8, 16, 32, 64)
}
_DTYPES[3, 16] = "f2"
del _DTYPES[3, 8]
_JPEG = frozenset({6, 7, 33007, 34892})
_FLOAT_PREDICTORS = frozenset({3, 34894, 34895})
#: GeoKeys: model type, raster type (area or point), geographic and projected CRS.
_MODEL_TYPE, _RASTER_TYPE, _GEOGRAPHIC, _PROJECTED = 1024, 1025, 2048, 3072

Transform = tuple[float, float, float, float, float, float]

#: Offsets and byte counts of tiles (True) or strips (False).
_SEGMENT_TAGS = {
    True: (Tag.TileOffsets, Tag.TileByteCounts),
    False: (Tag.StripOffsets, Tag.StripByteCounts),
}


#: What planning reads of IFD 0 and of the level's IFD.
_GEO_TAGS = (
    Tag.ModelPixelScale,
    Tag.ModelTiepoint,
    Tag.ModelTransformation,
    Tag.GeoKeyDirectory,
    Tag.GDALNoData,
)
_LAYOUT_TAGS = (Tag.BitsPerSample, Tag.SampleFormat, *_SEGMENT_TAGS[True], *_SEGMENT_TAGS[False])


@dataclass(frozen=True, eq=False, slots=True)
class Raster:
    """One window of a GeoTIFF level: its pixels and where they lie on the ground.

    ``transform`` is in GDAL order (``x0, dx, rx, y0, ry, dy``) for this
    window, None when the file has no affine georeferencing.
    """

    data: np.ndarray
    transform: Transform | None
    crs: str | None
    nodata: float | None
    row: int
    col: int
    level: int = 0


class GeoTiffFormat(FormatPlugin):
    """GeoTIFF, COG and plain TIFF (tiled or stripped)."""

    name = "geotiff"
    extensions = (".tif", ".tiff")
    description = "GeoTIFF / COG; tile-aligned windows of any level, planned from the header"

    def sniff(self, head: bytes, path: str) -> bool:
        return head[:4] in MAGICS

    def explain(self, head: bytes, url: str) -> str:
        return not_a_tiff(head, url)

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        level: int = 0,
    ) -> list[Partition]:
        return plan_level(source, level, n, target_bytes)

    def read(
        self,
        partition: Partition,
        source: RangeSource | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> Raster:
        source = open_source(partition, source, config)
        spec = partition.options
        ifd = spec["ifd"]
        kept = _KEPT.slot(source)
        if ifd in kept:  # this level's IFD and segment tables, from an earlier window
            reader = Reader.restore(source, kept[ifd], gap=MERGE_GAP)
            layout = _layout(reader, reader.ifd(ifd))
        else:
            reader = Reader.open(source, [(ifd, ifd + IFD_BYTES)], gap=MERGE_GAP)
            layout = _layout(reader, reader.ifd(ifd))
            kept[ifd] = reader.snapshot()
        data = _read_window(reader, layout, spec)
        where = (spec[k] for k in ("transform", "crs", "nodata", "row", "col", "level"))
        return Raster(data, *where)

    def records(self, partition: Partition, **options: Any) -> Iterator[Raster]:
        yield self.read(partition, **options)


def plan_level(
    source: RangeSource, level: int = 0, n: int | None = None, target_bytes: int | None = None
) -> list[Partition]:
    """Tile-aligned windows of ``level`` (0: full resolution, 1...: overviews).

    About ``n`` windows, or as many as hold about ``target_bytes`` of
    compressed tiles each (default 64 MiB).
    """
    if level < 0:
        raise ValueError(f"level must be 0 or more, not {level}")
    if source.size == 0:
        return []
    reader = Reader.open(source, gap=MERGE_GAP)
    first = reader.ifd(reader.first, reader.first_at)
    found = reader.levels(first, level)
    if level >= len(found):
        raise ValueError(
            f"{source.url}: has {len(found)} level(s) (0..{len(found) - 1}), no level {level}"
        )
    target = found[level]
    reader.fetch(_ranges(first, _GEO_TAGS) + _ranges(target, _LAYOUT_TAGS))
    layout = _layout(reader, target)
    if layout.width == 0 or layout.height == 0:
        return []
    counts = _check_segments(reader, layout)
    transform, crs, nodata = _georeference(reader, first)
    if transform is not None and level:
        width, height = _dimensions(reader, first)
        transform = _scaled(transform, width / layout.width, height / layout.height)
    total = partition_count(int(counts.sum()), n, target_bytes)
    fingerprint = source.fingerprint
    partitions = []
    for ordinal, (row, col, height, width) in enumerate(_windows(layout, total)):
        window = {"level": level, "row": row, "col": col, "height": height, "width": width}
        geo = {"transform": _offset(transform, row, col), "crs": crs, "nodata": nodata}
        spec = {**window, "ifd": target.offset, **geo}
        partitions.append(Partition.make(source.url, "geotiff", ordinal, fingerprint, **spec))
    return partitions


def pixel_type(source: RangeSource, level: int = 0) -> tuple[int, Any]:
    """Samples per pixel and the (native-order) numpy dtype of ``level``, from the header."""
    reader = Reader.open(source, gap=MERGE_GAP)
    found = reader.levels(reader.ifd(reader.first, reader.first_at), level)
    if level >= len(found):
        raise ValueError(f"{source.url}: has {len(found)} level(s), no level {level}")
    reader.fetch(_ranges(found[level], _LAYOUT_TAGS))
    layout = _layout(reader, found[level])
    return layout.samples, layout.dtype.newbyteorder("=")


def levels(source: RangeSource) -> list[tuple[int, int]]:
    """``(height, width)`` of each level: the full-resolution image, then its overviews."""
    reader = Reader.open(source, gap=MERGE_GAP)
    found = reader.levels(reader.ifd(reader.first, reader.first_at), MAX_LEVELS)
    return [_dimensions(reader, ifd)[::-1] for ifd in found]


# -- one level's pixel layout -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """What decoding a level needs, checked: sizes, sample type, codec, segment tags."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    tiled: bool
    samples: int
    dtype: Any
    planar: int
    compression: int
    predictor: int
    photometric: int
    extra_samples: bool
    offsets: Entry
    counts: Entry
    jpegtables: Entry | None

    @property
    def across(self) -> int:
        return -(-self.width // self.tile_width)

    @property
    def down(self) -> int:
        return -(-self.height // self.tile_height)

    @property
    def segments(self) -> int:
        """Tiles or strips, all planes."""
        return self.across * self.down * (self.samples if self.planar == 2 else 1)


def _ranges(ifd: Ifd, tags: tuple[int, ...]) -> list[tuple[int, int]]:
    """Where the values of these tags are."""
    return [(e.at, e.end) for t in tags if (e := ifd.entries.get(t)) is not None]


def _dimensions(reader: Reader, ifd: Ifd) -> tuple[int, int]:
    width, height = reader.scalar(ifd, Tag.ImageWidth), reader.scalar(ifd, Tag.ImageLength)
    if width < 0 or height < 0:
        raise reader.error(ifd.offset, f"image size {width}x{height} is negative")
    return width, height


def _layout(reader: Reader, ifd: Ifd) -> _Layout:
    """The checked layout of the image in ``ifd``."""
    import numpy as np

    width, height = _dimensions(reader, ifd)
    samples = reader.scalar(ifd, Tag.SamplesPerPixel, 1)
    bits = reader.scalar(ifd, Tag.BitsPerSample, 1)
    sample_format = reader.scalar(ifd, Tag.SampleFormat, 1)
    code = _DTYPES.get((1 if sample_format == 4 else sample_format, bits))
    if code is None:
        raise reader.error(
            ifd.offset, f"{bits}-bit samples of SampleFormat {sample_format} are not supported"
        )
    tiled = Tag.TileWidth in ifd.entries or Tag.TileOffsets in ifd.entries
    if tiled:
        tile = reader.scalar(ifd, Tag.TileWidth), reader.scalar(ifd, Tag.TileLength)
    else:  # a strip is a full-width tile
        tile = max(width, 1), min(reader.scalar(ifd, Tag.RowsPerStrip, 2**32 - 1), max(height, 1))
    if samples < 1 or min(tile) < 1:
        raise reader.error(ifd.offset, f"{samples} samples, {tile} tiles: must be positive")
    offsets, counts = (_required(reader, ifd, tag) for tag in _SEGMENT_TAGS[tiled])
    compression, predictor, photometric = (
        reader.scalar(ifd, t, 1) for t in (Tag.Compression, Tag.Predictor, Tag.Photometric)
    )
    layout = _Layout(
        width, height, *tile, tiled, samples, np.dtype(reader.order + code),
        reader.scalar(ifd, Tag.PlanarConfig, 1), compression, predictor, photometric,
        Tag.ExtraSamples in ifd.entries,
        offsets, counts, ifd.entries.get(Tag.JPEGTables),
    )  # fmt: skip
    _check_layout(reader, ifd, layout)
    return layout


def _required(reader: Reader, ifd: Ifd, tag: int) -> Entry:
    entry = ifd.entries.get(tag)
    if entry is None:
        raise reader.error(ifd.offset, f"the IFD has no {tag_name(tag)} tag")
    if entry.type not in INTEGER_TYPES:
        raise reader.error(entry.pos, f"{tag_name(tag)} has field type {entry.type}")
    return entry


def _check_layout(reader: Reader, ifd: Ifd, layout: _Layout) -> None:
    """Refuse what cannot be decoded, naming the tag."""
    from tifffile import TIFF

    def refuse(tag: int, message: str) -> FormatError:
        entry = ifd.entries.get(tag)
        return reader.error(entry.pos if entry else ifd.offset, message)

    if layout.planar not in (1, 2):
        raise refuse(Tag.PlanarConfig, f"PlanarConfig {layout.planar} is not 1 or 2")
    if layout.compression != 1 and layout.compression not in TIFF.DECOMPRESSORS:
        raise refuse(Tag.Compression, f"compression {layout.compression} is not supported")
    image_codec = layout.compression in _JPEG or layout.compression in TIFF.IMAGE_COMPRESSIONS
    if layout.predictor != 1 and not image_codec and layout.predictor not in TIFF.UNPREDICTORS:
        raise refuse(Tag.Predictor, f"predictor {layout.predictor} is not supported")
    if layout.photometric == 6 and layout.compression not in _JPEG:
        raise refuse(Tag.Photometric, "YCbCr pixels without JPEG compression are not supported")
    if reader.scalar(ifd, Tag.FillOrder, 1) != 1:
        raise refuse(Tag.FillOrder, "FillOrder 2 (lowest bit first) is not supported")
    segment = layout.tile_width * layout.tile_height * layout.dtype.itemsize
    if segment * (layout.samples if layout.planar == 1 else 1) > MAX_SEGMENT_BYTES:
        size = "TileWidth" if layout.tiled else "ImageWidth"
        raise refuse(Tag[size], f"{size} {layout.tile_width}: a tile or strip is over 2 GiB")
    expected = layout.segments
    for entry in (layout.offsets, layout.counts):
        if entry.count < expected:
            shape = "tiles" if layout.tiled else "rows per strip"
            raise reader.error(
                entry.pos,
                f"{tag_name(entry.tag)} has {entry.count} values; a {layout.width}x"
                f"{layout.height} image in {layout.tile_width}x{layout.tile_height} {shape}"
                f" needs {expected}",
            )


def _check_segments(reader: Reader, layout: _Layout) -> np.ndarray:
    """Every tile's bytes lie inside the file; returns the byte counts."""
    offsets = reader.ints(layout.offsets, 0, layout.segments)
    counts = reader.ints(layout.counts, 0, layout.segments)
    bad = (counts < 0) | ((counts > 0) & ((offsets < 0) | (offsets + counts > reader.size)))
    if bad.any():
        i = int(bad.argmax())
        raise reader.error(
            layout.offsets.span(i, i)[0],
            f"segment {i} claims bytes {offsets[i]}..{offsets[i] + counts[i]}, past the end"
            f" of the file ({reader.size} bytes)",
        )
    return counts


# -- georeferencing -----------------------------------------------------------


def _georeference(reader: Reader, ifd: Ifd) -> tuple[Transform | None, str | None, float | None]:
    """GDAL geotransform, ``EPSG:<code>`` and nodata of the image in ``ifd``."""
    keys = _geokeys(reader, ifd)
    matrix = reader.floats(ifd, Tag.ModelTransformation)
    scale = reader.floats(ifd, Tag.ModelPixelScale)
    tie = reader.floats(ifd, Tag.ModelTiepoint)
    transform: Transform | None = None
    if matrix is not None and len(matrix) >= 16:
        m = matrix
        transform = (m[3], m[0], m[1], m[7], m[4], m[5])
    elif scale is not None and tie is not None and len(scale) >= 2 and len(tie) >= 6:
        i, j, _, x, y, _ = tie[:6]
        transform = (x - i * scale[0], scale[0], 0.0, y + j * scale[1], 0.0, -scale[1])
    if transform is not None and keys.get(_RASTER_TYPE) == 2:  # PixelIsPoint, shifted like GDAL
        x0, dx, rx, y0, ry, dy = transform
        transform = (x0 - (dx + rx) / 2, dx, rx, y0 - (ry + dy) / 2, ry, dy)
    order = (_GEOGRAPHIC, _PROJECTED) if keys.get(_MODEL_TYPE) == 2 else (_PROJECTED, _GEOGRAPHIC)
    codes = [keys[k] for k in order if 0 < keys.get(k, 0) < 32767]
    return transform, f"EPSG:{codes[0]}" if codes else None, _nodata(reader, ifd)


def _geokeys(reader: Reader, ifd: Ifd) -> dict[int, int]:
    """The GeoKeys whose value is stored in the directory itself."""
    entry = ifd.entries.get(Tag.GeoKeyDirectory)
    if entry is None:
        return {}
    values = reader.ints(entry).tolist()
    declared = values[3] if len(values) >= 4 else -1
    if declared < 0 or len(values) < 4 + 4 * declared:
        raise reader.error(
            entry.pos, f"GeoKeyDirectory declares {declared} keys but holds {len(values)} values"
        )
    return {
        key: value
        for key, location, _, value in zip(*[iter(values[4 : 4 + 4 * declared])] * 4, strict=True)
        if location == 0
    }


def _nodata(reader: Reader, ifd: Ifd) -> float | None:
    entry = ifd.entries.get(Tag.GDALNoData)
    if entry is None:
        return None
    text = bytes(reader.get(entry.at, entry.end)).strip(b"\x00 ").decode("ascii", "replace")
    try:
        return float(text)
    except ValueError:
        raise reader.error(entry.at, f"GDAL_NODATA {text!r} is not a number") from None


def _scaled(transform: Transform, fx: float, fy: float) -> Transform:
    """The transform of an overview whose pixels are ``fx`` by ``fy`` full-resolution ones."""
    x0, dx, rx, y0, ry, dy = transform
    return (x0, dx * fx, rx * fy, y0, ry * fx, dy * fy)


def _offset(transform: Transform | None, row: int, col: int) -> Transform | None:
    """The transform of a window whose top-left pixel is ``(row, col)``."""
    if transform is None:
        return None
    x0, dx, rx, y0, ry, dy = transform
    return (x0 + col * dx + row * rx, dx, rx, y0 + col * ry + row * dy, ry, dy)


# -- windows ------------------------------------------------------------------


def _windows(layout: _Layout, count: int) -> Iterator[tuple[int, int, int, int]]:
    """``(row, col, height, width)`` of about ``count`` tile-aligned windows, row-major."""
    bh, bw = block_shape(layout.down, layout.across, count, layout.tile_height, layout.tile_width)
    step_y, step_x = bh * layout.tile_height, bw * layout.tile_width
    for row in range(0, layout.height, step_y):
        for col in range(0, layout.width, step_x):
            yield row, col, min(step_y, layout.height - row), min(step_x, layout.width - col)


def block_shape(
    down: int, across: int, count: int, tile_height: int = 1, tile_width: int = 1
) -> tuple[int, int]:
    """Tiles per window ``(rows, cols)`` making closest to ``count`` windows, squarest first."""
    count = max(1, min(count, down * across))
    best: tuple[tuple[int, float], int, int] | None = None
    for rows in range(1, min(down, count) + 1):
        bh = -(-down // rows)
        made_rows = -(-down // bh)
        for cols in {max(1, count // made_rows), -(-count // made_rows)}:
            bw = -(-across // min(cols, across))
            made = made_rows * -(-across // bw)
            key = (abs(made - count), abs(math.log(bh * tile_height / (bw * tile_width))))
            if best is None or key < best[0]:
                best = (key, bh, bw)
    assert best is not None
    return best[1], best[2]


# -- reading a window ---------------------------------------------------------


class _Segment(NamedTuple):
    """One tile or strip of a window: its plane, top-left pixel, rows, bytes."""

    plane: int
    y: int
    x: int
    rows: int
    offset: int
    nbytes: int
    number: int


def _read_window(reader: Reader, layout: _Layout, spec: dict[str, Any]) -> np.ndarray:
    """The pixels of the window in ``spec`` (any rectangle inside the level)."""
    import numpy as np

    row, col, height, width = (spec[k] for k in ("row", "col", "height", "width"))
    if row < 0 or col < 0 or row + height > layout.height or col + width > layout.width:
        raise ValueError(
            f"{reader.url}: window {height}x{width} at ({row}, {col}) is outside the"
            f" {layout.height}x{layout.width} image"
        )
    segments, jpegtables = _segments(reader, layout, row, col, row + height, col + width)
    reader.fetch([(s.offset, s.offset + s.nbytes) for s in segments if s.nbytes])
    shape, dtype = (height, width, layout.samples), layout.dtype.newbyteorder("=")
    out = None  # made once a tile decodes: a corrupt size fails there, before a huge array
    for s in segments:
        if not s.nbytes:
            continue  # a sparse tile: left as nodata (or 0)
        tile = _decode(reader, layout, s, jpegtables)
        if out is None:
            out = np.full(shape, _fill(layout, spec["nodata"]), dtype)
        ys, ye = max(row, s.y), min(row + height, s.y + tile.shape[0])
        xs, xe = max(col, s.x), min(col + width, s.x + tile.shape[1])
        if ys < ye and xs < xe:
            bands = slice(s.plane, s.plane + tile.shape[2])
            out[ys - row : ye - row, xs - col : xe - col, bands] = tile[
                ys - s.y : ye - s.y, xs - s.x : xe - s.x
            ]
    if out is None:
        out = np.full(shape, _fill(layout, spec["nodata"]), dtype)
    return out[:, :, 0] if layout.samples == 1 else out


def _segments(
    reader: Reader, layout: _Layout, top: int, left: int, bottom: int, right: int
) -> tuple[list[_Segment], bytes | None]:
    """The tiles (or strips) under a window, and the JPEG tables."""
    th, tw, across = layout.tile_height, layout.tile_width, layout.across
    r0, r1, c0, c1 = top // th, -(-bottom // th), left // tw, -(-right // tw)
    per_plane = across * layout.down
    planes = range(layout.samples if layout.planar == 2 else 1)
    spans = [(p * per_plane + r0 * across + c0, p * per_plane + (r1 - 1) * across + c1)
             for p in planes]  # fmt: skip
    tables = layout.jpegtables
    wanted = [layout.offsets.span(*s) for s in spans] + [layout.counts.span(*s) for s in spans]
    reader.fetch(wanted + ([(tables.at, tables.end)] if tables else []))
    segments = []
    for p, (lo, hi) in zip(planes, spans, strict=True):
        offsets, counts = reader.ints(layout.offsets, lo, hi), reader.ints(layout.counts, lo, hi)
        for r, c in itertools.product(range(r0, r1), range(c0, c1)):
            i = (r - r0) * across + (c - c0)
            rows = th if layout.tiled else min(th, layout.height - r * th)
            segments.append(
                _Segment(p, r * th, c * tw, rows, int(offsets[i]), int(counts[i]), lo + i)
            )
    return segments, bytes(reader.get(tables.at, tables.end)) if tables else None


def _fill(layout: _Layout, nodata: float | None) -> Any:
    """What sparse (never written) tiles hold: nodata when the sample type can hold it, else 0."""
    import numpy as np

    if nodata is None:
        return 0
    if layout.dtype.kind == "f":
        return nodata
    info = np.iinfo(layout.dtype)
    ok = math.isfinite(nodata) and nodata.is_integer() and info.min <= nodata <= info.max
    return int(nodata) if ok else 0


def _decode(
    reader: Reader, layout: _Layout, segment: _Segment, jpegtables: bytes | None
) -> np.ndarray:
    """One tile or strip decoded to ``(rows, width, samples)`` (edge tiles may be smaller)."""
    data = reader.get(segment.offset, segment.offset + segment.nbytes)
    shape = (segment.rows, layout.tile_width, layout.samples if layout.planar == 1 else 1)
    where = f"segment {segment.number} ({segment.nbytes} bytes)"
    try:
        array = _decompress(layout, data, shape, jpegtables)
    except Exception as exc:  # the codecs raise their own types; all mean bad tile bytes
        raise reader.error(segment.offset, f"{where} cannot be decoded: {exc}") from exc
    if array.size == math.prod(shape):
        return array.reshape(shape)
    if array.ndim >= 2 and array.shape[0] <= shape[0] and array.shape[1] <= shape[1]:
        partial = array.reshape(array.shape[0], array.shape[1], -1)
        if partial.shape[2] == shape[2]:
            return partial  # some codecs store only the part of an edge tile inside the image
    raise reader.error(segment.offset, f"{where} decodes to {array.shape}, expected {shape}")


def _decompress(
    layout: _Layout, data: memoryview, shape: tuple[int, int, int], jpegtables: bytes | None
) -> np.ndarray:
    import numpy as np
    from tifffile import TIFF

    compression = layout.compression
    if compression in _JPEG:
        import imagecodecs

        colorspace, outcolorspace = _jpeg_colorspaces(layout, bytes(data[:16]))
        result: np.ndarray = imagecodecs.jpeg_decode(
            bytes(data),
            tables=jpegtables,
            colorspace=colorspace,
            outcolorspace=outcolorspace,
            shape=shape[:2],
        )
        return result
    if compression in TIFF.IMAGE_COMPRESSIONS:
        result = TIFF.DECOMPRESSORS[compression](data)
        return result
    size = shape[0] * shape[1] * shape[2]
    raw: Any = data
    if compression != 1:
        raw = TIFF.DECOMPRESSORS[compression](data, out=size * layout.dtype.itemsize)
    # the floating-point predictor reorders bytes itself: it wants the native type
    floating = layout.predictor in _FLOAT_PREDICTORS
    dtype = np.dtype(layout.dtype.char) if floating else layout.dtype
    array = np.frombuffer(raw, dtype, count=min(size, len(raw) // dtype.itemsize))
    if array.size < size:
        raise ValueError(f"{len(raw)} bytes after decompression, expected {size * dtype.itemsize}")
    array = array.reshape(shape)
    if layout.predictor != 1:
        array = TIFF.UNPREDICTORS[layout.predictor](array.astype(dtype.newbyteorder("=")), axis=-2)
    return array


def _jpeg_colorspaces(layout: _Layout, start: bytes) -> tuple[int | None, int | None]:
    """JPEG and output colour spaces for imagecodecs (as tifffile chooses them)."""
    if layout.planar == 2:
        return None, 1
    if layout.extra_samples:
        return None, None
    if layout.photometric == 6:  # YCbCr -> RGB
        return None, 2
    if layout.photometric == 2:  # RGB stored as RGB unless the stream is JFIF
        return (None if start[6:10] == b"JFIF" else 2), 2
    return None, None

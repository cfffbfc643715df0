"""GeoTIFF and Cloud-Optimized GeoTIFF: tile-aligned windows planned from the header alone.

Planning reads the first 64 KiB of the file and parses the TIFF structure
itself (classic and BigTIFF, either byte order): the IFD chain, then only the
tag values it needs (tile or strip offsets and byte counts of the chosen
level, the GeoTIFF tags of the full-resolution image). A COG keeps every IFD
at the front, so its plan takes one request, or two when the offset arrays
run past the first 64 KiB (the missing bytes are read in one merged request).
Other files cost one more request per IFD that lies elsewhere.

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

import bisect
import itertools
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import FormatError
from ._base import FormatPlugin, Partition, RangeSource, open_source, partition_count

if TYPE_CHECKING:
    import numpy as np

#: Bytes read from the start of the file to plan (a COG's IFDs all lie in them).
HEAD_BYTES = 64 * 2**10
#: Bytes read at an IFD that is not in hand (its entries and small values follow it).
IFD_BYTES = 16 * 2**10
#: Byte ranges closer than this are read as one request.
MERGE_GAP = 256 * 2**10
#: Larger tiles or strips are refused (a corrupt width would otherwise allocate without end).
MAX_SEGMENT_BYTES = 2**31
#: Overviews beyond this many are ignored (a bound on walking a hostile IFD chain).
MAX_LEVELS = 64

_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: TIFF field types 1..13 and 16..18 as numpy dtype codes (5 and 10, rationals, are pairs).
_CODES = "u1 S1 u2 u4 u4 i1 u1 i2 i4 i4 f4 f8 u4 u8 i8 u8"
#: TIFF field type -> (numpy dtype code, bytes per value).
_TYPES = {
    t: (code, int(code[1]) * (2 if t in (5, 10) else 1))
    for t, code in zip([*range(1, 14), 16, 17, 18], _CODES.split(), strict=True)
}
_INTEGER_TYPES = frozenset({1, 3, 4, 6, 8, 9, 13, 16, 17, 18})
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


class Tag(IntEnum):
    """The TIFF and GeoTIFF tags this plug-in reads."""

    NewSubfileType = 254
    ImageWidth = 256
    ImageLength = 257
    BitsPerSample = 258
    Compression = 259
    Photometric = 262
    FillOrder = 266
    StripOffsets = 273
    SamplesPerPixel = 277
    RowsPerStrip = 278
    StripByteCounts = 279
    PlanarConfig = 284
    Predictor = 317
    TileWidth = 322
    TileLength = 323
    TileOffsets = 324
    TileByteCounts = 325
    SubIFDs = 330
    ExtraSamples = 338
    SampleFormat = 339
    JPEGTables = 347
    ModelPixelScale = 33550
    ModelTiepoint = 33922
    ModelTransformation = 34264
    GeoKeyDirectory = 34735
    GDALNoData = 42113


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


def _tag_name(code: int) -> str:
    try:
        return f"{Tag(code).name} ({code})"
    except ValueError:
        return f"tag {code}"


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
        return head[:4] in _MAGICS

    def explain(self, head: bytes, url: str) -> str:
        return (
            f"{url}: byte 0: this is not a TIFF file: expected II*\\0 or MM\\0* (BigTIFF:"
            f" II+\\0 or MM\\0+), found {head[:8]!r}"
        )

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
        config: Any = None,
        **options: Any,
    ) -> Raster:
        source = open_source(partition, source, config)
        spec = partition.options
        ifd = spec["ifd"]
        reader = _Reader.open(source, [(ifd, ifd + IFD_BYTES)])
        layout = _layout(reader, reader.ifd(ifd))
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
    reader = _Reader.open(source)
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


def levels(source: RangeSource) -> list[tuple[int, int]]:
    """``(height, width)`` of each level: the full-resolution image, then its overviews."""
    reader = _Reader.open(source)
    found = reader.levels(reader.ifd(reader.first, reader.first_at), MAX_LEVELS)
    return [_dimensions(reader, ifd)[::-1] for ifd in found]


# -- the TIFF structure, from range reads --------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """One IFD entry: where its values are (``at``) and where the entry is (``pos``)."""

    tag: int
    type: int
    count: int
    at: int
    pos: int

    @property
    def itemsize(self) -> int:
        return _TYPES[self.type][1]

    @property
    def end(self) -> int:
        return self.at + self.count * self.itemsize

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """Byte range of values ``lo..hi``."""
        return self.at + lo * self.itemsize, self.at + hi * self.itemsize


@dataclass(frozen=True, slots=True)
class _Ifd:
    offset: int
    entries: dict[int, _Entry]
    next: int
    next_at: int


class _Reader:
    """One TIFF's bytes as they come in (counted by the source), and its structure."""

    def __init__(self, source: RangeSource) -> None:
        self.source = source
        self.url = source.url
        self.size = source.size
        self._starts: list[int] = []
        self._chunks: list[bytes] = []
        self.order, self.big = "<", False
        self.first = self.first_at = self.header_size = 0

    @classmethod
    def open(cls, source: RangeSource, also: list[tuple[int, int]] | None = None) -> _Reader:
        """Parse the header: the head when planning, or ``also`` with the first 16 bytes."""
        reader = cls(source)
        if also:
            reader.fetch([(0, 16), *also])
        else:
            reader._add(0, source.head(HEAD_BYTES))
        reader._header()
        return reader

    def error(self, pos: int, message: str) -> FormatError:
        return FormatError(f"{self.url}: byte {pos}: {message}")

    # bytes in hand

    def _add(self, start: int, data: bytes) -> None:
        i = bisect.bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._chunks.insert(i, data)

    def _find(self, start: int, end: int) -> memoryview | None:
        i = bisect.bisect_right(self._starts, start)
        while i > 0:
            i -= 1
            chunk_start, chunk = self._starts[i], self._chunks[i]
            if end <= chunk_start + len(chunk):
                return memoryview(chunk)[start - chunk_start : end - chunk_start]
        return None

    def fetch(self, ranges: list[tuple[int, int]]) -> None:
        """Read the ranges not in hand, nearby ones merged, in as few requests as that makes."""
        missing = sorted(
            (start, min(end, self.size))
            for start, end in ranges
            if start < min(end, self.size) and self._find(start, min(end, self.size)) is None
        )
        merged: list[list[int]] = []
        for start, end in missing:
            if merged and start - merged[-1][1] <= MERGE_GAP:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for (start, _), data in zip(merged, _read_ranges(self.source, merged), strict=True):
            self._add(start, data)

    def get(self, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)``, read now if not in hand."""
        found = self._find(start, end)
        if found is None:
            self.fetch([(start, end)])
            found = self._find(start, end)
        if found is None or len(found) < end - start:
            raise self.error(start, f"{end - start} bytes are past the end of the file")
        return found

    # structure

    def _header(self) -> None:
        head = bytes(self.get(0, min(16, self.size)))
        if head[:4] not in _MAGICS:
            raise FormatError(GeoTiffFormat().explain(head, self.url))
        self.order = "<" if head[:2] == b"II" else ">"
        self.big = head[2:4] in (b"+\x00", b"\x00+")
        if self.big:
            if len(head) < 16:
                raise self.error(
                    0, f"the file is too short for a BigTIFF header ({self.size} bytes)"
                )
            offset_size, reserved = struct.unpack(self.order + "HH", head[4:8])
            if (offset_size, reserved) != (8, 0):
                raise self.error(4, f"BigTIFF offset size must be 8 (then 0), found {offset_size}")
            self.first_at, self.header_size = 8, 16
        else:
            if len(head) < 8:
                raise self.error(0, f"the file is too short for a TIFF header ({self.size} bytes)")
            self.first_at, self.header_size = 4, 8
        self.first = self._pointer(head, self.first_at)

    def _pointer(self, data: bytes | memoryview, at: int) -> int:
        value: int = struct.unpack_from(self.order + ("Q" if self.big else "I"), data, at)[0]
        return value

    def ifd(self, offset: int, pointer: int | None = None) -> _Ifd:
        """The IFD at ``offset`` (``pointer``: where that offset was read, for errors)."""
        where = offset if pointer is None else pointer
        if offset < self.header_size:
            raise self.error(where, f"IFD offset {offset} points into the file header")
        count_size, entry_size, pointer_size = (8, 20, 8) if self.big else (2, 12, 4)
        if offset + count_size > self.size:
            raise self.error(
                where, f"IFD offset {offset} is past the end of the file ({self.size} bytes)"
            )
        if self._find(offset, offset + count_size) is None:
            self.fetch([(offset, offset + IFD_BYTES)])
        count: int = struct.unpack(
            self.order + ("Q" if self.big else "H"), self.get(offset, offset + count_size)
        )[0]
        end = offset + count_size + count * entry_size + pointer_size
        if count == 0 or end > self.size:
            raise self.error(
                offset,
                f"IFD of {count} entries runs to byte {end}, past the end of the file"
                f" ({self.size} bytes)"
                if count
                else "IFD has no entries",
            )
        raw = self.get(offset, end)
        entries: dict[int, _Entry] = {}
        for k in range(count):
            pos = offset + count_size + k * entry_size
            entry = self._entry(raw, pos - offset, pos)
            if entry is not None:
                entries.setdefault(entry.tag, entry)
        next_at = end - pointer_size
        return _Ifd(offset, entries, self._pointer(raw, next_at - offset), next_at)

    def _entry(self, raw: memoryview, i: int, pos: int) -> _Entry | None:
        fmt = self.order + ("HHQ" if self.big else "HHI")
        tag, type_, count = struct.unpack_from(fmt, raw, i)
        if type_ not in _TYPES:
            return None  # unknown field types are skipped, as the TIFF spec asks
        field = i + (12 if self.big else 8)
        nbytes = count * _TYPES[type_][1]
        at = pos + field - i if nbytes <= (8 if self.big else 4) else self._pointer(raw, field)
        if at + nbytes > self.size:
            raise self.error(
                pos,
                f"{_tag_name(tag)} claims {count} values ({nbytes} bytes) at byte {at},"
                f" past the end of the file ({self.size} bytes)",
            )
        return _Entry(tag, type_, count, at, pos)

    def levels(self, first: _Ifd, want: int) -> list[_Ifd]:
        """IFD 0 and its overviews, walked until level ``want`` is found (and on while free)."""
        found, seen = [first], {first.offset}
        subifds = first.entries.get(Tag.SubIFDs)
        if subifds is not None:
            self.fetch([(subifds.at, subifds.end)])
            pointers = [
                (int(o), subifds.at + k * subifds.itemsize)
                for k, o in enumerate(self.ints(subifds))
            ]
        else:
            pointers = []
        nxt, nxt_at = first.next, first.next_at
        while len(found) < MAX_LEVELS:
            if pointers:
                nxt, nxt_at = pointers.pop(0)
            elif subifds is not None or nxt == 0:
                break
            if len(found) > want and self._find(nxt, nxt + 2) is None:
                break  # enough levels, and walking on would cost a request
            if nxt in seen:
                raise self.error(nxt_at, f"the IFD chain loops back to the IFD at byte {nxt}")
            seen.add(nxt)
            ifd = self.ifd(nxt, nxt_at)
            kind = self.scalar(ifd, Tag.NewSubfileType, 0)
            if not kind & 4:  # masks are skipped
                if not kind & 1 and subifds is None:
                    break  # another image, not an overview of this one
                found.append(ifd)
            nxt, nxt_at = ifd.next, ifd.next_at
        return found

    # tag values

    def ints(self, entry: _Entry, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Values ``lo..hi`` of an integer tag, as int64."""
        import numpy as np

        if entry.type not in _INTEGER_TYPES:
            raise self.error(
                entry.pos, f"{_tag_name(entry.tag)} has field type {entry.type}, not an integer"
            )
        hi = entry.count if hi is None else hi
        dtype = np.dtype(self.order + _TYPES[entry.type][0])
        return np.frombuffer(self.get(*entry.span(lo, hi)), dtype).astype(np.int64)

    def scalar(self, ifd: _Ifd, tag: int, default: int | None = None) -> int:
        """The (single, or first and equal to the others) value of an integer tag."""
        entry = ifd.entries.get(tag)
        if entry is None:
            if default is None:
                raise self.error(ifd.offset, f"the IFD has no {_tag_name(tag)} tag")
            return default
        values = self.ints(entry)
        if len(values) == 0:
            raise self.error(entry.pos, f"{_tag_name(tag)} has no value")
        if (values != values[0]).any():
            raise self.error(
                entry.pos,
                f"{_tag_name(tag)} differs between samples ({values.tolist()}): not supported",
            )
        return int(values[0])

    def floats(self, ifd: _Ifd, tag: int) -> list[float] | None:
        """The values of a numeric tag (None if absent)."""
        import numpy as np

        entry = ifd.entries.get(tag)
        if entry is None:
            return None
        if entry.type not in (11, 12):
            return [float(v) for v in self.ints(entry)]
        dtype = self.order + _TYPES[entry.type][0]
        return [float(v) for v in np.frombuffer(self.get(entry.at, entry.end), dtype)]


def _read_ranges(source: RangeSource, ranges: list[list[int]]) -> list[bytes]:
    """The bytes of each range: one request each, concurrent where the filesystem can."""
    if len(ranges) <= 1:
        return [source.read(start, end) for start, end in ranges]
    blobs = source.fs.cat_ranges(
        [source.path] * len(ranges), [r[0] for r in ranges], [r[1] for r in ranges]
    )
    for blob in blobs:
        if isinstance(blob, Exception):
            raise blob
    source.requests += len(ranges)
    source.bytes_read += sum(len(blob) for blob in blobs)
    return list(blobs)


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
    offsets: _Entry
    counts: _Entry
    jpegtables: _Entry | None

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


def _ranges(ifd: _Ifd, tags: tuple[int, ...]) -> list[tuple[int, int]]:
    """Where the values of these tags are."""
    return [(e.at, e.end) for t in tags if (e := ifd.entries.get(t)) is not None]


def _dimensions(reader: _Reader, ifd: _Ifd) -> tuple[int, int]:
    width, height = reader.scalar(ifd, Tag.ImageWidth), reader.scalar(ifd, Tag.ImageLength)
    if width < 0 or height < 0:
        raise reader.error(ifd.offset, f"image size {width}x{height} is negative")
    return width, height


def _layout(reader: _Reader, ifd: _Ifd) -> _Layout:
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


def _required(reader: _Reader, ifd: _Ifd, tag: int) -> _Entry:
    entry = ifd.entries.get(tag)
    if entry is None:
        raise reader.error(ifd.offset, f"the IFD has no {_tag_name(tag)} tag")
    if entry.type not in _INTEGER_TYPES:
        raise reader.error(entry.pos, f"{_tag_name(tag)} has field type {entry.type}")
    return entry


def _check_layout(reader: _Reader, ifd: _Ifd, layout: _Layout) -> None:
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
                f"{_tag_name(entry.tag)} has {entry.count} values; a {layout.width}x"
                f"{layout.height} image in {layout.tile_width}x{layout.tile_height} {shape}"
                f" needs {expected}",
            )


def _check_segments(reader: _Reader, layout: _Layout) -> np.ndarray:
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


def _georeference(reader: _Reader, ifd: _Ifd) -> tuple[Transform | None, str | None, float | None]:
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


def _geokeys(reader: _Reader, ifd: _Ifd) -> dict[int, int]:
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


def _nodata(reader: _Reader, ifd: _Ifd) -> float | None:
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


def _read_window(reader: _Reader, layout: _Layout, spec: dict[str, Any]) -> np.ndarray:
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
    reader: _Reader, layout: _Layout, top: int, left: int, bottom: int, right: int
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
    reader: _Reader, layout: _Layout, segment: _Segment, jpegtables: bytes | None
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

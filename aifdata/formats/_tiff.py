"""The structure of a TIFF file (classic or BigTIFF, either byte order), from counted range reads.

:class:`Reader` parses the 8- or 16-byte header, then each IFD on demand: its
entries (tag, field type, value count, and where the values lie, inline or at
an offset) and the pointer to the next IFD. Tag values are read only when
asked for, a slice at a time if need be (:meth:`Reader.ints`), so a plan
touches no more of a large offset array than it uses. :meth:`Reader.levels`
walks IFD 0's overviews (the main chain, or its SubIFDs).

Every byte comes from the file's :class:`~aifdata.formats.RangeSource`: the
head through :meth:`~aifdata.formats.RangeSource.head`, other ranges through
:meth:`~aifdata.formats.RangeSource.read` (several at once through the
filesystem's ``cat_ranges``, counted the same way), so the source's
``requests`` and ``bytes_read`` are the whole cost. Bytes in hand are kept and
nearby missing ranges merged into one request.

Broken structure (a bad magic number or BigTIFF header, an IFD or tag values
past the end of the file, a loop in the IFD chain, a tag of the wrong type)
raises :class:`~aifdata.FormatError` whose message starts
``<url>: byte <offset>:``, the offset being that of the header field, IFD,
entry or value at fault.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from .._errors import FormatError
from ._base import RangeSource
from ._ranges import coalesce

if TYPE_CHECKING:
    import numpy as np

#: Bytes read from the start of the file to plan (a COG's IFDs all lie in them).
HEAD_BYTES = 64 * 2**10
#: Bytes read at an IFD that is not in hand (its entries and small values follow it).
IFD_BYTES = 16 * 2**10
#: Overviews beyond this many are ignored (a bound on walking a hostile IFD chain).
MAX_LEVELS = 64

#: The first four bytes of a TIFF: classic, then BigTIFF; little-endian first.
MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: TIFF field types 1..13 and 16..18 as numpy dtype codes (5 and 10, rationals, are pairs).
_CODES = "u1 S1 u2 u4 u4 i1 u1 i2 i4 i4 f4 f8 u4 u8 i8 u8"
#: TIFF field type -> (numpy dtype code, bytes per value).
_TYPES = {
    t: (code, int(code[1]) * (2 if t in (5, 10) else 1))
    for t, code in zip([*range(1, 14), 16, 17, 18], _CODES.split(), strict=True)
}
INTEGER_TYPES = frozenset({1, 3, 4, 6, 8, 9, 13, 16, 17, 18})


class Tag(IntEnum):
    """The TIFF and GeoTIFF tags the GeoTIFF plug-in reads."""

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


def tag_name(code: int) -> str:
    try:
        return f"{Tag(code).name} ({code})"
    except ValueError:
        return f"tag {code}"


@dataclass(frozen=True, slots=True)
class Entry:
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
class Ifd:
    offset: int
    entries: dict[int, Entry]
    next: int
    next_at: int


class Reader:
    """One TIFF's bytes as they come in (counted by the source), and its structure.

    Missing ranges closer than ``gap`` bytes are read as one request.
    """

    def __init__(self, source: RangeSource, gap: int) -> None:
        self.source = source
        self.gap = gap
        self.url = source.url
        self.size = source.size
        self._starts: list[int] = []
        self._chunks: list[bytes] = []
        self.order, self.big = "<", False
        self.first = self.first_at = self.header_size = 0

    @classmethod
    def open(
        cls, source: RangeSource, also: list[tuple[int, int]] | None = None, *, gap: int
    ) -> Reader:
        """Parse the header: the head when planning, or ``also`` with the first 16 bytes."""
        reader = cls(source, gap)
        if also:
            reader.fetch([(0, 16), *also])
        else:
            reader._add(0, source.head(HEAD_BYTES))
        reader._header()
        return reader

    def snapshot(self) -> tuple[tuple[int, bytes], ...]:
        """The bytes in hand, to seed a later reader of the same file (:meth:`restore`)."""
        return tuple(zip(self._starts, self._chunks, strict=True))

    @classmethod
    def restore(
        cls, source: RangeSource, snapshot: tuple[tuple[int, bytes], ...], *, gap: int
    ) -> Reader:
        """A reader holding the bytes of ``snapshot`` (which includes the header)."""
        reader = cls(source, gap)
        for start, data in snapshot:
            reader._add(start, data)
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
        merged = coalesce(missing, self.gap)
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
        if head[:4] not in MAGICS:
            raise FormatError(not_a_tiff(head, self.url))
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

    def ifd(self, offset: int, pointer: int | None = None) -> Ifd:
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
        entries: dict[int, Entry] = {}
        for k in range(count):
            pos = offset + count_size + k * entry_size
            entry = self._entry(raw, pos - offset, pos)
            if entry is not None:
                entries.setdefault(entry.tag, entry)
        next_at = end - pointer_size
        return Ifd(offset, entries, self._pointer(raw, next_at - offset), next_at)

    def _entry(self, raw: memoryview, i: int, pos: int) -> Entry | None:
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
                f"{tag_name(tag)} claims {count} values ({nbytes} bytes) at byte {at},"
                f" past the end of the file ({self.size} bytes)",
            )
        return Entry(tag, type_, count, at, pos)

    def levels(self, first: Ifd, want: int) -> list[Ifd]:
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

    def ints(self, entry: Entry, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Values ``lo..hi`` of an integer tag, as int64."""
        import numpy as np

        if entry.type not in INTEGER_TYPES:
            raise self.error(
                entry.pos, f"{tag_name(entry.tag)} has field type {entry.type}, not an integer"
            )
        hi = entry.count if hi is None else hi
        dtype = np.dtype(self.order + _TYPES[entry.type][0])
        return np.frombuffer(self.get(*entry.span(lo, hi)), dtype).astype(np.int64)

    def scalar(self, ifd: Ifd, tag: int, default: int | None = None) -> int:
        """The (single, or first and equal to the others) value of an integer tag."""
        entry = ifd.entries.get(tag)
        if entry is None:
            if default is None:
                raise self.error(ifd.offset, f"the IFD has no {tag_name(tag)} tag")
            return default
        values = self.ints(entry)
        if len(values) == 0:
            raise self.error(entry.pos, f"{tag_name(tag)} has no value")
        if (values != values[0]).any():
            raise self.error(
                entry.pos,
                f"{tag_name(tag)} differs between samples ({values.tolist()}): not supported",
            )
        return int(values[0])

    def floats(self, ifd: Ifd, tag: int) -> list[float] | None:
        """The values of a numeric tag (None if absent)."""
        import numpy as np

        entry = ifd.entries.get(tag)
        if entry is None:
            return None
        if entry.type not in (11, 12):
            return [float(v) for v in self.ints(entry)]
        dtype = self.order + _TYPES[entry.type][0]
        return [float(v) for v in np.frombuffer(self.get(entry.at, entry.end), dtype)]


def _read_ranges(source: RangeSource, ranges: list[tuple[int, int]]) -> list[bytes]:
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


def not_a_tiff(head: bytes, url: str) -> str:
    """Why a file starting with ``head`` is not a TIFF, for an error message."""
    return (
        f"{url}: byte 0: this is not a TIFF file: expected II*\\0 or MM\\0* (BigTIFF:"
        f" II+\\0 or MM\\0+), found {head[:8]!r}"
    )

"""The BAM index (``.bai``): its bins, chunks and linear index, parsed and checked.

A ``.bai`` (SAM specification, section 5.2) holds, for each reference, a
binning index (bin number -> chunks of virtual offsets) and a linear index
(the smallest virtual offset of a record overlapping each 16 kbp window).
The plug-in uses it to find the records of a region and to find record starts
to split at without guessing; nothing in it is trusted further than it can be
checked (see :func:`parse` and the plug-in's ``plan``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._errors import FormatError

MAGIC = b"BAI\x01"
#: The pseudo-bin htslib writes per reference (its chunk counts mapped/unmapped reads).
PSEUDO_BIN = 37450
#: Bits of a linear-index window (16 kbp).
WINDOW_SHIFT = 14
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class RefIndex:
    """The index of one reference: its bins' chunks and its linear index."""

    bins: dict[int, tuple[tuple[int, int], ...]]
    linear: tuple[int, ...]


@dataclass(frozen=True)
class Bai:
    """A parsed ``.bai``: one :class:`RefIndex` per reference, and the largest offset named."""

    refs: tuple[RefIndex, ...]
    #: The largest virtual offset any chunk or window names (must lie inside the BAM).
    highest: int

    def chunks(self, ref: int, beg: int, end: int) -> list[tuple[int, int]]:
        """The merged chunks ``[vbeg, vend)`` that hold every record of ``ref`` overlapping
        ``[beg, end)`` (0-based, half open), as htslib finds them: the bins that overlap,
        less what lies before the linear index's offset for ``beg`` (htslib skips it too, so a
        read an old index left out of its linear index is left out here as in pysam)."""
        index = self.refs[ref]
        linear = index.linear
        window = beg >> WINDOW_SHIFT
        least = linear[min(window, len(linear) - 1)] if linear else 0
        found = [  # clipped to start at the linear index's offset, as htslib does
            (max(a, least), b)
            for number in overlapping_bins(beg, end)
            for a, b in index.bins.get(number, ())
            if b > least
        ]
        return merge(sorted(found))

    def starts(self, ref: int) -> list[int]:
        """The linear index's offsets of ``ref``: record starts, in file order."""
        return sorted(set(self.refs[ref].linear) - {0})


def merge(chunks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted chunks merged where they overlap or touch in one BGZF block."""
    out: list[list[int]] = []
    for beg, end in chunks:
        if out and beg >> 16 <= out[-1][1] >> 16:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([beg, end])
    return [(a, b) for a, b in out]


def overlapping_bins(beg: int, end: int) -> list[int]:
    """The bins (UCSC binning, as in the SAM specification) that overlap ``[beg, end)``."""
    end = max(end, beg + 1) - 1
    bins = [0]
    for first, shift in ((1, 26), (9, 23), (73, 20), (585, 17), (4681, 14)):
        bins.extend(range(first + (beg >> shift), first + (end >> shift) + 1))
    return bins


def parse(data: bytes, url: str, n_ref: int, size: int) -> Bai:
    """The index in ``data`` (the whole ``.bai`` at ``url``), checked against the BAM it
    claims to index: ``n_ref`` references, ``size`` bytes. FormatError, naming the index
    and the byte offset, when it is cut short, malformed or points outside the BAM."""
    reader = _Reader(data, url)
    if data[:4] != MAGIC:
        raise FormatError(f"{url}: byte 0: not a BAM index: expected magic b'BAI\\x01', found"
                          f" {data[:4]!r}")  # fmt: skip
    reader.pos = 4
    count = reader.i32("the number of references")
    if count != n_ref:
        raise FormatError(
            f"{url}: byte 4: this index is for {count} references, the BAM's header has {n_ref}"
            " (an index of another file?)"
        )
    refs, highest = [], 0
    for _ in range(count):
        bins: dict[int, tuple[tuple[int, int], ...]] = {}
        for _ in range(reader.i32("a number of bins")):
            number = reader.u32()
            chunks = tuple((reader.u64(), reader.u64()) for _ in range(reader.i32("chunks")))
            if number != PSEUDO_BIN:
                bins[number] = chunks
                highest = max([highest, *(end for _, end in chunks)])
        linear = tuple(reader.u64() for _ in range(reader.i32("a number of windows")))
        highest = max(highest, *linear) if linear else highest
        refs.append(RefIndex(bins, linear))
    if highest >> 16 > size:
        raise FormatError(
            f"{url}: names virtual offset {highest:#x} (file byte {highest >> 16}), past the end"
            f" of the {size}-byte BAM: it indexes another file (or another version of it)"
        )
    return Bai(tuple(refs), highest)


class _Reader:
    def __init__(self, data: bytes, url: str) -> None:
        self.data, self.url, self.pos = data, url, 0

    def _take(self, fmt: struct.Struct) -> int:
        if self.pos + fmt.size > len(self.data):
            raise FormatError(
                f"{self.url}: byte {self.pos}: the index is cut short (expected"
                f" {fmt.size} more bytes, it has {len(self.data) - self.pos})"
            )
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return int(value)

    def i32(self, what: str) -> int:
        at = self.pos
        value = self._take(_I32)
        if value < 0 or value > len(self.data):
            raise FormatError(f"{self.url}: byte {at}: {what} is {value}: the index is corrupt")
        return value

    def u32(self) -> int:
        return self._take(_U32)

    def u64(self) -> int:
        return self._take(_U64)

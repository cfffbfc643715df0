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
from typing import Any

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
    #: Where the placed records end: the largest chunk end (0: the index has none).
    data_end: int = 0
    #: How many unplaced reads (no reference) follow them; None: the index does not say.
    unplaced: int | None = None

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


def parse(data: bytes, url: str, n_ref: int, size: int, data_url: str = "") -> Bai:
    """The index in ``data`` (the whole ``.bai`` at ``url``), checked against the BAM it
    claims to index (``data_url``: ``n_ref`` references, ``size`` bytes). FormatError,
    naming the index and the byte offset, when it is cut short, malformed, points outside
    the BAM, or (it counts no unplaced reads) its records end more than a block before the
    BAM's end-of-file block: reads were added after it was made. :func:`check_end` checks
    that end in the data (one read)."""
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
    refs, highest, end = [], 0, 0
    for _ in range(count):
        bins: dict[int, tuple[tuple[int, int], ...]] = {}
        for _ in range(reader.i32("a number of bins")):
            number = reader.u32()
            chunks = tuple((reader.u64(), reader.u64()) for _ in range(reader.i32("chunks")))
            if number != PSEUDO_BIN:
                bins[number] = chunks
                end = max([end, *(b for _, b in chunks)])
            elif chunks:  # the reference's records span, then counts of reads (not offsets)
                end = max(end, chunks[0][1])
        linear = tuple(reader.u64() for _ in range(reader.i32("a number of windows")))
        highest = max(highest, end, *linear)
        refs.append(RefIndex(bins, linear))
    unplaced = reader.u64() if reader.pos + 8 <= len(data) else None
    data_url = data_url or default_data_url(url)
    if highest >> 16 > size:
        raise FormatError(
            f"{url}: names virtual offset {highest:#x} (file byte {highest >> 16}), past the end"
            f" of {data_url} ({size} bytes): it indexes another file (or another version of"
            f" it); {REMAKE}"
        )
    bai = Bai(tuple(refs), highest, end, unplaced)
    if end and unplaced == 0 and size - LEAST - (end >> 16) > MAX_BLOCK:
        raise stale(url, data_url, end, f"the records it indexes end there, but {data_url}"
                                        f" goes on for {size - (end >> 16):,} bytes and it"
                                        " counts no unplaced reads")  # fmt: skip
    return bai


#: How to make the index again, for the messages that refuse one.
REMAKE = "make it again (samtools index FILE)"
#: bgzip's end-of-file block (an empty block); and the most file bytes a block takes.
LEAST, MAX_BLOCK = 28, 65536


def default_data_url(url: str) -> str:
    """The BAM an index at ``url`` is beside (``X.bam.bai``: ``X.bam``; ``X.bai``: ``X.bam``)."""
    base = url[:-4] if url.lower().endswith(".bai") else url
    return base if base.lower().endswith(".bam") else base + ".bam"


def stale(url: str, data_url: str, virtual: int, problem: str) -> FormatError:
    """The error that refuses the index at ``url`` for ``data_url`` at ``virtual``."""
    return FormatError(
        f"{url}: virtual offset {virtual >> 16}/{virtual & 0xFFFF} of {data_url}: {problem}:"
        f" the index does not match the data file (made for another file or another version"
        f" of it); {REMAKE}"
    )


def check_end(source: Any, bai: Bai, url: str) -> None:
    """Refuse ``bai`` (at ``url``) unless the records it indexes end where ``source``'s do:
    after its largest chunk end only empty BGZF blocks follow, or (when it counts unplaced
    reads, or does not say) a record of no reference. One read of at most two blocks, at
    that offset; with :func:`parse`'s arithmetic this catches reads added after the index
    was made."""
    from ..codecs.bgzf import decompress_blocks  # (codecs are a layer below formats)

    end, size = bai.data_end, source.size
    if end == 0:
        return
    block, within = end >> 16, end & 0xFFFF
    if block == size and within == 0 and not bai.unplaced:
        return  # the end of a file without bgzip's end-of-file block (older writers)
    raw = source.read(block, min(size, block + 2 * MAX_BLOCK + LEAST))
    try:
        inflated, used = decompress_blocks(raw, source.url, block)
    except FormatError as exc:
        raise stale(url, source.url, end, f"no BGZF block there ({exc})") from None
    if used == 0 or within > len(inflated):
        raise stale(url, source.url, end, "no BGZF block holds that offset")
    following = inflated[within:]
    if not following:
        if block + used < size:
            raise stale(url, source.url, end, "the records it indexes end there, but more"
                                              " blocks of data follow")  # fmt: skip
        if bai.unplaced:
            raise stale(url, source.url, end, f"it counts {bai.unplaced} unplaced reads after"
                                              " its records, the file has none")  # fmt: skip
        return
    ref = _I32.unpack_from(following, 4)[0] if len(following) >= 8 else None
    if bai.unplaced == 0 or ref != -1:
        what = "data" if ref is None else f"a record of reference {ref}"
        raise stale(url, source.url, end, f"the records it indexes end there, but {what}"
                                          " follows")  # fmt: skip


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

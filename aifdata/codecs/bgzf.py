"""The ``bgzf`` codec (``bgzip``'s ``.gz``): split at block boundaries, no index.

BGZF is a series of gzip members ("blocks"), each at most 64 KiB, whose
header carries its own size (the ``BC`` extra field). Planning snaps each
nominal split offset to the next block start (one small read per boundary,
each candidate confirmed by the block chain), so a partition is a run of
whole blocks: its offsets are file bytes. Records cross block boundaries; the
format's boundary rule keeps them whole, applied to the decompressed stream:
partition ``i`` starts at the first record start found in the data of its
first block (the first byte counts only as context), and ends where partition
``i + 1`` starts, which it finds by decompressing a little past its last
block. Both sides compute that boundary from the same bytes, so every record
lands in exactly one partition. Looking for that start keeps only the last
few lines as context (:data:`CONTEXT_LINES`), so it is linear however long a
sequence runs.

A file cut at a block boundary is still whole blocks: only bgzip's empty
end-of-file block, its last 28 bytes, tells that nothing is missing. Planning
checks it (one 28-byte read) and so does reading the last partition (in the
bytes it reads anyway); without it, FormatError.

A gzip file that is not BGZF (one long member) is the ``gzip`` codec's.
"""

from __future__ import annotations

import bisect
import itertools
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

from .._errors import FormatError
from ._base import Boundary, Codec, Source, Stream, Text

MAX_BLOCK = 65536
_HEADER = struct.Struct("<4sIBBHBBHH")  # magic+flags, mtime, xfl, os, xlen, si1, si2, slen, bsize
_MAGIC = b"\x1f\x8b\x08\x04"
_TRAILER = struct.Struct("<II")  # CRC32 and ISIZE of the inflated bytes
_LEAST = 18 + 2 + 8  # header, an empty deflate block, trailer (bgzip's end-of-file block)
#: Lines kept as context when scanning for a record start: a rule decides a start from the
#: line it begins and the lines after it (FASTQ: two lines and one byte), so a start it
#: leaves open lies in the last few lines it saw.
CONTEXT_LINES = 4
_inflater: Any
try:  # ISA-L inflates about twice as fast as zlib (dnaio installs it)
    from isal import isal_zlib as _inflater
except ImportError:  # pragma: no cover - isal is there wherever dnaio is
    _inflater = zlib
_DAMAGED: tuple[Any, ...] = (zlib.error, _inflater.error)  # isal's stubs type it as an instance


def block_size_at(data: bytes, pos: int) -> int | None:
    """The size of the BGZF block starting at ``data[pos]``, or None if none starts there.

    As htslib, a BGZF header has exactly one extra subfield, ``BC``, so its deflate
    data starts 18 bytes in; a block holds at least its header and its trailer."""
    if data[pos : pos + 4] != _MAGIC or len(data) < pos + 18:
        return None
    _, _, _, _, xlen, si1, si2, slen, bsize = _HEADER.unpack_from(data, pos)
    if xlen != 6 or (si1, si2, slen) != (66, 67, 2) or bsize + 1 < _LEAST:
        return None
    return int(bsize) + 1


def inflate_first(raw: bytes, url: str, offset: int) -> tuple[bytes, int] | None:
    """The inflated bytes and the size of the whole BGZF block that ``raw`` (file byte
    ``offset``) starts with, checked (:func:`inflate_block`); None when none starts there
    or ``raw`` cuts it short."""
    size = block_size_at(raw, 0)
    if size is None or size > len(raw):
        return None
    return inflate_block(memoryview(raw)[:size], url, offset), size


def decompress_blocks(data: bytes, url: str, offset: int) -> tuple[bytes, int]:
    """Decompress the whole blocks at the start of ``data`` (which begins at byte ``offset``).

    Returns the bytes and how many compressed bytes they used.
    """
    blocks = list(_blocks(data, url, offset))
    return b"".join(piece for _, piece, _ in blocks), sum(n for _, _, n in blocks)


def _blocks(data: bytes, url: str, offset: int) -> Iterator[tuple[int, bytes, int]]:
    """``(file offset, inflated bytes, compressed size)`` of each whole block at the start
    of ``data`` (which begins at byte ``offset``), each checked (:func:`inflate_block`);
    a block cut by the end of ``data`` is left."""
    pos, view = 0, memoryview(data)
    while pos + 18 <= len(data):  # a header cut by the end of ``data``: the caller reads more
        size = block_size_at(data, pos)
        if size is None:
            raise FormatError(f"{url}: byte {offset + pos}: expected a BGZF block header")
        if pos + size > len(data):
            return  # the caller reads more
        yield offset + pos, inflate_block(view[pos : pos + size], url, offset + pos), size
        pos += size


def inflate_block(block: bytes | memoryview, url: str, at: int) -> bytes:
    """The inflated bytes of one whole BGZF block (at file byte ``at``), checked as gzip
    checks a member: the deflate data ends exactly at the trailer, and the trailer's
    ISIZE and CRC32 match what it inflated to. FormatError naming the block if not."""
    inflater = _inflater.decompressobj(wbits=-15)
    try:
        piece = inflater.decompress(block[18:-8])
    except _DAMAGED as exc:
        raise FormatError(f"{url}: byte {at}: bad BGZF block ({exc})") from None
    if not inflater.eof:
        raise FormatError(f"{url}: byte {at}: bad BGZF block (its deflate data is cut short)")
    if inflater.unused_data:
        raise FormatError(
            f"{url}: byte {at}: bad BGZF block (its deflate data ends"
            f" {len(inflater.unused_data)} bytes before its trailer)"
        )
    crc, isize = _TRAILER.unpack_from(block, len(block) - 8)
    if len(piece) != isize:
        raise FormatError(
            f"{url}: byte {at}: bad BGZF block: ISIZE expected {isize} (its trailer),"
            f" got {len(piece)} inflated bytes"
        )
    got = _inflater.crc32(piece)
    if got != crc:
        raise FormatError(
            f"{url}: byte {at}: bad BGZF block: CRC32 expected {crc:#010x} (its trailer),"
            f" got {got:#010x} from its {len(piece)} inflated bytes"
        )
    return piece  # type: ignore[no-any-return]


class Bgzf(Codec):
    """BGZF blocks (a gzip file whose members carry their size in a ``BC`` field)."""

    name = "bgzf"
    title = "BGZF"
    extensions = (".gz", ".bgz")
    description = "BGZF blocks (bgzip); split at block boundaries, no index"
    fallback = "gzip"  # for a format that reads gzip but not BGZF: one long gzip stream
    file_offsets = True

    def sniff(self, head: bytes) -> bool:
        return block_size_at(head, 0) is not None

    def peek(self, head: bytes, url: str) -> bytes:
        pieces, used = [], 0
        for _, piece, size in _blocks(head, url, 0):
            pieces.append(piece)
            used += size
        rest = head[used:]
        if len(rest) > 18 and block_size_at(rest, 0) is not None:  # a block cut by the head
            try:
                pieces.append(zlib.decompressobj(-15).decompress(rest[18:], MAX_BLOCK))
            except zlib.error as exc:
                raise FormatError(f"{url}: byte {used}: bad BGZF block ({exc})") from None
        return b"".join(pieces)

    def open(self, source: Source) -> Stream:
        return BgzfStream(source)


class BgzfStream(Stream):
    def __init__(self, source: Source) -> None:
        self.source = source
        self.extent = source.size
        self._end_checked = False
        self._end_lock = threading.Lock()

    def nominal(self, count: int) -> list[int]:
        self.check_end()  # planning starts here: refuse a file cut at a block boundary
        return super().nominal(count)

    def snap(self, offset: int, boundary: Boundary) -> int:
        self.check_end()  # planners that do not ask for nominal offsets (VCF) snap
        return next_block(self.source, offset)

    def check_end(self) -> None:
        """FormatError unless the file ends with bgzip's end-of-file block (an empty block):
        without it, the file was cut at a block boundary and its last records are missing.
        Reads the last 28 bytes, once per stream."""
        with self._end_lock:
            if not self._end_checked:
                check_end_block(self.source.read(self.extent - _LEAST, self.extent),
                                self.source.url, self.extent)  # fmt: skip
                self._end_checked = True

    def text(
        self, start: int, end: int, boundary: Boundary, raw: bytes | None = None,
        after: bytes = b"",
    ) -> Text:  # fmt: skip
        url, size = self.source.url, self.extent
        raw = self.source.read(start, end) if raw is None else raw
        whole = list(_blocks(raw, url, start))
        used = sum(n for _, _, n in whole)
        if used != end - start:
            raise FormatError(f"{url}: byte {start + used}: a BGZF block is cut short")
        if end >= size:  # the last partition holds the end-of-file block, if there is one
            check_end_block(raw[-_LEAST:], url, size)
        blocks = [(at, piece) for at, piece, _ in whole]
        own = b"".join(piece for _, piece in blocks)
        first: int | None = 0
        if start > 0:  # the same rule the partition before uses to find its end
            first = boundary(own, end >= size)
            if first is None and end < size:
                first, _ = self.start_of(start, boundary, raw)
        if first is None:
            return Text(url, b"", start, last=True)
        tail = b""
        if end < size:
            found, following = self.scan(end, boundary, after)
            tail = b"".join(piece for _, piece in following)
            tail = tail if found is None else tail[:found]
            blocks += following
        data = (own + tail)[first:] if first or tail else own
        return Text(url, data, start, last=end >= size, locate=_Locate(url, blocks, first))

    def scan(
        self, block: int, boundary: Boundary, held: bytes = b""
    ) -> tuple[int | None, list[tuple[int, bytes]]]:
        """Where the partition starting at ``block`` begins: the first record start in the
        uncompressed data from there (its first byte only context), found block by block;
        and the blocks looked at, ``(file offset, inflated bytes)``. None: no record starts
        from there to the end.

        ``held``: file bytes from ``block`` on, looked at before reading any."""
        blocks: list[tuple[int, bytes]] = []
        found, _ = self._search(block, boundary, held, blocks)
        return found, blocks

    def start_of(self, block: int, boundary: Boundary, held: bytes = b"") -> tuple[int | None, int]:
        """As :meth:`scan`, keeping no inflated block: the record start's index in the
        data from ``block`` on, and the file offset of the block that holds it (None and
        the file size when no record starts from there to the end)."""
        return self._search(block, boundary, held, None)

    def _search(
        self, block: int, boundary: Boundary, held: bytes,
        keep: list[tuple[int, bytes]] | None,
    ) -> tuple[int | None, int]:  # fmt: skip
        """The record start from ``block`` on, each block inflated once and each byte looked
        at a bounded number of times. The rule is asked about a window: the bytes since the
        :data:`CONTEXT_LINES`-th last newline (the lines a line-based rule needs to settle a
        start it left open), plus what was inflated since; and only when a line ended since
        it last said None (or its bytes ended a line, or the stream ends): without a new
        line, a rule that decides record starts from whole lines cannot answer otherwise."""
        window, base, total, ask = bytearray(), 0, 0, True
        starts: list[int] = []  # where each block's inflated bytes begin
        offsets: list[int] = []  # and its file offset
        for at, piece, after in self._inflated(block, held):
            if keep is not None:
                keep.append((at, piece))
            starts.append(total)
            offsets.append(at)
            total += len(piece)
            window += piece
            ask = ask or b"\n" in piece
            at_eof = after >= self.extent
            if not (ask or at_eof):
                continue
            found = boundary(bytes(window), at_eof)
            if found is not None:
                index = base + found
                return index, offsets[max(0, bisect.bisect_right(starts, index) - 1)]
            if at_eof:
                break
            ask = window.endswith(b"\n")
            cut = _context_start(window)
            del window[:cut]
            base += cut
        return None, self.extent

    def _inflated(self, block: int, held: bytes) -> Iterator[tuple[int, bytes, int]]:
        """``(file offset, inflated bytes, offset after it)`` of each block from ``block`` to
        the end of the file, read in growing windows (``held`` first)."""
        url, size = self.source.url, self.extent
        pos, window = block, MAX_BLOCK
        while True:
            looked, raw, held = bool(held), held or self.source.read(pos, pos + window), b""
            before = pos
            for at, piece, n in _blocks(raw, url, pos):
                pos = at + n
                yield at, piece, pos
            if pos >= size:
                return
            if pos == before and not looked:  # a window holds a whole block, unless cut short
                raise FormatError(f"{url}: byte {pos}: a BGZF block is cut short")
            if pos > before:
                window = min(2 * window, 4 * MAX_BLOCK)


def _context_start(window: bytearray) -> int:
    """Where the last :data:`CONTEXT_LINES` lines of ``window`` begin, less one byte (the
    newline before them, context for the rule); 0 when it holds fewer lines."""
    cut = len(window)
    for _ in range(CONTEXT_LINES):
        cut = window.rfind(b"\n", 0, cut)
        if cut < 0:
            return 0
    return cut


def check_end_block(last: bytes, url: str, size: int) -> None:
    """FormatError unless ``last`` (a file's last 28 bytes) is an empty BGZF block, as
    bgzip and htslib end every file."""
    ok = len(last) == _LEAST and block_size_at(last, 0) == _LEAST
    if ok:
        try:
            ok = inflate_block(last, url, size - _LEAST) == b""
        except FormatError:
            ok = False
    if not ok:
        raise FormatError(
            f"{url}: byte {size}: no BGZF end-of-file block: the file is truncated? (the data"
            " ends there: a BGZF block is cut short, or the last blocks are missing)"
        )


class _Locate:
    """Names offset ``i`` of a partition's text by its BGZF block and the byte within it."""

    def __init__(self, url: str, blocks: list[tuple[int, bytes]], first: int) -> None:
        self.url, self.first = url, first
        self.starts = [at for at, _ in blocks]
        self.offsets = list(itertools.accumulate((len(p) for _, p in blocks), initial=0))

    def __call__(self, i: int) -> str:
        at = i + self.first
        k = max(0, min(bisect.bisect_right(self.offsets, at) - 1, len(self.starts) - 1))
        block = self.starts[k] if self.starts else 0
        return (
            f"{self.url}: byte {block} (a BGZF block), uncompressed byte"
            f" {at - self.offsets[k]} in it"
        )


def next_block(source: Source, offset: int) -> int:
    """The first BGZF block start at or after ``offset`` (the file size if none)."""
    window = source.read(offset, offset + 2 * MAX_BLOCK + 64)
    pos = window.find(_MAGIC)
    while pos >= 0:
        size = block_size_at(window, pos)
        if size is not None:
            after = pos + size
            if offset + after >= source.size or block_size_at(window, after) is not None:
                return offset + pos  # the chain confirms it (or it ends the file)
            if after + 18 > len(window):
                return offset + pos  # the next header lies past the window: trust the field
        pos = window.find(_MAGIC, pos + 1)
    return source.size

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
lands in exactly one partition.

A gzip file that is not BGZF (one long member) is the ``gzip`` codec's.
"""

from __future__ import annotations

import bisect
import itertools
import struct
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

    def snap(self, offset: int, boundary: Boundary) -> int:
        return next_block(self.source, offset)

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
        blocks = [(at, piece) for at, piece, _ in whole]
        own = b"".join(piece for _, piece in blocks)
        first: int | None = 0
        if start > 0:  # the same rule the partition before uses to find its end
            first = boundary(own, end >= size)
            if first is None and end < size:
                first, _ = self.scan(start, boundary)
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
        and the blocks looked at. None: no record starts from there to the end.

        ``held``: file bytes from ``block`` on, looked at before reading any."""
        url, size = self.source.url, self.extent
        data, blocks, pos, window = b"", [], block, MAX_BLOCK
        while True:
            looked, raw, held = bool(held), held or self.source.read(pos, pos + window), b""
            before = pos
            for at, piece, n in _blocks(raw, url, pos):
                blocks.append((at, piece))
                data += piece
                pos = at + n
                found = boundary(data, pos >= size)
                if found is not None or pos >= size:
                    return found, blocks
            if pos == before and not looked:  # a window holds a whole block, unless cut short
                raise FormatError(f"{url}: byte {pos}: a BGZF block is cut short")
            if pos > before:
                window = min(2 * window, 4 * MAX_BLOCK)


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

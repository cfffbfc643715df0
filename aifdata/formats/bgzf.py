"""BGZF-compressed FASTQ (``bgzip``'s ``.fastq.gz``): split at block boundaries, no index.

BGZF is a series of gzip members ("blocks"), each at most 64 KiB, whose
header carries its own size (the ``BC`` extra field). Planning snaps each
nominal split offset to the next block start (one small read per boundary,
each candidate confirmed by the block chain), so a partition is a run of
whole blocks. Records cross block boundaries; the rule that keeps them whole
is the plain-FASTQ one, applied to the decompressed stream: partition ``i``
starts at the first record header found in the data of its first block (the
first byte counts only as context), and ends where partition ``i + 1``
starts, which it finds by decompressing a little past its last block. Both
sides compute that boundary from the same bytes, so every record lands in
exactly one partition.

A gzip file that is not BGZF (one long member) cannot be split without an
index: that is the ``fastq-gzip`` format's job.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from .._errors import FormatError
from ._base import ByteRangeFormat, Partition, RangeSource, byte_range_partitions
from .fastq import PLAN_THREADS, FastqColumns, first_header, parse, to_arrow

MAX_BLOCK = 65536
_HEADER = struct.Struct("<4sIBBHBBHH")  # magic+flags, mtime, xfl, os, xlen, si1, si2, slen, bsize
_MAGIC = b"\x1f\x8b\x08\x04"


def block_size_at(data: bytes, pos: int) -> int | None:
    """The size of the BGZF block starting at ``data[pos]``, or None if none starts there."""
    if data[pos : pos + 4] != _MAGIC or len(data) < pos + 18:
        return None
    _, _, _, _, xlen, si1, si2, slen, bsize = _HEADER.unpack_from(data, pos)
    if xlen < 6 or (si1, si2, slen) != (66, 67, 2):
        return None
    return bsize + 1


def decompress_blocks(data: bytes, url: str, offset: int) -> tuple[bytes, int]:
    """Decompress the whole blocks at the start of ``data`` (which begins at byte ``offset``).

    Returns the bytes and how many compressed bytes they used.
    """
    out, pos = [], 0
    while pos < len(data):
        size = block_size_at(data, pos)
        if size is None:
            raise FormatError(f"{url}: byte {offset + pos}: expected a BGZF block header")
        if pos + size > len(data):
            break  # the caller reads more
        try:
            out.append(zlib.decompress(data[pos + 18 : pos + size - 8], wbits=-15))
        except zlib.error as exc:
            raise FormatError(f"{url}: byte {offset + pos}: bad BGZF block ({exc})") from None
        pos += size
    return b"".join(out), pos


class FastqBgzfFormat(FastqColumns, ByteRangeFormat):
    """FASTQ in BGZF blocks."""

    name = "fastq-bgzf"
    extensions = (".fastq.gz", ".fq.gz", ".fastq.bgz", ".fq.bgz")
    description = "BGZF-compressed FASTQ; split at block boundaries, each record once"

    def sniff(self, head: bytes, path: str) -> bool:
        size = block_size_at(head, 0)
        if size is None or size > len(head):
            return size is not None
        try:
            return zlib.decompress(head[18 : size - 8], wbits=-15)[:1] in (b"@", b"")
        except zlib.error:
            return True  # BGZF by its header; reading it will name the broken block

    def explain(self, head: bytes, url: str) -> str:
        if head[:3] == b"\x1f\x8b\x08":
            return (
                f"{url}: byte 12: a gzip file but not BGZF (no 'BC' block-size field);"
                " the fastq-gzip format splits it through an index"
            )
        return f"{url}: byte 0: this is not BGZF data (it starts with {head[:16]!r})"

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        head = source.head(MAX_BLOCK + 18)
        if not self.sniff(head, source.url):
            raise FormatError(self.explain(head, source.url))
        return byte_range_partitions(
            self, source, n, target_bytes, lambda offset: next_block(source, offset), PLAN_THREADS
        )

    def decode(
        self,
        partition: Partition,
        data: bytes,
        source: RangeSource,
        as_arrow: bool = False,
        **options: Any,
    ) -> Any:
        start, end = partition["start"], partition["end"]
        own, used = decompress_blocks(data, source.url, start)
        if used != end - start:
            raise FormatError(f"{source.url}: byte {start + used}: a BGZF block is cut short")
        first: int | None = 0
        if start > 0:  # the same rule the partition before uses to find its end
            first = first_header(own, end >= source.size)
            if first is None and end < source.size:
                first, _ = boundary(source, start)
        if first is None:
            return to_arrow([]) if as_arrow else []
        tail = b""
        if end < source.size:
            found, after = boundary(source, end)
            tail = after if found is None else after[:found]
        records = parse((own + tail)[first:], source.url, start, last=end >= source.size)
        return to_arrow(records) if as_arrow else records


def boundary(source: RangeSource, block: int) -> tuple[int | None, bytes]:
    """Where the partition starting at ``block`` begins: the first record header in the
    uncompressed data from there (its first byte only context), and the data looked at.

    None: no header from there to the end of the file.
    """
    data, pos = b"", block
    while True:
        chunk, used = decompress_blocks(source.read(pos, pos + 4 * MAX_BLOCK), source.url, pos)
        if used == 0:
            raise FormatError(f"{source.url}: byte {pos}: a BGZF block is cut short")
        data += chunk
        pos += used
        at_eof = pos >= source.size
        found = first_header(data, at_eof)
        if found is not None or at_eof:
            return found, data


def next_block(source: RangeSource, offset: int) -> int:
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

"""The ``gzip`` codec (plain ``gzip``, not BGZF): split through a stored index.

Opening a file builds its index once (one sequential pass; see
:mod:`~aifdata.codecs._gzip_index`) and keeps it under ``$AIFDATA_HOME``, keyed
by URL and fingerprint, so later plans and every worker reuse it and a changed
file gets a new one. Partitions are ranges of the *uncompressed* bytes, put on
the index's checkpoints where one is near (reading then decompresses nothing
twice) and snapped to record starts by the format's boundary rule, so each
record lands in exactly one partition. Reading one costs one range read of
the compressed bytes. Error offsets count uncompressed bytes.
"""

from __future__ import annotations

import bisect
import zlib

from .._errors import FormatError
from ._base import Boundary, Codec, Source, Stream, Text, find_start
from ._gzip_index import GzipIndex, load_or_build, read_range
from .bgzf import block_size_at

#: Uncompressed bytes :meth:`Gzip.peek` gives at most.
PEEK_BYTES = 64 * 2**10


class Gzip(Codec):
    """One gzip stream, or several concatenated (BGZF is the ``bgzf`` codec's)."""

    name = "gzip"
    extensions = (".gz",)
    description = "gzip; split through an index built once and stored"
    file_offsets = False  # partitions are ranges of the uncompressed bytes

    def sniff(self, head: bytes) -> bool:
        return head[:2] == b"\x1f\x8b" and block_size_at(head, 0) is None

    def peek(self, head: bytes, url: str) -> bytes:
        try:
            return zlib.decompressobj(wbits=31).decompress(head, PEEK_BYTES)
        except zlib.error as exc:
            raise FormatError(
                f"{url}: byte 0: a gzip header, but the data does not decompress ({exc})"
            ) from None

    def open(self, source: Source) -> Stream:
        return GzipStream(source)


class GzipStream(Stream):
    def __init__(self, source: Source) -> None:
        self.source = source
        self.index = load_or_build(source)
        self.extent = self.index.size
        self.uncompressed = Uncompressed(source, self.index)

    def nominal(self, count: int) -> list[int]:
        """Even splits, each moved onto a checkpoint when one is near."""
        extent = self.extent
        near = {_near_checkpoint(self.index, extent * i // count, count) for i in range(1, count)}
        return sorted(near - {0})

    def snap(self, offset: int, boundary: Boundary) -> int:
        return find_start(self.uncompressed, offset, boundary)

    def text(
        self, start: int, end: int, boundary: Boundary, raw: bytes | None = None,
        after: bytes = b"",
    ) -> Text:  # fmt: skip
        url = self.source.url
        data = read_range(self.source, self.index, start, end)
        return Text(url, data, start, last=end >= self.extent,
                    locate=lambda i: f"{url}: uncompressed byte {start + i}")  # fmt: skip


class Uncompressed:
    """The uncompressed bytes of a gzip file, as a reader that boundary lookups use."""

    def __init__(self, source: Source, index: GzipIndex) -> None:
        self.source, self.index, self.size = source, index, index.size

    def read(self, start: int, end: int) -> bytes:
        return read_range(self.source, self.index, max(0, start), end)


def _near_checkpoint(index: GzipIndex, offset: int, count: int) -> int:
    """The checkpoint nearest ``offset`` if within half a partition, else ``offset``.

    A partition that starts on a checkpoint decompresses nothing another one does.
    """
    offsets = index.offsets
    at = bisect.bisect_left(offsets, offset)
    near = [offsets[i] for i in (at - 1, at) if 0 < i < len(offsets)]
    best = min(near, key=lambda u: abs(u - offset), default=None)
    if best is not None and abs(best - offset) <= index.size // count // 2:
        return best + 1  # the boundary lookup reads from one byte before: from ``best``
    return offset

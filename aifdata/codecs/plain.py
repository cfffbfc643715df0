"""The ``none`` codec: the file's bytes are the text; a partition is a byte range of the file."""

from __future__ import annotations

from ._base import Boundary, Codec, Source, Stream, Text, find_start


class Plain(Codec):
    """Uncompressed bytes."""

    name = "none"
    description = "uncompressed; split at any byte offset"
    file_offsets = True

    def sniff(self, head: bytes) -> bool:
        return True  # whatever no other codec claims

    def peek(self, head: bytes, url: str) -> bytes:
        return head

    def open(self, source: Source) -> Stream:
        return PlainStream(source)


class PlainStream(Stream):
    def __init__(self, source: Source) -> None:
        self.source = source
        self.extent = source.size

    def snap(self, offset: int, boundary: Boundary) -> int:
        return find_start(self.source, offset, boundary)

    def text(
        self, start: int, end: int, boundary: Boundary, raw: bytes | None = None,
        after: bytes = b"",
    ) -> Text:  # fmt: skip
        data = self.source.read(start, end) if raw is None else raw
        return Text(self.source.url, data, start, last=end >= self.extent)

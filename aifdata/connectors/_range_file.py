"""A seekable reader over any connector that can serve byte ranges."""

from __future__ import annotations

from typing import Any

from fsspec.spec import AbstractBufferedFile


class RangeReader(AbstractBufferedFile):
    """Buffered, seekable reads of one file, fetched as ranged reads.

    ``source`` is a connector (anything with ``cat_file(rel, start, end)`` and
    ``url(rel)``); the reader holds no sockets of its own.
    """

    def __init__(self, source: Any, rel: str, size: int, block_size: int) -> None:
        self.source, self.rel = source, rel
        super().__init__(
            None,
            source.url(rel),
            mode="rb",
            block_size=block_size,
            size=size,
            cache_type="readahead",
        )

    def _fetch_range(self, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        data: bytes = self.source.cat_file(self.rel, start, end)
        return data

    def __reduce__(self) -> tuple[Any, ...]:
        return _reopen, (self.source, self.rel, self.size, self.blocksize, self.loc)


def _reopen(source: Any, rel: str, size: int, block_size: int, loc: int) -> RangeReader:
    reader = RangeReader(source, rel, size, block_size)
    reader.seek(loc)
    return reader

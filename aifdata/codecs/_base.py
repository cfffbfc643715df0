"""What every codec shares: the source it reads, the boundary rule it is given, the text it returns.

A codec turns one file's bytes into a stream of record-oriented text, and
finds partition boundaries in it without knowing the format: the format hands
it a *boundary rule* (:data:`Boundary`), a function that finds the first
record start in some bytes. Partitions are ranges ``[start, end)`` in the
codec's own coordinates (:attr:`Stream.extent`): file bytes for ``none`` and
``bgzf``, uncompressed bytes for ``gzip``.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

#: Bytes looked at, at first, for a record start past a nominal boundary (doubled until found).
BOUNDARY_WINDOW = 64 * 2**10

#: ``boundary(data, at_eof)``: the index (>= 1) in ``data`` of the first record start, where
#: ``data[0]`` is context only (the byte before the offset asked about); None when ``data``
#: does not settle it (more bytes are needed, or at the end of the stream there is none).
Boundary = Callable[[bytes, bool], int | None]


class ByteReader(Protocol):
    """Anything with a size that reads byte ranges (a file, or the uncompressed bytes of one)."""

    @property
    def size(self) -> int: ...

    def read(self, start: int, end: int) -> bytes: ...


class Source(ByteReader, Protocol):
    """One version of one file, read by ranges (``aifdata.formats.RangeSource`` is one)."""

    url: str

    @property
    def fingerprint(self) -> str: ...

    @property
    def version(self) -> str: ...


@dataclass(frozen=True)
class Text:
    """The uncompressed bytes of one partition's records, and how to name a place in them.

    ``start`` is where ``data[0]`` lies in the codec's coordinates; ``last``
    says ``data`` runs to the end of the stream (a missing final newline there
    means the file was cut short).
    """

    url: str
    data: bytes
    start: int
    last: bool
    #: names offset ``i`` of ``data`` for an error message ("reads.fq: byte 120")
    locate: Callable[[int], str] | None = field(default=None, compare=False, repr=False)

    def where(self, i: int) -> str:
        """``"URL: byte N"``, or what the codec says for offset ``i`` of ``data``."""
        if self.locate is not None:
            return self.locate(i)
        return f"{self.url}: byte {self.start + i}"


class Stream(ABC):
    """One file seen through its codec: the offsets partitions use, boundaries, their text."""

    #: Partitions' offsets run over ``[0, extent)``.
    extent: int

    def nominal(self, count: int) -> list[int]:
        """Where ``count`` partitions would split before snapping (evenly, by default)."""
        return sorted({self.extent * i // count for i in range(1, count)} - {0})

    @abstractmethod
    def snap(self, offset: int, boundary: Boundary) -> int:
        """The first place at or after ``offset`` where a partition may start (``extent``
        if none)."""

    @abstractmethod
    def text(
        self, start: int, end: int, boundary: Boundary, raw: bytes | None = None,
        after: bytes = b"",
    ) -> Text:  # fmt: skip
        """The uncompressed bytes of exactly the records of partition ``[start, end)``.

        ``raw``: the file's bytes ``[start, end)``, when the codec's offsets are file
        offsets (:attr:`Codec.file_offsets`) and the caller has read them; ``after``:
        some file bytes from ``end`` on that the caller holds too (a codec that looks
        past the end for the next record start reads them instead of the file).
        """


class Codec(ABC):
    """A compression (or none) that aifdata recognises from a file's first bytes."""

    #: Registry name, e.g. ``gzip``.
    name: ClassVar[str]
    #: How messages name it ("BGZF"); the registry name when empty.
    title: ClassVar[str] = ""
    #: File name endings this codec adds (``.gz``), lower case, with the dot.
    extensions: ClassVar[tuple[str, ...]] = ()
    #: One line for ``aifdata formats``.
    description: ClassVar[str] = ""
    #: The codec to use instead for a format that does not take this one (BGZF is gzip).
    fallback: ClassVar[str | None] = None
    #: Whether partitions' offsets are file bytes (read ``[start, end)`` of the file and
    #: hand it to :meth:`Stream.text`), as for ``none`` and ``bgzf``; else they count
    #: uncompressed bytes and only :meth:`Stream.text` knows what to read.
    file_offsets: ClassVar[bool] = False

    @abstractmethod
    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` (the file's first bytes) is in this codec."""

    @abstractmethod
    def peek(self, head: bytes, url: str) -> bytes:
        """The uncompressed bytes that ``head`` holds (as many as it decompresses to);
        FormatError when they do not decompress."""

    @abstractmethod
    def open(self, source: Source) -> Stream:
        """``source`` through this codec, ready to plan and read partitions."""

    @property
    def label(self) -> str:
        return self.title or self.name

    def strip(self, path: str) -> str | None:
        """``path`` without this codec's extension (None when it has none of them)."""
        lower = path.lower()
        for ext in self.extensions:
            if lower.endswith(ext):
                return path[: -len(ext)]
        return None

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


def find_start(reader: ByteReader, offset: int, boundary: Boundary) -> int:
    """The first record start at or after ``offset`` in ``reader`` (its size if none):
    a window from one byte before ``offset``, doubled until ``boundary`` settles it."""
    size = reader.size
    if offset <= 0:
        return 0
    window = BOUNDARY_WINDOW
    while True:
        low = offset - 1  # one byte before: is ``offset`` itself a record start?
        data = reader.read(low, min(size, low + window))
        at_eof = low + window >= size or len(data) < min(size, low + window) - low
        found = boundary(data, at_eof)
        if found is not None:
            return low + found
        if at_eof:
            return size
        window *= 2


class SeekableSource(io.RawIOBase):
    """A read-only, seekable file over a :class:`ByteReader`: the position and seeking that
    readers of whole files (indexed_gzip, pyarrow, h5py) need; a subclass reads."""

    def __init__(self, source: ByteReader) -> None:
        super().__init__()
        self.source = source
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.source.size}
        self.position = max(0, base[whence] + offset)
        return self.position

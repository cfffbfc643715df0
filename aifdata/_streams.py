"""One streamed copy: a chunk size, the checksum's spelling, and the loop that moves bytes.

Every copy and every checksum in aifdata (``aifdata.copy`` and ``aifdata cp``,
the filesystem's ``get_file`` and ``cp_file``, staging, ingest) reads through
:func:`copy_stream`, so they share one chunk size and one ``sha256:<hex>``
spelling. Chunks are large: hashlib releases the GIL on them, so several
files hash at once in threads, and an S3 read of a chunk is few requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

#: Bytes read (and written) at a time by every streamed copy and checksum.
CHUNK_SIZE = 8 * 2**20

#: The algorithm of every checksum aifdata records.
CHECKSUM_ALGORITHM = "sha256"


class Readable(Protocol):
    """A binary stream that can be read in chunks (a file, an fsspec file, a connector's)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """A binary stream that takes chunks."""

    def write(self, data: bytes, /) -> int | None: ...


def new_digest() -> hashlib._Hash:
    """A running hash of :data:`CHECKSUM_ALGORITHM` (feed it, then :func:`format_checksum`)."""
    return hashlib.sha256()


def format_checksum(digest: hashlib._Hash) -> str:
    """The recorded spelling of a finished hash: ``sha256:<hex>``."""
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"


def checksum_of(data: bytes) -> str:
    """The checksum of bytes in memory, spelled as recorded (``sha256:<hex>``)."""
    return format_checksum(hashlib.sha256(data))


@dataclass(frozen=True, slots=True)
class Streamed:
    """What :func:`copy_stream` moved: the byte count, the checksum (``""`` unless asked)
    and the first bytes (if asked)."""

    size: int
    checksum: str = ""
    head: bytes = b""


def copy_stream(
    src: Readable,
    dst: Writable | None = None,
    *,
    checksum: bool = False,
    progress: Callable[[int], object] | None = None,
    head: int = 0,
    chunk_size: int = CHUNK_SIZE,
) -> Streamed:
    """Read ``src`` to its end in ``chunk_size`` chunks, writing each to ``dst`` (None: read
    only, e.g. to checksum).

    ``checksum`` keeps a running :data:`CHECKSUM_ALGORITHM` hash; ``progress`` is
    called with the size of each chunk once it is written; ``head`` keeps that
    many first bytes (to sniff a format). Neither stream is closed.
    """
    digest = hashlib.sha256() if checksum else None
    first = b""
    size = 0
    while chunk := src.read(chunk_size):
        if digest is not None:
            digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
        if len(first) < head:
            first += chunk[: head - len(first)]
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return Streamed(size, "" if digest is None else format_checksum(digest), first)

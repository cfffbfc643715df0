"""The inflated bytes of a run of BGZF blocks of a BAM file, read as needed.

A place in a BAM file is a *virtual offset*: a BGZF block's file offset << 16
| an offset in its inflated bytes. :class:`Blocks` inflates blocks from one
block start on (reading more of the file only when asked) and maps places in
the inflated bytes to virtual offsets and back, and to the ``URL: byte B (a
BGZF block), uncompressed byte U in it`` that every error names.
"""

from __future__ import annotations

import bisect
from typing import cast

from .._errors import FormatError
from ..codecs import bgzf
from ._base import RangeSource

MAX_BLOCK = bgzf.MAX_BLOCK
#: File bytes read at each guessed split (a block start lies in the first 64 KiB).
GUESS_WINDOW = 3 * MAX_BLOCK + 64


class Blocks:
    """The inflated bytes of a run of BGZF blocks from one block start on, read as needed,
    and the map between places in them and virtual offsets."""

    def __init__(self, source: RangeSource, start: int, raw: bytes = b"") -> None:
        self.source, self.url, self.size = source, source.url, source.size
        self.data = b""  # bytes: its slices are bytes (a record's tags, qualities)
        self.starts: list[int] = []  # file offset of each inflated block
        self.offsets: list[int] = [0]  # where each block's bytes begin in data (then the end)
        self.next = start  # the file offset of the first block not inflated yet
        self.raw = raw  # file bytes from self.next - self.used on
        self.used = 0  # bytes of raw inflated already
        #: Inflated bytes a :meth:`grow` makes at most (at least one block); None: all.
        self.step: int | None = None

    @property
    def eof(self) -> bool:
        return self.next >= self.size

    def grow(self, window: int = GUESS_WINDOW) -> bool:
        """Inflate at least one more block (reading more of the file if needed); False at
        the end of the file."""
        while not self.eof:
            used, pieces, held = 0, [], len(self.data)
            raw = cast(bytes, memoryview(self.raw)[self.used :])  # no copy; _blocks reads views
            for at, piece, n in bgzf._blocks(raw, self.url, self.next):
                self.starts.append(at)
                pieces.append(piece)
                held += len(piece)
                self.offsets.append(held)
                used += n
                if self.step is not None and held - len(self.data) >= self.step:
                    break
            if used:
                self.data = b"".join([self.data, *pieces])  # one copy
                self.used += used
                self.next += used
                return True
            have = self.next + len(self.raw) - self.used
            more = self.source.read(have, have + max(window, MAX_BLOCK))
            if not more:
                raise FormatError(
                    f"{self.url}: byte {self.next}: a BGZF block is cut short (the file ends"
                    f" at byte {self.size})"
                )
            self.raw, self.used = self.raw[self.used :] + more, 0
        return False

    def ensure(self, n: int) -> bool:
        """Whether ``n`` inflated bytes are (or can be made) available."""
        while len(self.data) < n:
            if not self.grow(max(GUESS_WINDOW, n - len(self.data))):
                return False
        return True

    def drop(self, n: int) -> None:
        """Forget the first ``n`` inflated bytes: every place in :attr:`data` moves ``n``
        down (the blocks wholly before go; the last block always stays, for
        :func:`check_eof_marker`)."""
        if n <= 0:
            return
        k = min(bisect.bisect_right(self.offsets, n) - 1, len(self.starts) - 1)
        if k < 0:
            return
        self.data = self.data[n:]
        self.starts = self.starts[k:]
        self.offsets = [at - n for at in self.offsets[k:]]

    def held(self, voffset: int) -> int | None:
        """:meth:`position` of ``voffset`` when its block is inflated already (or the file
        ends before it); None when it is not."""
        if voffset >> 16 >= self.next and not (voffset >> 16 >= self.size and self.eof):
            return None
        return self.position(voffset)

    def position(self, voffset: int) -> int:
        """Where virtual offset ``voffset`` lies in :attr:`data` (inflating up to it)."""
        block, within = voffset >> 16, voffset & 0xFFFF
        while block >= self.next and self.grow():
            pass
        if block >= self.size and self.eof:
            return len(self.data)
        k = bisect.bisect_left(self.starts, block)
        if k == len(self.starts) or self.starts[k] != block:
            raise FormatError(
                f"{self.url}: byte {block}: virtual offset {voffset:#x} does not point at a"
                " BGZF block start"
            )
        at = self.offsets[k] + within
        if at > self.offsets[k + 1]:
            raise FormatError(
                f"{self.url}: byte {block}: virtual offset {voffset:#x} points past the end of"
                f" its BGZF block ({self.offsets[k + 1] - self.offsets[k]} bytes inflated)"
            )
        return at

    def voffset(self, at: int) -> int:
        """The virtual offset of place ``at`` of :attr:`data`."""
        k = bisect.bisect_right(self.offsets, at) - 1
        if k >= len(self.starts):
            return self.next << 16
        return self.starts[k] << 16 | (at - self.offsets[k])

    def where(self, at: int) -> str:
        """``URL: byte B (a BGZF block), uncompressed byte U in it`` for place ``at``."""
        v = self.voffset(at)
        return f"{self.url}: byte {v >> 16} (a BGZF block), uncompressed byte {v & 0xFFFF} in it"


def check_eof_marker(blocks: Blocks) -> None:
    """The last block of a BAM file is bgzip's empty end-of-file block: without it, the file
    was cut at a block boundary and records are missing."""
    blocks.ensure(len(blocks.data) + 1)  # read to the end
    if not blocks.starts or blocks.offsets[-1] != blocks.offsets[-2]:
        raise FormatError(
            f"{blocks.url}: byte {blocks.size}: the file has no BGZF end-of-file block (an"
            " empty block): it was cut short"
        )

"""The BAM header (magic, SAM header text, references), and what is kept of a file version."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._errors import FormatError
from ._bam_blocks import Blocks
from ._base import KeptMetadata, RangeSource

MAGIC = b"BAM\x01"
#: The largest ``block_size`` believed (a 100 Mbp read with qualities is about 150 MB);
#: also the largest count a header field may hold.
MAX_RECORD = 2**28
_I32 = struct.Struct("<i")


@dataclass(frozen=True)
class BamHeader:
    """The header of one BAM file: SAM header text and the references."""

    text: str
    names: tuple[str, ...]
    lengths: tuple[int, ...]
    #: The virtual offset of the first record (where the header ends).
    first: int
    #: Whether any record follows the header.
    has_records: bool = True

    def ref_id(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            shown = ", ".join(self.names[:8]) + (", ..." if len(self.names) > 8 else "")
            raise ValueError(f"no reference {name!r} in this BAM (it has {shown})") from None


def read_header(source: RangeSource) -> BamHeader:
    """The header at the start of ``source``; FormatError naming the place when it is not one."""
    blocks = Blocks(source, 0, source.head())
    need = _Need(blocks, "the header")
    need(4)
    if bytes(blocks.data[:4]) != MAGIC:
        raise FormatError(
            f"{blocks.where(0)}: not a BAM file: expected the magic {MAGIC!r}, found"
            f" {bytes(blocks.data[:4])!r}"
        )
    l_text = need.count(4, "l_text")
    need(8 + l_text + 4)
    text = bytes(blocks.data[8 : 8 + l_text]).rstrip(b"\0").decode("utf-8", "replace")
    at = 8 + l_text
    n_ref = need.count(at, "n_ref")
    at += 4
    names, lengths = [], []
    for _ in range(n_ref):
        need(at + 4)
        l_name = need.count(at, "l_name", least=1)
        need(at + 4 + l_name + 4)
        raw = bytes(blocks.data[at + 4 : at + 4 + l_name])
        if raw[-1:] != b"\0":
            raise FormatError(f"{blocks.where(at + 4)}: a reference name without its NUL")
        names.append(raw[:-1].decode("utf-8", "replace"))
        lengths.append(need.count(at + 4 + l_name, "l_ref"))
        at += 8 + l_name
    more = blocks.ensure(at + 1)
    return BamHeader(text, tuple(names), tuple(lengths), blocks.voffset(at), more)


class _Need:
    """Makes ``n`` bytes of ``blocks`` available, or says the file ended inside ``what``."""

    def __init__(self, blocks: Blocks, what: str) -> None:
        self.blocks, self.what = blocks, what

    def __call__(self, n: int) -> None:
        if not self.blocks.ensure(n):
            raise FormatError(
                f"{self.blocks.url}: the file ends inside {self.what} (at uncompressed byte"
                f" {len(self.blocks.data)} of it, {n} needed)"
            )

    def count(self, at: int, what: str, least: int = 0) -> int:
        self(at + 4)
        (value,) = _I32.unpack_from(self.blocks.data, at)
        if value < least or value > MAX_RECORD:
            raise FormatError(f"{self.blocks.where(at)}: {what} is {value}: not a valid header")
        return int(value)


#: Each file version's header and index, as read first.
KEPT = KeptMetadata()

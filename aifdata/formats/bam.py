"""BAM: alignments split at record starts inside BGZF blocks, by guessing or from a ``.bai``.

A BAM file is BGZF (gzip blocks of at most 64 KiB that carry their size)
holding a binary header (``BAM\\1``, the SAM header text, the references)
and then alignment records, each led by its length (``block_size``). A
record may start anywhere in a block and run on into the next ones, so a
partition is a range of *virtual offsets* ``[start, end)`` (a block's file
offset << 16 | an offset in its inflated bytes), and holds the records that
start in it. Its spec also holds nothing else but, for a region, the
reference and the interval; the header travels by being read again at read
time (once per file version and process, see :class:`KeptMetadata`).

**Without an index** each nominal split offset (evenly spread over the
compressed file) is snapped to the first BGZF block at or after it, then to
the first record start in the inflated bytes from there, found by
:func:`record_length` and confirmed by a chain of :data:`CHAIN` records, as
Hadoop-BAM's split guesser does. The rule a record must pass at offset ``p``:

* ``block_size`` at most :data:`MAX_RECORD` and at least the fixed 32 bytes
  plus the name, CIGAR, sequence and quality the record's own counts ask for;
* ``refID`` and ``next_refID`` in ``-1 .. n_ref - 1``, ``pos`` and
  ``next_pos`` at least ``-1``, ``l_read_name`` at least 1;
* the read name is ``l_read_name - 1`` printable bytes (33..126) then a NUL;
* every CIGAR operation is one of ``MIDNSHP=X`` (codes 0..8), and when the
  record has both a CIGAR and a sequence the query length the CIGAR consumes
  is ``l_seq`` (htslib refuses such a record too);
* the quality bytes are all 0xFF (absent) or all at most 93 (``'~'`` - 33);
* the tags fill the rest of the record exactly: two-letter names, known type
  codes, NUL-terminated strings, arrays whose declared sizes fit.

Why data cannot pass by chance: read names and strings are printable, so a
``block_size`` read from them is over 500 MB (refused); quality bytes and
2-bit bases give small integers but then the name, the NUL at the place
``l_read_name`` says, the CIGAR codes and the tag walk that must land on the
record's last byte all have to hold, three records in a row. Data *built* to
look like records can pass: a ``B`` array tag, or a quality string, holding
encoded records that end where the real record ends (the fake chain then
runs on into the real one). So the search does not start at the block where
the split falls, but one block earlier (or at the first record, when that is
near): the first chain found there is followed record by record up to the
split's block, which steps over a record that straddles the split whole,
look-alike bytes in it and all. To fool that, a crafted record must fill a
whole BGZF block (over 64 KiB) and hold a fake chain. Should a guess still be
fooled, the partition before it notices: its last record then runs past the
partition's end, which never happens at a true record start, and reading
raises :class:`~aifdata.FormatError` instead of returning wrong records. A
``.bai`` (planning with an index) is not guessed.

**With a ``.bai``** beside the file (``reads.bam.bai`` or ``reads.bai``), the
plan takes its split points from the index's linear index (record starts
every 16 kbp), and ``region="chr1:1-100000"`` (1-based, inclusive, as
samtools) or ``region="chr1"`` plans only the records overlapping that
interval, as ``pysam.AlignmentFile.fetch`` returns them, in ``n`` partitions
cut at the linear index's offsets. Planning reads the header, the index,
and checks each split point it uses (one read each: the point must be a BGZF
block and hold a record by the rule above): an index for another file, or cut
short, is refused (``region=``) or ignored with a warning (a plain plan).

Records come out as :class:`Alignment` (pysam's attribute names, 0-based
``reference_start``, qualities as ``array('B')``, tags decoded on demand by
``get_tags()``), or as an Arrow table (:meth:`BamFormat.to_arrow`). They are
decoded here (numpy gathers the fields of a few thousand records at a time),
not by htslib: a partition reads its blocks in one request, more only for a
record that runs on past them. A record that runs past the end of the file, a
BGZF block cut short or failing its CRC, a missing end-of-file block, or a
``block_size`` that disagrees with the record's own counts raise
:class:`~aifdata.FormatError` naming the block's file offset and the byte in
it. CSI indexes and CRAM are not read; a record with more than 65535 CIGAR
operations (its real CIGAR in a ``CG`` tag) is returned as stored.
"""

from __future__ import annotations

import array
import bisect
import copy
import functools
import itertools
import re
import struct
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from .._config import Config
from .._errors import FormatError
from .._gc import gc_paused
from ..codecs import bgzf
from . import _bai
from ._base import (
    FormatPlugin,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)

_T = TypeVar("_T")
MAGIC = b"BAM\x01"
MAX_BLOCK = bgzf.MAX_BLOCK
#: Records in a row that must pass the rule before a guessed start is believed.
CHAIN = 3
#: The largest ``block_size`` believed (a 100 Mbp read with qualities is about 150 MB).
MAX_RECORD = 2**28
#: File bytes read at each guessed split (a block start lies in the first 64 KiB).
GUESS_WINDOW = 3 * MAX_BLOCK + 64
#: File bytes before a guessed split where the search for a record starts (one block).
LOOK_BACK = MAX_BLOCK + 64
#: Split points looked up at once (each one small read: latency, not bandwidth).
PLAN_THREADS = 16

_FIXED = struct.Struct("<iiiBBHHHiiii")  # block_size .. tlen: 36 bytes
_DTYPE = [("bs", "<i4"), ("ref", "<i4"), ("pos", "<i4"), ("lrn", "u1"), ("mapq", "u1"),
          ("bin", "<u2"), ("ncig", "<u2"), ("flag", "<u2"), ("lseq", "<i4"), ("nref", "<i4"),
          ("npos", "<i4"), ("tlen", "<i4")]  # fmt: skip
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_CIGAR_OPS = "MIDNSHP=X"
_QUERY_OPS = 0b110010011  # M I S = X consume the query
_REF_OPS = 0b110001101  # M D N = X consume the reference
_NAME_BYTES = bytes(range(33, 127))
_QUAL_BYTES = bytes(range(94))
_BASES = b"=ACMGRSVTWYHKDBN"
_PHRED = bytes((b + 33) & 0xFF for b in range(256))
_HIGH = bytes(_BASES[b >> 4] for b in range(256))
_LOW = bytes(_BASES[b & 15] for b in range(256))
_TAG_SIZES = {ord(c): n for c, n in zip("AcCsSiIf", (1, 1, 1, 2, 2, 4, 4, 4), strict=True)}
_ARRAY_CODES = {ord(c): t for c, t in zip("cCsSiIf", "bBhHiIf", strict=True)}
_SCALAR = {ord(c): struct.Struct("<" + t) for c, t in zip("cCsSiIf", "bBhHiIf", strict=True)}
_TAG_NAME0 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TAG_NAME1 = _TAG_NAME0 | frozenset(b"0123456789")
_LITTLE = sys.byteorder == "little"

__all__ = ["CHAIN", "MAX_RECORD", "Alignment", "BamFormat", "BamHeader", "record_length"]


class Alignment(NamedTuple):
    """One BAM record, named as pysam's ``AlignedSegment`` names it."""

    query_name: str
    flag: int
    reference_id: int
    reference_name: str | None
    reference_start: int  # 0-based; -1 when unplaced
    mapping_quality: int
    cigarstring: str | None
    next_reference_id: int
    next_reference_name: str | None
    next_reference_start: int
    template_length: int
    query_sequence: str | None
    query_qualities: array.array[int] | None  # phred values; None when absent
    tag_data: bytes  # the raw tags; get_tags() decodes them
    reference_end: int | None  # one past the last aligned base; None when unaligned

    @property
    def is_unmapped(self) -> bool:
        return bool(self.flag & 4)

    @property
    def is_secondary(self) -> bool:
        return bool(self.flag & 256)

    @property
    def is_supplementary(self) -> bool:
        return bool(self.flag & 2048)

    def get_tags(self) -> list[tuple[str, Any]]:
        """The tags as ``(name, value)`` pairs, as pysam's ``get_tags()`` gives them."""
        return decode_tags(self.tag_data)


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


class BamFormat(FormatPlugin):
    """BAM alignments (BGZF), split at record starts; by region with a ``.bai``."""

    name = "bam"
    extensions = (".bam",)
    description = "BAM alignments; split at record starts in BGZF blocks, by region with a .bai"
    codecs = ("bgzf",)

    def sniff(self, head: bytes, path: str) -> bool:
        try:
            return bgzf.Bgzf().peek(head, path).startswith(MAGIC)
        except FormatError:
            return False

    def explain(self, head: bytes, url: str) -> str:
        if bgzf.block_size_at(head, 0) is None:
            return (
                f"{url}: byte 0: this is not a BAM file: expected a BGZF block (gzip with a BC"
                f" field), found {head[:16]!r}"
            )
        try:
            text = bgzf.Bgzf().peek(head, url)
        except FormatError as exc:
            return str(exc)
        return (
            f"{url}: byte 0 (a BGZF block), uncompressed byte 0: this is not a BAM file:"
            f" expected the magic {MAGIC!r}, found {text[:16]!r}"
        )

    def header(self, source: RangeSource) -> BamHeader:
        """The file's header: read once per file version and process, then kept."""
        slot = _KEPT.slot(source)
        found: BamHeader | None = slot.get("header")
        if found is None:
            found = slot["header"] = read_header(source)
        return found

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        region: str | None = None,
        index: bool | None = None,
    ) -> list[Partition]:
        """Partitions of the file, or of ``region`` (``"chr1:1-1000"``, ``"chr1"``: needs
        the ``.bai``). ``index``: False plans without the ``.bai`` even when there is one."""
        partition_count(0, n, target_bytes)  # refuse a bad n or target_bytes early
        self.checked_head(source)
        header = self.header(source)
        if not header.has_records:
            return []
        bai = None
        if region is not None or index is not False:
            try:
                bai = load_index(source, header)
            except FormatError as exc:
                if region is not None:
                    raise
                warnings.warn(f"{exc}; planning without the index", stacklevel=2)
        if region is not None:
            if bai is None:
                raise FormatError(
                    f"{source.url}: region={region!r} needs a BAM index (.bai) beside the file;"
                    " none found (samtools index makes one)"
                )
            return self._plan_region(source, header, bai[0], region, n, target_bytes)
        starts = None
        if bai is not None:
            try:
                starts = indexed_starts(source, header, bai[0], n, target_bytes)
            except FormatError as exc:
                warnings.warn(f"{bai[1]}: {exc}; planning without the index", stacklevel=2)
        if starts is None:
            starts = guessed_starts(source, header, n, target_bytes)
        bounds = [*sorted({header.first, *starts}), source.size << 16]
        fingerprint = source.fingerprint
        return [
            Partition.make(source.url, self.name, i, fingerprint, chunks=((a, b),), region=None)
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
        ]

    def _plan_region(
        self, source: RangeSource, header: BamHeader, bai: _bai.Bai, region: str,
        n: int | None, target_bytes: int | None,
    ) -> list[Partition]:  # fmt: skip
        ref, beg, end = parse_region(region, header, source.url)
        chunks = bai.chunks(ref, beg, end)
        if not chunks:
            return []
        size = sum(max(1, (b >> 16) - (a >> 16)) for a, b in chunks)
        count = partition_count(size, n, target_bytes)
        shift = _bai.WINDOW_SHIFT
        windows = bai.refs[ref].linear[beg >> shift : (end - 1 >> shift) + 1]
        inside = sorted({v for v in windows if any(a < v < b for a, b in chunks)})
        cuts = pick(inside, nominal_points(chunks, count))
        checked = check_starts(source, header, cuts)
        if checked is not None:
            raise FormatError(f"{source.url}.bai: {checked} (refusing the index)")
        pieces = cut_chunks(chunks, cuts)
        fingerprint = source.fingerprint
        span = (header.names[ref], beg, end)
        return [
            Partition.make(source.url, self.name, i, fingerprint, chunks=piece, region=span)
            for i, piece in enumerate(pieces)
        ]

    def read(
        self,
        partition: Partition,
        source: RangeSource | None = None,
        config: Config | None = None,
        as_arrow: bool = False,
        **options: Any,
    ) -> Any:
        """The partition's records, as :class:`Alignment` (or an Arrow table, ``as_arrow``)."""
        if options:
            raise TypeError(f"the bam format's read() takes no option {', '.join(options)}")
        source = open_source(partition, source, config)
        header = self.header(source)
        region = partition["region"]
        span = None if region is None else (header.ref_id(region[0]), region[1], region[2])
        pieces = [read_chunk(source, header, a, b, span) for a, b in partition["chunks"]]
        if as_arrow:
            return to_arrow(pieces)
        return [record for piece in pieces for record in piece.alignments()]

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A ``pyarrow.Table``, a row per record (tags as SAM text)."""
        return self.read(partition, as_arrow=True, **options)

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        return self.to_arrow(partition, **options).to_pandas()


# -- inflated blocks ----------------------------------------------------------------


class Blocks:
    """The inflated bytes of a run of BGZF blocks from one block start on, read as needed,
    and the map between places in them and virtual offsets."""

    def __init__(self, source: RangeSource, start: int, raw: bytes = b"") -> None:
        self.source, self.url, self.size = source, source.url, source.size
        self.data = bytearray()
        self.starts: list[int] = []  # file offset of each inflated block
        self.offsets: list[int] = [0]  # where each block's bytes begin in data (then the end)
        self.next = start  # the file offset of the first block not inflated yet
        self.raw = raw  # file bytes from self.next on, not inflated yet

    @property
    def eof(self) -> bool:
        return self.next >= self.size

    def grow(self, window: int = GUESS_WINDOW) -> bool:
        """Inflate at least one more block (reading more of the file if needed); False at
        the end of the file."""
        while not self.eof:
            used = 0
            for at, piece, n in bgzf._blocks(self.raw, self.url, self.next):
                self.starts.append(at)
                self.data += piece
                self.offsets.append(len(self.data))
                used += n
            if used:
                self.raw = self.raw[used:]
                self.next += used
                return True
            have = self.next + len(self.raw)
            more = self.source.read(have, have + max(window, MAX_BLOCK))
            if not more:
                raise FormatError(
                    f"{self.url}: byte {self.next}: a BGZF block is cut short (the file ends"
                    f" at byte {self.size})"
                )
            self.raw += more
        return False

    def ensure(self, n: int) -> bool:
        """Whether ``n`` inflated bytes are (or can be made) available."""
        while len(self.data) < n:
            if not self.grow(max(GUESS_WINDOW, n - len(self.data))):
                return False
        return True

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


# -- the header ----------------------------------------------------------------------


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


# -- the rule that tells a record start ------------------------------------------------


def record_length(data: bytes | bytearray, p: int, n_ref: int) -> int | None:
    """``4 + block_size`` when a record passes the rule at ``data[p]`` (see the module's
    docstring), 0 when none starts there, None when ``data`` ends before that is settled."""
    if p + 36 > len(data):
        return None
    bs, ref, pos, lrn, _, _, ncig, _, lseq, nref, npos, _ = _FIXED.unpack_from(data, p)
    if not (
        -1 <= ref < n_ref and -1 <= nref < n_ref and pos >= -1 and npos >= -1 and lrn >= 1
        and 0 <= lseq <= MAX_RECORD and bs <= MAX_RECORD
        and 32 + lrn + 4 * ncig + ((lseq + 1) >> 1) + lseq <= bs
    ):  # fmt: skip
        return 0
    q = p + 36
    if q + lrn + 4 * ncig > len(data):
        return None
    name = data[q : q + lrn]
    if name[-1] != 0 or name[:-1].translate(None, _NAME_BYTES):
        return 0
    q += lrn
    consumed = 0
    for c in array_of_u32(data, q, ncig):
        if c & 15 > 8:
            return 0
        if _QUERY_OPS >> (c & 15) & 1:
            consumed += c >> 4
    if ncig and lseq and consumed != lseq:
        return 0
    q += 4 * ncig + ((lseq + 1) >> 1)
    end = p + 4 + bs
    if end > len(data):
        return None
    qual = data[q : q + lseq]
    if qual[:1] == b"\xff":
        if qual.translate(None, b"\xff"):
            return 0
    elif qual.translate(None, _QUAL_BYTES):
        return 0
    return 4 + bs if tags_fit(data, q + lseq, end) else 0


def tags_fit(data: bytes | bytearray, q: int, end: int) -> bool:
    """Whether ``data[q:end]`` is a run of well-formed tags that ends exactly at ``end``."""
    while q < end:
        if q + 3 > end or data[q] not in _TAG_NAME0 or data[q + 1] not in _TAG_NAME1:
            return False
        kind = data[q + 2]
        q += 3
        size = _TAG_SIZES.get(kind)
        if size is not None:
            q += size
        elif kind in (90, 72):  # Z, H: a NUL-terminated string
            nul = data.find(b"\0", q, end)
            if nul < 0:
                return False
            q = nul + 1
        elif kind == 66:  # B: subtype, count, values
            if q + 5 > end or data[q] not in _ARRAY_CODES:
                return False
            (count,) = _U32.unpack_from(data, q + 1)
            q += 5 + count * _TAG_SIZES[data[q]]
        else:
            return False
    return q == end


def array_of_u32(data: bytes | bytearray, at: int, count: int) -> array.array[int]:
    values = array.array("I", data[at : at + 4 * count])
    if not _LITTLE:  # pragma: no cover - BAM is little-endian
        values.byteswap()
    return values


def chain_holds(blocks: Blocks, p: int, n_ref: int, grow: bool = True) -> bool:
    """Whether :data:`CHAIN` records in a row pass the rule from ``blocks.data[p]`` (or the
    records there end the file exactly). ``grow`` False: bytes not read count as passing."""
    for _ in range(CHAIN):
        if p == len(blocks.data) and (blocks.eof or not grow):
            return True  # the records end the file exactly (or the bytes read)
        length = record_length(blocks.data, p, n_ref)
        while length is None:
            if not grow:
                return True
            if not blocks.grow():
                return False  # the file ends inside it
            length = record_length(blocks.data, p, n_ref)
        if not length:
            return False
        p += length
    return True


def first_record(blocks: Blocks, n_ref: int) -> int | None:
    """The first place in ``blocks`` where a chain of records passes the rule; None if
    none does before the end of the file."""
    p = 0
    while True:
        while p >= len(blocks.data):
            if not blocks.grow():
                return None
        if chain_holds(blocks, p, n_ref):
            return p
        p += 1


# -- planning ------------------------------------------------------------------------


def guessed_starts(
    source: RangeSource, header: BamHeader, n: int | None, target_bytes: int | None
) -> list[int]:
    """Record starts (virtual offsets) near evenly spread file offsets, found by the rule."""
    low = header.first >> 16
    count = partition_count(source.size - low, n, target_bytes, at_most=source.size - low)
    nominal = sorted({low + (source.size - low) * i // count for i in range(1, count)} - {low})
    if not nominal:
        return []
    with ThreadPoolExecutor(min(PLAN_THREADS, len(nominal))) as pool:
        found = pool.map(lambda offset: guess(source, header, offset), nominal)
        return sorted({v for v in found if v is not None and v > header.first})


def guess(source: RangeSource, header: BamHeader, offset: int) -> int | None:
    """The virtual offset of the first record that starts in or after the first BGZF block
    at or after file byte ``offset`` (None when none does).

    The search starts a block earlier (or at the first record, when that is near): the
    first chain found there is followed record by record to the block at ``offset``, so
    a record that straddles that block is stepped over whole, look-alike bytes in it
    included; only when that walk breaks does the search start at the block itself."""
    first = header.first >> 16
    low = max(first, offset - LOOK_BACK)
    window = source.read(low, offset + GUESS_WINDOW)
    at = block_in(window[offset - low :], offset, source.size)
    if at is None:
        return None
    target = offset + at
    back = 0 if low == first else block_in(window, low, source.size)
    if back is None or low + back >= target:
        return _first_at(source, header, target, window[offset - low + at :])
    blocks = Blocks(source, low + back, window[back:])
    p = blocks.position(header.first) if low == first else first_record(blocks, len(header.names))
    goal = blocks.position(target << 16)
    while p is not None and p < goal:
        length = record_length(blocks.data, p, len(header.names))
        while length is None and blocks.grow():
            length = record_length(blocks.data, p, len(header.names))
        if not length:
            return _first_at(source, header, target, window[offset - low + at :])
        p += length
        goal = blocks.position(target << 16)
    if p is None or (p >= len(blocks.data) and blocks.eof):
        return None
    return blocks.voffset(p)


def _first_at(source: RangeSource, header: BamHeader, block: int, raw: bytes) -> int | None:
    """The first record start the rule finds from BGZF block ``block`` on."""
    blocks = Blocks(source, block, raw)
    found = first_record(blocks, len(header.names))
    return None if found is None else blocks.voffset(found)


def block_in(window: bytes, offset: int, size: int) -> int | None:
    """Where the first BGZF block starts in ``window`` (file byte ``offset``), confirmed by
    the block after it; None when none does (the end of the file)."""
    pos = window.find(bgzf._MAGIC)
    while pos >= 0:
        length = bgzf.block_size_at(window, pos)
        if length is not None:
            after = pos + length
            if offset + after >= size or bgzf.block_size_at(window, after) is not None:
                return pos
            if after + 18 > len(window):
                return pos  # the next header lies past the window: trust the size field
        pos = window.find(bgzf._MAGIC, pos + 1)
    return None


def load_index(source: RangeSource, header: BamHeader) -> tuple[_bai.Bai, str] | None:
    """The ``.bai`` beside ``source`` (``X.bam.bai``, then ``X.bai``) parsed and checked, and
    its URL; None when there is none. Kept per version of both files."""
    for suffix, cut in ((".bai", 0), (".bai", 4)):
        if cut and not source.url.lower().endswith(".bam"):
            continue
        sibling = _sibling(source, suffix, cut)
        try:
            fingerprint = sibling.fingerprint
        except FileNotFoundError:
            continue
        finally:
            source.requests += sibling.requests + 1  # the look at its size and date
        slot = _KEPT.slot(source)
        key = ("bai", sibling.url, fingerprint)
        found: _bai.Bai | None = slot.get(key)
        if found is None:
            data = sibling.read(0, sibling.size)
            source.requests += 1
            source.bytes_read += len(data)
            found = slot[key] = _bai.parse(data, sibling.url, len(header.names), source.size)
        return found, sibling.url
    return None


def _sibling(source: RangeSource, suffix: str, cut: int) -> RangeSource:
    """A source for the file beside ``source`` named like it, less ``cut`` characters, plus
    ``suffix`` (on the same filesystem)."""
    sibling = copy.copy(source)
    for kept in ("info", "_head"):
        sibling.__dict__.pop(kept, None)
    base_url = source.url[: len(source.url) - cut]
    base_path = source.path[: len(source.path) - cut]
    sibling.url, sibling.path = base_url + suffix, base_path + suffix
    sibling.requests = sibling.bytes_read = 0
    sibling._count_lock = threading.Lock()
    return sibling


def indexed_starts(
    source: RangeSource, header: BamHeader, bai: _bai.Bai, n: int | None,
    target_bytes: int | None,
) -> list[int]:  # fmt: skip
    """Record starts to split the whole file at, from the index's linear index, each checked
    (FormatError when one does not hold a record: the index is not this file's)."""
    low = header.first >> 16
    count = partition_count(source.size - low, n, target_bytes, at_most=source.size - low)
    candidates = sorted({v for ref in range(len(bai.refs)) for v in bai.starts(ref)})
    candidates = [v for v in candidates if v > header.first]
    nominal = [(low + (source.size - low) * i // count) << 16 for i in range(1, count)]
    chosen = pick(candidates, nominal)
    problem = check_starts(source, header, chosen)
    if problem is not None:
        raise FormatError(problem)
    return chosen


def pick(candidates: list[int], nominal: list[int]) -> list[int]:
    """For each nominal virtual offset, the first candidate at or after it (each once)."""
    chosen = set()
    for v in nominal:
        k = bisect.bisect_left(candidates, v)
        if k < len(candidates):
            chosen.add(candidates[k])
    return sorted(chosen)


def nominal_points(chunks: list[tuple[int, int]], count: int) -> list[int]:
    """``count - 1`` virtual offsets spread evenly (by compressed bytes) over ``chunks``."""
    sizes = [max(1, (b >> 16) - (a >> 16)) for a, b in chunks]
    total = sum(sizes)
    points, before = [], 0
    targets = [total * i // count for i in range(1, count)]
    for (a, _), size in zip(chunks, sizes, strict=True):
        while targets and targets[0] < before + size:
            points.append(((a >> 16) + targets.pop(0) - before) << 16)
        before += size
    return points


def cut_chunks(chunks: list[tuple[int, int]], cuts: list[int]) -> list[tuple[tuple[int, int], ...]]:
    """``chunks`` split at the virtual offsets ``cuts`` (each inside a chunk): one tuple of
    chunks per piece."""
    pieces: list[tuple[tuple[int, int], ...]] = []
    current: list[tuple[int, int]] = []
    pending = sorted(cuts)
    for a, b in chunks:
        while pending and a < pending[0] < b:
            current.append((a, pending[0]))
            pieces.append(tuple(current))
            current, a = [], pending.pop(0)
        current.append((a, b))
    pieces.append(tuple(current))
    return pieces


def check_starts(source: RangeSource, header: BamHeader, starts: list[int]) -> str | None:
    """What is wrong with the first of ``starts`` (virtual offsets an index gave) that is not
    a BGZF block holding a record that passes the rule; None when all hold. One read each."""
    if not starts:
        return None

    def problem(v: int) -> str | None:
        block = v >> 16
        if block >= source.size:
            return f"virtual offset {v:#x} points past the end of the file"
        raw = source.read(block, block + 2 * MAX_BLOCK)
        if bgzf.block_size_at(raw, 0) is None:
            return f"virtual offset {v:#x}: no BGZF block starts at byte {block}"
        blocks = Blocks(source, block, raw)
        try:
            at = blocks.position(v)
        except FormatError as exc:
            return str(exc).partition(": ")[2]
        if not chain_holds(blocks, at, len(header.names), grow=False):
            return (
                f"virtual offset {v:#x} (byte {block}, uncompressed byte {v & 0xFFFF}) does not"
                " hold a BAM record: the index does not match this file"
            )
        return None

    with ThreadPoolExecutor(min(PLAN_THREADS, len(starts))) as pool:
        return next((found for found in pool.map(problem, starts) if found), None)


_REGION = re.compile(r"^(?P<name>.+?)(?::(?P<beg>[\d,]+)?(?:-(?P<end>[\d,]+)?)?)?$")


def parse_region(region: str, header: BamHeader, url: str = "") -> tuple[int, int, int]:
    """``(ref id, beg, end)``, 0-based half open, of a samtools region (``chr1``,
    ``chr1:100``, ``chr1:100-200``: 1-based, inclusive). A whole reference name wins over
    a reading with a colon (``HLA-A*01:01``). FormatError (a ValueError) naming ``url``
    when the region does not parse or names no reference of the header."""
    try:
        return _region(region, header)
    except ValueError as exc:
        raise FormatError(f"{url or 'BAM'}: {exc}") from None


def _region(region: str, header: BamHeader) -> tuple[int, int, int]:
    if region in header.names:
        ref = header.names.index(region)
        return ref, 0, max(header.lengths[ref], 1 << 29)
    name, colon, span = region.rpartition(":")
    ref = header.ref_id(name if colon else region)
    first, _, last = span.replace(",", "").partition("-")
    try:
        beg = int(first) - 1 if first else 0
        end = int(last) if last else max(header.lengths[ref], 1 << 29)
    except ValueError:
        raise ValueError(f"region {region!r}: expected NAME, NAME:BEG or NAME:BEG-END") from None
    if beg < 0 or end <= beg:
        raise ValueError(f"region {region!r}: an empty or negative interval")
    return ref, beg, end


# -- reading -------------------------------------------------------------------------


def read_chunk(
    source: RangeSource, header: BamHeader, start: int, end: int,
    region: tuple[int, int, int] | None = None,
) -> Columns:  # fmt: skip
    """The records that start at virtual offsets ``[start, end)`` (overlapping ``region``,
    when given), from one read of their blocks (more only for records that run past them)."""
    first, last = start >> 16, end >> 16
    stop = min(source.size, last + (2 * MAX_BLOCK if end & 0xFFFF else 0))
    blocks = Blocks(source, first, source.read(first, stop))
    p = blocks.position(start)
    limit = blocks.position(end)
    if p < limit:
        blocks.ensure(p + 36)
        length = record_length(blocks.data, p, len(header.names))
        while length is None and blocks.grow():
            length = record_length(blocks.data, p, len(header.names))
        if not length:
            raise FormatError(
                f"{blocks.where(p)}: expected a BAM record at this partition's start"
                f" (virtual offset {start:#x}); the plan or its index does not match the file"
            )
    records = decode(blocks, p, limit, header, region)
    if last >= source.size:
        check_eof_marker(blocks)
    return records


#: The columns :func:`decode` fills, in :class:`Alignment`'s order (less the derived ones).
COLUMNS = (
    "query_name", "flag", "reference_id", "reference_start", "mapping_quality", "cigarstring",
    "next_reference_id", "next_reference_start", "template_length", "reference_end",
)  # fmt: skip


class Columns(NamedTuple):
    """Decoded records as columns: what :class:`Alignment` tuples and Arrow tables are
    built from."""

    fields: dict[str, list[Any]]
    sequences: list[str | None]
    qualities: list[bytes | None]  # raw phred values; None when absent
    tags: list[bytes]
    names: tuple[str | None, ...]  # reference names, then None (index -1)

    def alignments(self) -> list[Alignment]:
        with gc_paused():
            return self._alignments()

    def _alignments(self) -> list[Alignment]:
        f, names = self.fields, self.names
        make = functools.partial(tuple.__new__, Alignment)  # what _make does, without a call
        quals = [None if q is None else array.array("B", q) for q in self.qualities]
        refs = [names[r] for r in f["reference_id"]]
        mates = [names[r] for r in f["next_reference_id"]]
        return list(map(make, zip(
            f["query_name"], f["flag"], f["reference_id"], refs, f["reference_start"],
            f["mapping_quality"], f["cigarstring"], f["next_reference_id"], mates,
            f["next_reference_start"], f["template_length"], self.sequences, quals, self.tags,
            f["reference_end"], strict=True,
        )))  # fmt: skip


def decode(
    blocks: Blocks, p: int, limit: int, header: BamHeader,
    region: tuple[int, int, int] | None,
) -> Columns:  # fmt: skip
    """The records from ``blocks.data[p]`` up to (not from) ``limit``, as columns; the last
    one must end exactly there (a partition boundary is a record start).

    The records are found one by one (each starts where the one before ends), then
    decoded in batches with numpy: fixed fields, names, sequences, qualities and tags
    each gathered in one go, so Python touches each record only a few times."""
    starts = walk(blocks, p, limit)
    columns = Columns({name: [] for name in COLUMNS}, [], [], [], (*header.names, None))
    with gc_paused():
        for i in range(0, len(starts), BATCH):
            _decode_batch(blocks, starts[i : i + BATCH], header, region, columns)
    return columns


#: Records decoded together (numpy index arrays of a few MB).
BATCH = 4096


def walk(blocks: Blocks, p: int, limit: int) -> list[int]:
    """Where each record from ``p`` up to ``limit`` starts (reading on for a record that runs
    past the bytes held); FormatError when one runs past the end of the file or past
    ``limit``."""
    data = blocks.data
    unpack = _I32.unpack_from
    starts = []
    while p < limit:
        if p + 36 > len(data) and not blocks.ensure(p + 36):
            raise FormatError(f"{blocks.where(p)}: the file ends inside a record's fixed fields")
        (bs,) = unpack(data, p)
        end = p + 4 + bs
        if bs < 32 or (end > len(data) and (bs > MAX_RECORD or not blocks.ensure(end))):
            raise FormatError(
                f"{blocks.where(p)}: a record of block_size {bs} runs past the end of the"
                f" file (byte {blocks.size})"
                if bs >= 32
                else f"{blocks.where(p)}: not a valid BAM record ({_fault(data, p)})"
            )
        starts.append(p)
        p = end
    if p != limit:
        raise FormatError(
            f"{blocks.where(p)}: the last record of this partition ends past the partition's"
            f" end (virtual offset {blocks.voffset(limit):#x}): that boundary is not a record"
            " start (a .bai of another file, or a split guess fooled by crafted data; plan"
            " with an index, or with index=False)"
        )
    return starts


def _decode_batch(
    blocks: Blocks, starts: list[int], header: BamHeader, region: tuple[int, int, int] | None,
    out: Columns,
) -> None:  # fmt: skip
    import numpy as np

    buf = np.frombuffer(blocks.data, np.uint8)
    try:
        offs = np.asarray(starts, np.int64)
        fixed = buf[offs[:, None] + np.arange(36)].view(_DTYPE).ravel()
        lrn = fixed["lrn"].astype(np.int64)
        ncig = fixed["ncig"].astype(np.int64)
        lseq = fixed["lseq"].astype(np.int64)
        nseq = (lseq + 1) >> 1
        names_at = offs + 36
        cigar_at = names_at + lrn
        seq_at = cigar_at + 4 * ncig
        qual_at = seq_at + nseq
        tags_at = qual_at + lseq
        ends = offs + 4 + fixed["bs"]
        n_ref = len(header.names)
        good = (
            (lrn >= 1) & (lseq >= 0) & (tags_at <= ends)
            & (fixed["ref"] >= -1) & (fixed["ref"] < n_ref)
            & (fixed["nref"] >= -1) & (fixed["nref"] < n_ref)
        )  # fmt: skip
        good[good] &= buf[(cigar_at - 1)[good]] == 0
        if not good.all():
            at = int(offs[np.argmin(good)])
            raise FormatError(f"{blocks.where(at)}: not a valid BAM record"
                              f" ({_fault(blocks.data, at)})")  # fmt: skip
        names = _names(blocks, _gather(buf, names_at, lrn), starts)
        seqs = _gather(buf, seq_at, nseq)
        bounds = [x.tolist() for x in (cigar_at, seq_at, qual_at, tags_at, ends)]
        columns = {key: fixed[key].tolist() for key in ("flag", "ref", "pos", "mapq", "nref",
                                                        "npos", "tlen")}  # fmt: skip
        lengths = lseq.tolist()
    finally:
        del buf  # the bytes may grow again (a last look for the end-of-file block)
    base = starts[0]
    data = bytes(blocks.data[base : bounds[4][-1]])  # one copy: slices of it are bytes
    cigar_at_, seq_at_, qual_at_, tags_at_, ends_ = ([v - base for v in b] for b in bounds)
    cigars = [data[a:b] for a, b in zip(cigar_at_, seq_at_, strict=True)]
    quals = [data[a:b] for a, b in zip(qual_at_, tags_at_, strict=True)]
    tags = [data[a:b] for a, b in zip(tags_at_, ends_, strict=True)]
    known: dict[bytes, tuple[str | None, int]] = {}
    texts, spans = [], []
    for i, raw in enumerate(cigars):
        found = known.get(raw)
        if found is None:
            found = known[raw] = _cigar(raw, blocks.where(starts[i])) if raw else (None, 0)
        texts.append(found[0])
        spans.append(found[1])
    for i, raw in enumerate(tags):
        fault = tags_fault(raw)
        if fault is not None:
            raise FormatError(f"{blocks.where(starts[i])}: not a valid BAM record ({fault})")
    flags, refs, poss = columns["flag"], columns["ref"], columns["pos"]
    ends_at = [  # as htslib: a CIGAR on no reference bases ends at pos + 1
        pos + max(span, 1) if text is not None and not flag & 4 else None
        for pos, span, flag, text in zip(poss, spans, flags, texts, strict=True)
    ]
    sequences_ = sequences_of(seqs, lengths)
    qualities = [q if q[:1] != b"\xff" and q else None for q in quals]
    keep: list[int] | None = None
    if region is not None:
        ref_id, beg, end = region
        keep = [
            i for i, (r, pos, e) in enumerate(zip(refs, poss, ends_at, strict=True))
            if r == ref_id and pos < end and (pos + 1 if e is None else e) > beg
        ]  # fmt: skip
    fields = {
        "query_name": names, "flag": flags, "reference_id": refs, "reference_start": poss,
        "mapping_quality": columns["mapq"], "cigarstring": texts,
        "next_reference_id": columns["nref"], "next_reference_start": columns["npos"],
        "template_length": columns["tlen"], "reference_end": ends_at,
    }  # fmt: skip
    for key, values in fields.items():
        out.fields[key].extend(_kept(values, keep))
    out.sequences.extend(_kept(sequences_, keep))
    out.qualities.extend(_kept(qualities, keep))
    out.tags.extend(_kept(tags, keep))


def _kept(values: list[_T], keep: list[int] | None) -> list[_T]:
    return values if keep is None else [values[i] for i in keep]


def _gather(buf: Any, at: Any, lengths: Any) -> bytes:
    """The bytes ``buf[at[i] : at[i] + lengths[i]]`` of every ``i``, joined."""
    import numpy as np

    total = int(lengths.sum())
    if total == 0:
        return b""
    ends = np.cumsum(lengths)
    index = np.repeat(at - (ends - lengths), lengths) + np.arange(total)
    return bytes(buf[index].tobytes())


def _names(blocks: Blocks, joined: bytes, starts: list[int]) -> list[str]:
    """The read names, each NUL-terminated in ``joined``."""
    try:
        names = joined.decode("ascii").split("\0")[:-1]
    except UnicodeDecodeError as exc:
        at = starts[joined.count(b"\0", 0, exc.start)]
        raise FormatError(f"{blocks.where(at + 36)}: a read name that is not ASCII") from None
    if len(names) != len(starts):
        raise FormatError(f"{blocks.where(starts[0])}: a read name holds a NUL byte")
    return names


def _cigar(raw: bytes, where: str) -> tuple[str, int]:
    """The text of a raw CIGAR and the reference bases it spans."""
    ops = array_of_u32(raw, 0, len(raw) // 4)
    try:
        text = "".join([f"{c >> 4}{_CIGAR_OPS[c & 15]}" for c in ops])
    except IndexError:
        raise FormatError(f"{where}: a CIGAR operation code above 8") from None
    return text, sum([c >> 4 for c in ops if _REF_OPS >> (c & 15) & 1])


def sequences_of(joined: bytes, lengths: list[int]) -> list[str | None]:
    """The bases of each record from its 4-bit codes (``joined``), all unpacked at once."""
    bases = bytearray(2 * len(joined))
    bases[0::2] = joined.translate(_HIGH)
    bases[1::2] = joined.translate(_LOW)
    text = bases.decode("ascii")
    starts = itertools.accumulate([(n + 1) >> 1 << 1 for n in lengths], initial=0)
    return [text[a : a + n] if n else None for a, n in zip(starts, lengths, strict=False)]


def _fault(data: bytes | bytearray, p: int) -> str:
    bs, ref, _, lrn, _, _, ncig, _, lseq, nref, _, _ = _FIXED.unpack_from(data, p)
    return (
        f"block_size {bs}, refID {ref}, next_refID {nref}, l_read_name {lrn},"
        f" n_cigar_op {ncig}, l_seq {lseq}"
    )


def check_eof_marker(blocks: Blocks) -> None:
    """The last block of a BAM file is bgzip's empty end-of-file block: without it, the file
    was cut at a block boundary and records are missing."""
    blocks.ensure(len(blocks.data) + 1)  # read to the end
    if not blocks.starts or blocks.offsets[-1] != blocks.offsets[-2]:
        raise FormatError(
            f"{blocks.url}: byte {blocks.size}: the file has no BGZF end-of-file block (an"
            " empty block): it was cut short"
        )


def tags_fault(data: bytes) -> str | None:
    """What is wrong with a record's tag bytes (None: each tag is whole and of a known type)."""
    q, size = 0, len(data)
    while q < size:
        if q + 3 > size:
            return f"tag bytes cut short at tag byte {q}"
        kind = data[q + 2]
        q += 3
        if kind in _TAG_SIZES:
            q += _TAG_SIZES[kind]
        elif kind in (90, 72):  # Z, H
            q = data.find(b"\0", q) + 1
            if q == 0:
                return "a Z or H tag without its NUL"
        elif kind == 66:  # B
            if q + 5 > size or data[q] not in _ARRAY_CODES:
                return f"tag {data[q - 3 : q - 1]!r}: a B array cut short or of unknown subtype"
            q += 5 + _U32.unpack_from(data, q + 1)[0] * _TAG_SIZES[data[q]]
        else:
            return f"tag {data[q - 3 : q - 1]!r}: unknown tag type {chr(kind)!r}"
    return None if q == size else "the last tag runs past the record's end"


def decode_tags(data: bytes) -> list[tuple[str, Any]]:
    """Tags as pysam's ``get_tags()`` gives them: ints, floats, str, and arrays for ``B``."""
    out: list[tuple[str, Any]] = []
    q = 0
    while q < len(data):
        tag, kind = data[q : q + 2].decode("ascii"), data[q + 2]
        q += 3
        value: Any
        if kind == 65:  # A
            value, q = chr(data[q]), q + 1
        elif kind in _SCALAR:
            fmt = _SCALAR[kind]
            (value,) = fmt.unpack_from(data, q)
            q += fmt.size
        elif kind in (90, 72):  # Z, H
            nul = data.index(b"\0", q)
            value, q = data[q:nul].decode("utf-8", "replace"), nul + 1
        elif kind == 66:  # B
            code, (count,) = data[q], _U32.unpack_from(data, q + 1)
            width = _TAG_SIZES[code]
            value = array.array(_ARRAY_CODES[code], data[q + 5 : q + 5 + count * width])
            q += 5 + count * width
        else:
            raise ValueError(f"unknown tag type {chr(kind)!r} in tag {tag}")
        out.append((tag, value))
    return out


def tags_text(data: bytes) -> str:
    """The tags as SAM text (``NM:i:0\\tMD:Z:10``)."""
    fields = []
    for tag, value in decode_tags(data):
        if isinstance(value, array.array):
            code = {"b": "c", "B": "C", "h": "s", "H": "S", "i": "i", "I": "I", "f": "f"}
            items = ",".join(str(v) for v in value)
            fields.append(f"{tag}:B:{code[value.typecode]}{',' if items else ''}{items}")
        elif isinstance(value, float):
            fields.append(f"{tag}:f:{value:g}")
        elif isinstance(value, int):
            fields.append(f"{tag}:i:{value}")
        else:
            fields.append(f"{tag}:Z:{value}")
    return "\t".join(fields)


def to_arrow(pieces: list[Columns]) -> Any:
    """Decoded records as an Arrow table: :class:`Alignment`'s fields, qualities as SAM
    text (phred + 33), tags as SAM text."""
    import pyarrow as pa

    def column(name: str, kind: Any) -> Any:
        return pa.array([v for piece in pieces for v in piece.fields[name]], kind)

    def named(name: str) -> Any:
        return pa.array([piece.names[r] for piece in pieces for r in piece.fields[name]],
                        pa.string())  # fmt: skip

    quality = [
        None if q is None else q.translate(_PHRED).decode("ascii")
        for piece in pieces
        for q in piece.qualities
    ]
    return pa.table(
        {
            "query_name": column("query_name", pa.string()),
            "flag": column("flag", pa.uint16()),
            "reference_name": named("reference_id"),
            "reference_start": column("reference_start", pa.int64()),
            "reference_end": column("reference_end", pa.int64()),
            "mapping_quality": column("mapping_quality", pa.uint8()),
            "cigarstring": column("cigarstring", pa.string()),
            "next_reference_name": named("next_reference_id"),
            "next_reference_start": column("next_reference_start", pa.int64()),
            "template_length": column("template_length", pa.int64()),
            "query_sequence": pa.array([s for p in pieces for s in p.sequences], pa.string()),
            "query_qualities": pa.array(quality, pa.string()),
            "tags": pa.array(_tag_texts(pieces), pa.string()),
        }
    )


def _tag_texts(pieces: list[Columns]) -> list[str]:
    """Each record's tags as SAM text; records with the same tag bytes decoded once."""
    known: dict[bytes, str] = {}
    out = []
    for piece in pieces:
        for raw in piece.tags:
            text = known.get(raw)
            if text is None:
                text = known[raw] = tags_text(raw)
            out.append(text)
    return out


#: Each file version's header and index, as read first.
_KEPT = KeptMetadata()

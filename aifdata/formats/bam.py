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
Hadoop-BAM's split guesser does; the rule a record must pass, and why data
cannot pass it by chance, are told in :mod:`aifdata.formats._bam_guess`.
Should a guess be fooled, the partition before it notices: its last record
then runs past the partition's end, which never happens at a true record
start, and reading raises :class:`~aifdata.FormatError` instead of returning
wrong records. A ``.bai`` (planning with an index) is not guessed.

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

The plug-in is this module; its parts live in private modules: ``_bam_blocks``
(inflated blocks, virtual offsets), ``_bam_header``, ``_bam_tags``,
``_bam_records`` (decoding), ``_bam_guess`` (the record rule, split guessing)
and ``_bam_index`` (planning with a ``.bai``, regions). Their public names are
importable from here too.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

from .._config import Config
from .._errors import FormatError
from ..codecs import bgzf
from . import _bai, _bam_records
from ._bam_blocks import GUESS_WINDOW as GUESS_WINDOW
from ._bam_blocks import MAX_BLOCK as MAX_BLOCK
from ._bam_blocks import Blocks as Blocks
from ._bam_blocks import check_eof_marker as check_eof_marker
from ._bam_guess import CHAIN as CHAIN
from ._bam_guess import LOOK_BACK as LOOK_BACK
from ._bam_guess import PLAN_THREADS as PLAN_THREADS
from ._bam_guess import block_in as block_in
from ._bam_guess import chain_holds as chain_holds
from ._bam_guess import first_record as first_record
from ._bam_guess import guess as guess
from ._bam_guess import guessed_starts as guessed_starts
from ._bam_guess import record_length as record_length
from ._bam_header import KEPT as _KEPT
from ._bam_header import MAGIC as MAGIC
from ._bam_header import MAX_RECORD as MAX_RECORD
from ._bam_header import BamHeader as BamHeader
from ._bam_header import read_header as read_header
from ._bam_index import check_starts as check_starts
from ._bam_index import cut_chunks as cut_chunks
from ._bam_index import indexed_starts as indexed_starts
from ._bam_index import load_index as load_index
from ._bam_index import nominal_points as nominal_points
from ._bam_index import parse_region as parse_region
from ._bam_index import pick as pick
from ._bam_records import BATCH_BYTES as BATCH_BYTES
from ._bam_records import COLUMNS as COLUMNS
from ._bam_records import Alignment as Alignment
from ._bam_records import Columns as Columns
from ._bam_records import array_of_u32 as array_of_u32
from ._bam_records import decode as decode
from ._bam_records import to_arrow as to_arrow
from ._bam_records import walk as walk
from ._bam_tags import decode_tags as decode_tags
from ._bam_tags import tags_fault as tags_fault
from ._bam_tags import tags_fit as tags_fit
from ._bam_tags import tags_text as tags_text
from ._base import (
    FormatPlugin,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)

__all__ = ["CHAIN", "MAX_RECORD", "Alignment", "BamFormat", "BamHeader", "record_length"]


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


def read_chunk(
    source: RangeSource, header: BamHeader, start: int, end: int,
    region: tuple[int, int, int] | None = None,
) -> Columns:  # fmt: skip
    """The records that start at virtual offsets ``[start, end)`` (overlapping ``region``,
    when given), from one read of their blocks (more only for records that run past them)."""
    first, last = start >> 16, end >> 16
    stop = min(source.size, last + (2 * MAX_BLOCK if end & 0xFFFF else 0))
    blocks = Blocks(source, first, source.read(first, stop))
    blocks.step = _bam_records.BATCH_BYTES  # inflated a batch at a time, as decode() goes
    p = blocks.position(start)
    limit = blocks.held(end)
    if limit is None and p >= len(blocks.data):
        limit = blocks.position(end)  # the start is where the bytes held end
    if limit is None or p < limit:
        blocks.ensure(p + 36)
        length = record_length(blocks.data, p, len(header.names))
        while length is None and blocks.grow():
            length = record_length(blocks.data, p, len(header.names))
        if not length:
            raise FormatError(
                f"{blocks.where(p)}: expected a BAM record at this partition's start"
                f" (virtual offset {start:#x}); the plan or its index does not match the file"
            )
    records = decode(blocks, p, end, header, region)
    if last >= source.size:
        check_eof_marker(blocks)
    return records

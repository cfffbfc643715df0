"""Record starts inside BGZF blocks: the rule that tells one, and the guess of split points.

Without an index, each nominal split offset (evenly spread over the
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
raises :class:`~aifdata.FormatError` instead of returning wrong records.
"""

from __future__ import annotations

from .._threads import ThreadPool
from ..codecs import bgzf
from ._bam_blocks import GUESS_WINDOW, MAX_BLOCK, Blocks
from ._bam_header import MAX_RECORD, BamHeader
from ._bam_records import FIXED, array_of_u32
from ._bam_tags import tags_fit
from ._base import RangeSource, partition_count

#: Records in a row that must pass the rule before a guessed start is believed.
CHAIN = 3
#: File bytes before a guessed split where the search for a record starts (one block).
LOOK_BACK = MAX_BLOCK + 64
#: Split points looked up at once (each one small read: latency, not bandwidth).
PLAN_THREADS = 16
_QUERY_OPS = 0b110010011  # M I S = X consume the query
_NAME_BYTES = bytes(range(33, 127))
_QUAL_BYTES = bytes(range(94))


def record_length(data: bytes | bytearray, p: int, n_ref: int) -> int | None:
    """``4 + block_size`` when a record passes the rule at ``data[p]`` (see the module's
    docstring), 0 when none starts there, None when ``data`` ends before that is settled."""
    if p + 36 > len(data):
        return None
    bs, ref, pos, lrn, _, _, ncig, _, lseq, nref, npos, _ = FIXED.unpack_from(data, p)
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


def guessed_starts(
    source: RangeSource, header: BamHeader, n: int | None, target_bytes: int | None
) -> list[int]:
    """Record starts (virtual offsets) near evenly spread file offsets, found by the rule."""
    low = header.first >> 16
    count = partition_count(source.size - low, n, target_bytes, at_most=source.size - low)
    nominal = sorted({low + (source.size - low) * i // count for i in range(1, count)} - {low})
    if not nominal:
        return []
    with ThreadPool(min(PLAN_THREADS, len(nominal))) as pool:
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

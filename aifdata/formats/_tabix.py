"""Tabix (``.tbi``) and CSI (``.csi``) indexes of BGZF text files, read without htslib.

Both map a genomic interval to *chunks* of BGZF virtual offsets (the file
offset of a block, shifted left 16 bits, plus an offset in its inflated
bytes) through a binning scheme (SAMv1 section 5); tabix adds a linear index
(the first record of each 16 kb window), CSI a ``loffset`` per bin. A region
plan takes the records between the first and the last chunk that can hold a
record overlapping the region, and cuts that span at record starts the index
names (linear-index entries, chunk starts, bin ``loffset``\\ s), so planning
reads the index once and one BGZF block per partition (to check the cut).

An index is trusted only after checks that it belongs to the data file: its
offsets lie within the file; the records it covers end where the file's data
does (after its largest chunk end only empty BGZF blocks follow: one read of
the file's last bytes, once per version of both files), which refuses an index
left beside a file that was appended to or rewritten; at each offset a plan
starts a partition there is a BGZF block with a record of the expected contig
starting at the offset, and where a region's records end, a line ends after a
record of that contig. Anything else is a :class:`~aifdata.FormatError` naming
the index, the data file and the virtual offset, and saying to make the index
again. Modification times are not compared (htslib only warns when the index
is older than the data): copies and uploads reorder them, and the checks above
look at what the index says instead.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import FormatError
from .._threads import ThreadPool
from ..codecs import Codec, Text
from ..codecs.bgzf import MAX_BLOCK, decompress_blocks, inflate_first
from ._base import KeptMetadata, Partition, RangeSource, partition_count


class RegionFormat(Protocol):
    """What region planning needs of the format (VCF) whose records the index points at."""

    @property
    def name(self) -> str: ...

    def parse_region(self, region: str, contigs: tuple[str, ...] = ()) -> Any: ...

    def scan_header(self, source: RangeSource, codec: Codec) -> Any:
        """The header: its ``spec()`` travels in each partition, its ``header.contigs``
        are the contigs it declares."""


#: Index suffixes looked for beside a data file, in order.
SUFFIXES = (".tbi", ".csi")
#: tabix's preset for VCF (the low 16 bits of its format field).
TBX_VCF = 2
#: Bytes read past a block to check the record that starts at an offset in it.
CHECK_BYTES = 4096
_INDEXES = KeptMetadata()


@dataclass
class RefIndex:
    """The index of one contig: bins (chunks of virtual offsets), and where records start."""

    bins: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    loffsets: dict[int, int] = field(default_factory=dict)  # CSI: first record of each bin
    intervals: tuple[int, ...] = ()  # tabix: first record overlapping each window


@dataclass
class Index:
    """A parsed ``.tbi`` or ``.csi``: the contig names and each contig's bins."""

    url: str
    kind: str  # "tbi" or "csi"
    min_shift: int
    depth: int
    names: list[str]
    refs: list[RefIndex]

    @property
    def pseudo_bin(self) -> int:
        return ((1 << (3 * (self.depth + 1))) - 1) // 7 + 1

    def tid(self, contig: str) -> int | None:
        try:
            return self.names.index(contig)
        except ValueError:
            return None

    def chunks(self, ref: RefIndex) -> list[tuple[int, int]]:
        """The chunks of ``ref``'s bins, with the pseudo-bin's span of the contig's records
        (its second pair holds counts of records, not offsets)."""
        out = []
        for bin_, chunks in ref.bins.items():
            out += chunks[:1] if bin_ == self.pseudo_bin else chunks
        return out

    def largest_offset(self) -> int:
        """The largest virtual offset anywhere in the index."""
        best = self.data_end()
        for ref in self.refs:
            best = max(best, *ref.intervals, *ref.loffsets.values(), 0)
        return best

    def data_end(self) -> int:
        """Where the records the index covers end: the largest chunk end (0: none)."""
        return max((end for ref in self.refs for _, end in self.chunks(ref)), default=0)


class _Bytes:
    """Little-endian reads from the inflated index, naming the index when it is cut short."""

    def __init__(self, data: bytes, url: str) -> None:
        self.data, self.url, self.pos = data, url, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        try:
            values = struct.unpack_from(fmt, self.data, self.pos)
        except struct.error:
            raise FormatError(
                f"{self.url}: uncompressed byte {self.pos}: the index is cut short"
            ) from None
        self.pos += struct.calcsize(fmt)
        return values

    def one(self, fmt: str) -> int:
        value: int = self.take(fmt)[0]
        return value

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"{self.url}: uncompressed byte {self.pos}: the index is cut short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def parse_index(blob: bytes, url: str) -> Index:
    """A ``.tbi`` or ``.csi`` from its (BGZF-compressed) bytes."""
    if blob[:2] != b"\x1f\x8b":
        raise FormatError(f"{url}: byte 0: expected a BGZF-compressed index, found {blob[:4]!r}")
    try:
        data = _inflate_all(blob)
    except zlib.error as exc:
        raise FormatError(f"{url}: byte 0: the index does not decompress ({exc})") from None
    reader = _Bytes(data, url)
    magic = data[:4]
    if magic == b"TBI\x01":
        reader.pos = 4
        n_ref = reader.one("<i")
        names = _tabix_meta(reader, url)
        _same_count(names, n_ref, url, 4)
        return Index(
            url, "tbi", 14, 5, names, [_tbi_ref(reader) for _ in range(_count(n_ref, url))]
        )
    if magic == b"CSI\x01":
        reader.pos = 4
        min_shift, depth, l_aux = reader.take("<3i")
        aux = _Bytes(reader.raw(l_aux), url)
        names = _tabix_meta(aux, url) if l_aux else []
        at = reader.pos
        n_ref = reader.one("<i")
        if l_aux:
            _same_count(names, n_ref, url, at)
        refs = [_csi_ref(reader) for _ in range(_count(n_ref, url))]
        if not 0 < min_shift < 32 or not 0 <= depth < 16:
            raise FormatError(f"{url}: byte 4: bad CSI parameters (min_shift {min_shift},"
                              f" depth {depth})")  # fmt: skip
        return Index(url, "csi", min_shift, depth, names, refs)
    raise FormatError(
        f"{url}: uncompressed byte 0: expected a tabix (TBI\\1) or CSI (CSI\\1) index,"
        f" found {data[:4]!r}"
    )


def _inflate_all(blob: bytes) -> bytes:
    out, rest = [], blob
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        out.append(inflater.decompress(rest))
        if not inflater.eof:
            raise zlib.error("the compressed index is cut short")
        rest = inflater.unused_data
    return b"".join(out)


def _same_count(names: list[str], n_ref: int, url: str, at: int) -> None:
    if len(names) != n_ref:
        raise FormatError(
            f"{url}: uncompressed byte {at}: the index counts {n_ref} contigs (n_ref) but"
            f" names {len(names)}"
        )


def _count(n: int, url: str) -> int:
    if n < 0:
        raise FormatError(f"{url}: a negative count ({n}) in the index")
    return n


def _tabix_meta(reader: _Bytes, url: str) -> list[str]:
    preset, _, _, _, _, _, l_nm = reader.take("<7i")
    if preset & 0xFFFF != TBX_VCF:
        raise FormatError(
            f"{url}: the index was made for another kind of file (tabix preset"
            f" {preset & 0xFFFF}, not {TBX_VCF}: VCF); make it with tabix -p vcf"
        )
    raw = reader.raw(l_nm)
    return [name.decode("utf-8", "replace") for name in raw.split(b"\x00")[:-1]]


def _tbi_ref(reader: _Bytes) -> RefIndex:
    ref = RefIndex()
    for _ in range(_count(reader.one("<i"), reader.url)):
        bin_, n_chunk = reader.take("<Ii")
        flat = reader.take(f"<{2 * _count(n_chunk, reader.url)}Q")
        ref.bins[bin_] = list(zip(flat[::2], flat[1::2], strict=True))
    n_intv = _count(reader.one("<i"), reader.url)
    ref.intervals = reader.take(f"<{n_intv}Q")
    return ref


def _csi_ref(reader: _Bytes) -> RefIndex:
    ref = RefIndex()
    for _ in range(_count(reader.one("<i"), reader.url)):
        bin_, loffset, n_chunk = reader.take("<IQi")
        flat = reader.take(f"<{2 * _count(n_chunk, reader.url)}Q")
        ref.bins[bin_] = list(zip(flat[::2], flat[1::2], strict=True))
        ref.loffsets[bin_] = loffset
    return ref


def reg2bins(beg: int, end: int, min_shift: int, depth: int) -> list[int]:
    """The bins that may hold records overlapping ``[beg, end)`` (SAMv1 section 5.3)."""
    end -= 1
    bins: list[int] = []
    shift, first = min_shift + 3 * depth, 0
    for level in range(depth + 1):
        bins.extend(range(first + (beg >> shift), first + (end >> shift) + 1))
        shift -= 3
        first += 1 << (3 * level)
    return bins


# -- loading, checked -----------------------------------------------------------------


def load_index(source: RangeSource, index_url: str | None = None) -> Index:
    """The index beside ``source`` (``.tbi``, else ``.csi``), or at ``index_url``: read
    whole (one request) at each plan, parsed once per data-file version and index bytes.
    FormatError when there is none, or it does not fit the file."""
    if index_url is not None:
        blob, url = _read_whole(source, RangeSource(index_url), index_url), index_url
    else:
        blob, url = _sibling(source)
    kept = _INDEXES.slot(source)
    key = (url, hashlib.sha256(blob).digest())
    if key in kept:
        found: Index = kept[key]
        return found
    index = parse_index(blob, url)
    biggest = index.largest_offset() >> 16
    if biggest > source.size:
        raise FormatError(
            f"{url}: points at byte {biggest:,} of {source.url}, which has {source.size:,}"
            " bytes: the index belongs to another file (or another version of it); make it"
            " again (tabix -p vcf, bcftools index)"
        )
    check_data_end(source, index)
    kept.clear()  # one index per data-file version is enough to keep
    kept[key] = index
    return index


#: How to make an index again, for the messages that refuse one.
REMAKE = "make it again (tabix -p vcf FILE, or bcftools index)"
#: File bytes that may follow where an index's records end: bgzip's end-of-file block, and
#: the rest of the last block when the index was written with the file (htslib's writer
#: ends its last chunk inside that block; an index made by reading ends at the next block).
TAIL_BYTES = MAX_BLOCK + 28


def stale(index: Index, source: RangeSource, virtual: int, problem: str) -> FormatError:
    """The error that refuses ``index`` for ``source`` at ``virtual``, saying what to do."""
    return FormatError(
        f"{index.url}: virtual offset {virtual >> 16}/{virtual & 0xFFFF} of {source.url}:"
        f" {problem}: the index does not match the data file (made for another file or"
        f" another version of it); {REMAKE}"
    )


def check_data_end(source: RangeSource, index: Index) -> None:
    """Refuse an index whose records do not end where the file's data does: after the
    largest chunk end it holds there may be only empty BGZF blocks (bgzip's end-of-file
    block). Data appended (or a file rewritten) after the index was made fails this:
    one read of the file's last bytes (at most a block and the end-of-file block)."""
    end = index.data_end()
    if end == 0:
        return  # no records indexed: the plan checks that the file has none
    block, within = end >> 16, end & 0xFFFF
    tail = source.size - block
    if tail > TAIL_BYTES:
        raise stale(index, source, end, f"the records the index covers end there, but the"
                                        f" file goes on for {tail:,} bytes")  # fmt: skip
    if block == source.size and within == 0:
        return  # the end of a file without bgzip's end-of-file block (older writers)
    raw = source.read(block, source.size)
    found = inflate_first(raw, source.url, block)
    if found is None:
        raise stale(index, source, end, f"no BGZF block at byte {block}")
    first, size = found
    rest, used = decompress_blocks(raw[size:], source.url, block + size)
    if within > len(first) or first[within:] or rest or size + used != len(raw):
        more = len(first) - within + len(rest)
        raise stale(index, source, end, f"the records the index covers end there, but"
                                        f" {max(more, 0):,} more bytes of data follow (of a"
                                        f" block of {len(first):,})")  # fmt: skip


def _sibling(source: RangeSource) -> tuple[bytes, str]:
    for suffix in SUFFIXES:
        data = source.read_beside(suffix)
        if data is not None:
            return data, source.url + suffix
    raise FormatError(
        f"{source.url}: region= needs an index beside the file ({source.url}.tbi or"
        f" {source.url}.csi); make one with tabix -p vcf or bcftools index"
    )


def _read_whole(source: RangeSource, index: RangeSource, url: str) -> bytes:
    try:
        data: bytes = index.fs.cat_file(index.path)
    except FileNotFoundError:
        raise FormatError(f"{url}: no such index") from None
    source.count(1, len(data))
    return data


# -- planning ------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """The virtual offsets to read for a region, and record starts inside them."""

    first: int
    last: int
    cuts: tuple[int, ...]


def query(index: Index, tid: int, beg: int, end: int) -> Span | None:
    """What to read for records of contig ``tid`` overlapping ``[beg, end)``, as
    htslib's ``hts_itr_query`` finds it; None when no record can."""
    ref = index.refs[tid]
    end = min(end, 1 << (index.min_shift + 3 * index.depth))
    if beg >= end:
        return None
    least = _min_offset(index, ref, beg)
    bins = [b for b in reg2bins(beg, end, index.min_shift, index.depth) if b in ref.bins]
    chunks = [c for b in bins if b != index.pseudo_bin for c in ref.bins[b] if c[1] > least]
    if not chunks:
        return None
    first = max(min(b for b, _ in chunks), least)
    last = max(e for _, e in chunks)
    if first >= last:
        return None
    starts = {b for b, _ in chunks}
    low, high = beg >> index.min_shift, (end - 1) >> index.min_shift
    starts.update(ref.intervals[low : high + 1])
    starts.update(ref.loffsets[b] for b in bins if b in ref.loffsets)
    return Span(first, last, tuple(sorted(c for c in starts if first < c < last)))


def _min_offset(index: Index, ref: RefIndex, beg: int) -> int:
    """The least virtual offset a record overlapping ``beg`` can have."""
    if index.kind == "tbi":
        if not ref.intervals:
            return 0
        window = beg >> index.min_shift
        return ref.intervals[min(window, len(ref.intervals) - 1)]
    bin_ = ((1 << (3 * index.depth)) - 1) // 7 + (beg >> index.min_shift)
    while bin_ > 0 and bin_ not in ref.loffsets:
        bin_ = (bin_ - 1) >> 3
    return ref.loffsets.get(bin_, 0)


def choose_cuts(span: Span, count: int) -> list[int]:
    """Up to ``count - 1`` record starts from ``span.cuts`` that split it most evenly.

    Virtual offsets are put on one scale of compressed bytes: an offset ``u`` bytes
    into a block's ``MAX_BLOCK`` inflated ones lies that fraction of the way to the
    next block the index knows."""
    cuts = span.cuts
    if not cuts or count < 2:
        return []
    blocks = sorted({v >> 16 for v in (span.first, *cuts, span.last)})
    following = dict(itertools.pairwise(blocks))
    widths = sorted(b - a for a, b in following.items())
    usual = widths[len(widths) // 2] if widths else 1  # the last block's: as the others

    def scale(v: int) -> float:
        block = v >> 16
        width = following[block] - block if block in following else usual
        return block + width * min(v & 0xFFFF, MAX_BLOCK) / MAX_BLOCK

    keys = [scale(c) for c in cuts]
    low, high = scale(span.first), scale(span.last)
    chosen = set()
    for i in range(1, count):
        target = low + (high - low) * i / count
        at = bisect.bisect_left(keys, target)
        near = [k for k in (at - 1, at) if 0 <= k < len(cuts)]
        chosen.add(cuts[min(near, key=lambda k: abs(keys[k] - target))])
    return sorted(chosen)


def plan_region(
    plugin: RegionFormat, source: RangeSource, codec: Codec, region: str, n: int | None,
    target_bytes: int | None, index_url: str | None,
) -> list[Partition]:  # fmt: skip
    """Partitions of the records overlapping ``region``, cut at virtual offsets."""
    if codec.name != "bgzf":
        raise FormatError(
            f"{source.url}: region= needs a BGZF file (bgzip) with a .tbi or .csi index;"
            f" this one is {codec.label}"
        )
    index = load_index(source, index_url)
    wanted = plugin.parse_region(region, tuple(index.names))
    tid = index.tid(wanted.contig)
    found = plugin.scan_header(source, codec)
    if tid is not None and not 0 <= tid < len(index.refs):
        raise FormatError(
            f"{index.url}: contig {wanted.contig!r} is number {tid} of the index's names, but"
            f" the index has bins for {len(index.refs)} contigs"
        )
    if found.records and index.data_end() == 0:
        raise stale(index, source, 0, "the index holds no records, the file has some")
    if tid is None:
        check_names(source, index, found.header.contigs)
        return []  # no record of that contig: as tabix, nothing
    span = query(index, tid, wanted.beg, wanted.end)
    if span is None:
        return []  # no record of that contig in that interval: as tabix, nothing
    compressed = max(1, (span.last >> 16) - (span.first >> 16))
    count = partition_count(compressed, n, target_bytes, at_most=len(span.cuts) + 1)
    bounds = [span.first, *choose_cuts(span, count), span.last]
    with ThreadPool(min(16, len(bounds))) as pool:
        checks = [pool.submit(check_offset, source, index, v, wanted.contig) for v in bounds[:-1]]
        if span.last != index.data_end():  # (the end of the data was checked with the index)
            checks.append(pool.submit(check_span_end, source, index, span.last, wanted.contig))
        for check in checks:
            check.result()
    fingerprint = source.fingerprint
    return [
        Partition.make(
            source.url,
            plugin.name,
            i,
            fingerprint,
            start=a,
            end=b,
            codec="bgzf",
            region=str(wanted),
            **found.spec(),
        )
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


def check_names(source: RangeSource, index: Index, declared: tuple[str, ...]) -> None:
    """Refuse an index whose contig names are not the file's, before answering that a
    contig has no records: the first record of each contig the header does not declare
    (all of them, for a header without ``##contig`` lines) must be of that contig."""
    firsts = []
    for name, ref in zip(index.names, index.refs, strict=False):
        starts = [a for a, _ in index.chunks(ref)]
        if name not in declared and starts:
            firsts.append((name, min(starts)))
    if firsts:
        with ThreadPool(min(16, len(firsts))) as pool:
            list(pool.map(lambda item: check_offset(source, index, item[1], item[0]), firsts))


def check_offset(source: RangeSource, index: Index, virtual: int, contig: str) -> None:
    """Refuse an index whose offset ``virtual`` is not a record of ``contig`` starting
    in a BGZF block of the data file (the index belongs to another file)."""
    block, within = virtual >> 16, virtual & 0xFFFF
    raw = source.read(block, block + MAX_BLOCK + CHECK_BYTES)
    where = f"{index.url}: virtual offset {block}/{within}"
    found = inflate_first(raw, source.url, block)
    if found is None:
        raise FormatError(f"{where}: no BGZF block at byte {block} of {source.url}: the"
                          " index belongs to another file; make it again")  # fmt: skip
    piece, size = found
    if within >= len(piece) or (within and piece[within - 1] != 10):
        raise FormatError(
            f"{where}: no record starts there in {source.url} (byte {within} of a block of"
            f" {len(piece)}): the index belongs to another file"
        )
    following, _ = decompress_blocks(raw[size:], source.url, block + size)
    text = (piece + following)[within:]
    line, newline, _ = text.partition(b"\n")
    fields = line.split(b"\t", 2)
    if not newline and len(fields) < 3:
        return  # a line longer than what was read: the block and the offset are right
    if len(fields) < 3 or not fields[1].isdigit():
        raise FormatError(f"{where}: no VCF record starts there in {source.url}: the index"
                          " belongs to another file")  # fmt: skip
    if fields[0].decode("utf-8", "replace") != contig:
        raise FormatError(f"{where}: a record of {fields[0][:40]!r} starts there in"
                          f" {source.url}, not of {contig!r}: the index belongs to another"
                          " file; make it again")  # fmt: skip


def check_span_end(source: RangeSource, index: Index, virtual: int, contig: str) -> None:
    """Refuse an index whose chunk end ``virtual`` (where a region's records end) is not
    where a record of ``contig`` ends in the data file: a line end in a BGZF block, the
    line before it (when it starts in that block) a record of ``contig``."""
    block, within = virtual >> 16, virtual & 0xFFFF
    found = inflate_first(source.read(block, block + MAX_BLOCK), source.url, block)
    if found is None:
        raise stale(index, source, virtual, f"no BGZF block at byte {block}")
    piece, _ = found
    if within > len(piece) or (within and piece[within - 1] != 10):
        raise stale(index, source, virtual, f"a region's records end there, but no line ends"
                                            f" there (byte {within} of a block of"
                                            f" {len(piece):,})")  # fmt: skip
    if within:
        start = piece.rfind(b"\n", 0, within - 1) + 1
        name = piece[start:within].partition(b"\t")[0].decode("utf-8", "replace")
        if start and name != contig:
            raise stale(index, source, virtual, f"a region's records of {contig!r} end"
                                                f" there, but the line before is of"
                                                f" {name[:40]!r}")  # fmt: skip


# -- reading -------------------------------------------------------------------------


def read_region(partition: Partition, source: RangeSource) -> Text:
    """The inflated text of one region partition: from virtual offset ``start`` to ``end``."""
    url = source.url
    first, last = partition["start"], partition["end"]
    c0, u0, c1, u1 = first >> 16, first & 0xFFFF, last >> 16, last & 0xFFFF
    raw = source.read(c0, c1 + (MAX_BLOCK if u1 else 0))
    before, used = decompress_blocks(raw[: c1 - c0], url, c0)
    if used != c1 - c0:
        raise FormatError(f"{url}: byte {c0 + used}: a BGZF block is cut short")
    after = b""
    if u1:
        after, _ = decompress_blocks(raw[c1 - c0 :], url, c1)
        if len(after) < u1:
            raise FormatError(f"{url}: byte {c1} (a BGZF block): the plan reads to uncompressed"
                              f" byte {u1} of it, but it holds {len(after)}")  # fmt: skip
    data = before + after[:u1]
    if u0 > len(data):
        raise FormatError(f"{url}: byte {c0} (a BGZF block): the plan starts at uncompressed"
                          f" byte {u0}, past its end")  # fmt: skip
    return Text(url, data[u0:], first, last=False, locate=_Locate(url, c0, u0))


class _Locate:
    def __init__(self, url: str, block: int, within: int) -> None:
        self.url, self.block, self.within = url, block, within

    def __call__(self, i: int) -> str:
        return (f"{self.url}: byte {self.block} (a BGZF block), uncompressed byte"
                f" {self.within + i} from its start")  # fmt: skip

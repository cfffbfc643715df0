"""BAM records decoded: found one by one, their fields gathered in bulk, as rows or Arrow.

:func:`decode` walks the records of a partition (each starts where the one
before ends), then decodes them a batch at a time with numpy: fixed fields,
names, sequences, qualities and tags each gathered in one go. The result is
:class:`Columns`, from which :class:`Alignment` rows (pysam's attribute names)
or an Arrow table (:func:`to_arrow`) are built. A record that runs past the
partition's end or the file's, or whose ``block_size`` disagrees with its own
counts, raises :class:`~aifdata.FormatError` naming its place.
"""

from __future__ import annotations

import array
import binascii
import functools
import struct
import sys
from typing import Any, NamedTuple, TypeVar

from .._errors import FormatError
from .._gc import gc_paused
from ._bam_blocks import Blocks
from ._bam_header import MAX_RECORD, BamHeader
from ._bam_tags import decode_tags, first_bad_tags, tags_fault, tags_text

_T = TypeVar("_T")
#: The fixed fields of a record, ``block_size`` .. ``tlen``: 36 bytes.
FIXED = struct.Struct("<iiiBBHHHiiii")
_DTYPE = [("bs", "<i4"), ("ref", "<i4"), ("pos", "<i4"), ("lrn", "u1"), ("mapq", "u1"),
          ("bin", "<u2"), ("ncig", "<u2"), ("flag", "<u2"), ("lseq", "<i4"), ("nref", "<i4"),
          ("npos", "<i4"), ("tlen", "<i4")]  # fmt: skip
_I32 = struct.Struct("<i")
_CIGAR_OPS = "MIDNSHP=X"
_REF_OPS = 0b110001101  # M D N = X consume the reference
_BASES = b"=ACMGRSVTWYHKDBN"
_PHRED = bytes((b + 33) & 0xFF for b in range(256))
_HEX_BASES = bytes.maketrans(b"0123456789abcdef", _BASES)
_LITTLE = sys.byteorder == "little"


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
    #: Raw phred values, all as ``array('B')`` (decoded BAM) or all as bytes (SAM); None
    #: when absent.
    qualities: list[Any]
    tags: list[bytes]
    names: tuple[str | None, ...]  # reference names, then None (index -1)

    def alignments(self) -> list[Alignment]:
        with gc_paused():
            return self._alignments()

    def _alignments(self) -> list[Alignment]:
        f, names = self.fields, self.names
        make = functools.partial(tuple.__new__, Alignment)  # what _make does, without a call
        quals = self.qualities
        if isinstance(next((q for q in quals if q is not None), None), bytes):
            quals = [None if q is None else array.array("B", q) for q in quals]
        refs = map(names.__getitem__, f["reference_id"])  # -1: the None at the end
        mates = map(names.__getitem__, f["next_reference_id"])
        return list(map(make, zip(
            f["query_name"], f["flag"], f["reference_id"], refs, f["reference_start"],
            f["mapping_quality"], f["cigarstring"], f["next_reference_id"], mates,
            f["next_reference_start"], f["template_length"], self.sequences, quals, self.tags,
            f["reference_end"], strict=True,
        )))  # fmt: skip


def decode(
    blocks: Blocks, p: int, end: int, header: BamHeader,
    region: tuple[int, int, int] | None,
) -> Columns:  # fmt: skip
    """The records from ``blocks.data[p]`` up to (not from) virtual offset ``end``, as
    columns; the last one must end exactly there (a partition boundary is a record start).

    The blocks are inflated, and the records found one by one (each starts where the one
    before ends), about :data:`BATCH_BYTES` at a time; each batch is decoded with numpy
    while its bytes are still in the processor's caches (fixed fields, names, sequences,
    qualities and tags each gathered in one go, so Python touches each record only a few
    times), then its bytes are dropped."""
    columns = Columns({name: [] for name in COLUMNS}, [], [], [], (*header.names, None))
    cigars: dict[bytes, str | None] = {b"": None}
    with gc_paused():
        while True:
            limit = blocks.held(end)
            stop = len(blocks.data) if limit is None else limit  # records before stop are ours
            if p >= stop:
                if limit is not None:
                    break
                blocks.grow()
                continue
            starts: list[int] = []
            p = _walk_batch(blocks, p, min(stop, p + BATCH_BYTES), starts)
            _decode_batch(blocks, starts, header, region, columns, cigars)
            blocks.drop(p)
            p = 0
    _check_last(blocks, p, limit)
    return columns


#: Bytes of records found and decoded together (a longer record alone): small enough for
#: the batch's pieces to stay in the processor's caches.
BATCH_BYTES = 2**20


def walk(blocks: Blocks, p: int, limit: int) -> list[int]:
    """Where each record from ``p`` up to ``limit`` starts (reading on for a record that runs
    past the bytes held); FormatError when one runs past the end of the file or past
    ``limit``."""
    starts: list[int] = []
    _check_last(blocks, _walk_to(blocks, p, limit, starts), limit)
    return starts


def _walk_to(blocks: Blocks, p: int, stop: int, starts: list[int]) -> int:
    """Adds to ``starts`` each record that starts from ``p`` on and before ``stop``; returns
    where the last one ends."""
    while p < stop:
        p = _walk_held(blocks.data, p, stop, starts)
        if p < stop:
            p = _walk_one(blocks, p, starts)
    return p


def _walk_batch(blocks: Blocks, p: int, stop: int, starts: list[int]) -> int:
    """As :func:`_walk_to`, but once it has a record it ends the batch before one that
    runs past the bytes held: the next batch reads on, after this one's bytes are dropped
    (rather than copied once more with the new ones)."""
    while p < stop:
        p = _walk_held(blocks.data, p, stop, starts)
        if p < stop:
            if starts:
                break
            p = _walk_one(blocks, p, starts)
    return p


def _check_last(blocks: Blocks, p: int, limit: int) -> None:
    """FormatError unless the last record, which ends at ``p``, ends at ``limit``."""
    if p != limit:
        raise FormatError(
            f"{blocks.where(p)}: the last record of this partition ends past the partition's"
            f" end (virtual offset {blocks.voffset(limit):#x}): that boundary is not a record"
            " start (a .bai of another file, or a split guess fooled by crafted data; plan"
            " with an index, or with index=False)"
        )


def _walk_held(data: bytes, p: int, limit: int, starts: list[int]) -> int:
    """Adds the starts of the records from ``p`` on that lie wholly in ``data`` and have a
    plausible ``block_size``; returns where it stopped (at ``limit``, or at a record that
    :func:`_walk_one` must look at). ``block_size`` is read through four int32 views of the
    bytes, one per alignment: faster than unpacking each."""
    stop = min(limit, len(data) - 35)
    if p >= stop or not _LITTLE:
        return p
    views = [memoryview(data)[k : k + (len(data) - k) // 4 * 4].cast("i") for k in range(4)]
    append, size = starts.append, len(data)
    while p < stop:
        bs: int = views[p & 3][p >> 2]
        if bs < 32 or p + 4 + bs > size:
            break
        append(p)
        p += 4 + bs
    return p


def _walk_one(blocks: Blocks, p: int, starts: list[int]) -> int:
    """Adds the record at ``p`` (reading on when it runs past the bytes held) and returns
    where it ends; FormatError when it is not a record or runs past the end of the file."""
    if p + 36 > len(blocks.data) and not blocks.ensure(p + 36):
        raise FormatError(f"{blocks.where(p)}: the file ends inside a record's fixed fields")
    bs: int = _I32.unpack_from(blocks.data, p)[0]
    end = p + 4 + bs
    if bs < 32 or (end > len(blocks.data) and (bs > MAX_RECORD or not blocks.ensure(end))):
        raise FormatError(
            f"{blocks.where(p)}: a record of block_size {bs} runs past the end of the"
            f" file (byte {blocks.size})"
            if bs >= 32
            else f"{blocks.where(p)}: not a valid BAM record ({_fault(blocks.data, p)})"
        )
    starts.append(p)
    return end


def _decode_batch(
    blocks: Blocks, starts: list[int], header: BamHeader, region: tuple[int, int, int] | None,
    out: Columns, known: dict[bytes, str | None],
) -> None:  # fmt: skip
    """Decodes the records at ``starts`` (one batch) onto ``out``; ``known``: the text of
    each raw CIGAR met so far.

    numpy reads every record's fixed fields and checks them, its CIGAR operations and
    its tags in bulk; the bases of the whole batch are unpacked at once; Python then
    only cuts each record's pieces."""
    import numpy as np

    data = blocks.data
    buf = np.frombuffer(data, np.uint8)
    offs = np.asarray(starts, np.int64)
    fixed = np.lib.stride_tricks.sliding_window_view(buf, 36)[offs].view(_DTYPE).ravel()
    lrn, ncig, lseq = (fixed[key].astype(np.int64) for key in ("lrn", "ncig", "lseq"))
    cigar_at = offs + 36 + lrn
    seq_at = cigar_at + 4 * ncig
    qual_at = seq_at + ((lseq + 1) >> 1)
    tags_at = qual_at + lseq
    ends = offs + 4 + fixed["bs"]
    _check_fixed(blocks, offs, fixed, lrn, lseq, tags_at, ends, buf, len(header.names))
    names = _names(blocks, _gather(buf, offs + 36, lrn), starts)
    cuts = np.stack([cigar_at, seq_at, qual_at, tags_at, ends]).tolist()
    cigars = [data[a:b] for a, b in zip(cuts[0], cuts[1], strict=True)]
    texts, spans = _cigars(blocks, starts, cigars, ncig, known)
    tags = [data[a:b] for a, b in zip(cuts[3], cuts[4], strict=True)]
    lengths = ends - tags_at
    bad = first_bad_tags(np.frombuffer(b"".join(tags), np.uint8), np.cumsum(lengths) - lengths,
                         np.cumsum(lengths))  # fmt: skip
    if bad >= 0:
        raise FormatError(
            f"{blocks.where(starts[bad])}: not a valid BAM record ({tags_fault(tags[bad])})"
        )
    quals = _qualities(data, buf, qual_at, lseq)
    sequences = _sequences(data, cuts[1], cuts[2], lseq)
    flags, poss = fixed["flag"], fixed["pos"]
    aligned = (ncig > 0) & (flags & 4 == 0)  # as htslib: no reference base: ends at pos + 1
    ends_at: list[int | None] = (poss + np.maximum(spans, 1)).tolist()
    for i in np.flatnonzero(~aligned).tolist():
        ends_at[i] = None
    columns = {key: fixed[key].tolist() for key in ("flag", "ref", "pos", "mapq", "nref",
                                                    "npos", "tlen")}  # fmt: skip
    keep: list[int] | None = None
    if region is not None:
        ref_id, beg, end = region
        keep = [
            i for i, (r, pos, e) in enumerate(zip(columns["ref"], columns["pos"], ends_at,
                                                  strict=True))
            if r == ref_id and pos < end and (pos + 1 if e is None else e) > beg
        ]  # fmt: skip
    fields = {
        "query_name": names, "flag": columns["flag"], "reference_id": columns["ref"],
        "reference_start": columns["pos"], "mapping_quality": columns["mapq"],
        "cigarstring": texts, "next_reference_id": columns["nref"],
        "next_reference_start": columns["npos"], "template_length": columns["tlen"],
        "reference_end": ends_at,
    }  # fmt: skip
    for key, values in fields.items():
        out.fields[key].extend(_kept(values, keep))
    out.sequences.extend(_kept(sequences, keep))
    out.qualities.extend(_kept(quals, keep))
    out.tags.extend(_kept(tags, keep))


def _check_fixed(
    blocks: Blocks, offs: Any, fixed: Any, lrn: Any, lseq: Any, tags_at: Any,
    ends: Any, buf: Any, n_ref: int,
) -> None:  # fmt: skip
    """FormatError for the first record whose fixed fields disagree with its length or
    name a reference the header does not have."""
    import numpy as np

    good = (
        (lrn >= 1) & (lseq >= 0) & (tags_at <= ends)
        & (fixed["ref"] >= -1) & (fixed["ref"] < n_ref)
        & (fixed["nref"] >= -1) & (fixed["nref"] < n_ref)
    )  # fmt: skip
    good[good] &= buf[(offs + 35 + lrn)[good]] == 0  # the name's NUL
    if not good.all():
        at = int(offs[np.argmin(good)])
        raise FormatError(f"{blocks.where(at)}: not a valid BAM record"
                          f" ({_fault(blocks.data, at)})")  # fmt: skip


def _cigars(
    blocks: Blocks, starts: list[int], cigars: list[bytes], ncig: Any,
    known: dict[bytes, str | None],
) -> tuple[list[str | None], Any]:  # fmt: skip
    """Each record's CIGAR as text (each distinct one made once) and the reference bases
    it spans (numpy); FormatError naming the first record with an operation code above 8."""
    import numpy as np

    ops = np.frombuffer(b"".join(cigars), "<u4").astype(np.int64)
    codes = ops & 15
    if (codes > 8).any():
        first = int(np.searchsorted(np.cumsum(ncig), int(np.argmax(codes > 8)), "right"))
        raise FormatError(f"{blocks.where(starts[first])}: a CIGAR operation code above 8")
    covered = np.zeros(len(ops) + 1, np.int64)  # reference bases covered before each op
    np.cumsum((ops >> 4) * (_REF_OPS >> codes & 1), out=covered[1:])
    bounds = np.zeros(len(ncig) + 1, np.int64)  # each record's first op
    np.cumsum(ncig, out=bounds[1:])
    spans = covered[bounds[1:]] - covered[bounds[:-1]]
    for raw in set(cigars).difference(known):
        known[raw] = _cigar_text(raw)
    return list(map(known.__getitem__, cigars)), spans


def _cigar_text(raw: bytes) -> str:
    return "".join([f"{c >> 4}{_CIGAR_OPS[c & 15]}" for c in array_of_u32(raw, 0, len(raw) // 4)])


def _qualities(data: bytes, buf: Any, at: Any, lseq: Any) -> list[array.array[int] | None]:
    """Each record's phred values (``array('B')``); None when absent (empty, or led by
    0xFF). Sliced from one array of the batch's bytes: cheaper than an array per slice."""
    import numpy as np

    present = ((lseq > 0) & (buf[np.where(lseq > 0, at, 0)] != 0xFF)).tolist()
    low = int(at[0])
    values = array.array("B")
    values.frombytes(memoryview(data)[low : int(at[-1] + lseq[-1])])
    return [
        values[a : a + n] if keep else None
        for a, n, keep in zip((at - low).tolist(), lseq.tolist(), present, strict=True)
    ]  # fmt: skip


def _sequences(data: bytes, seq_at: list[int], qual_at: list[int], lseq: Any) -> list[str | None]:
    """Each record's bases: the 4-bit codes of the batch joined, unpacked at once, then cut."""
    import numpy as np

    packed = b"".join([data[a:b] for a, b in zip(seq_at, qual_at, strict=True)])
    text = binascii.hexlify(packed).translate(_HEX_BASES).decode("ascii")  # 2 nibbles a byte
    firsts = np.cumsum(lseq + 1 >> 1 << 1) - (lseq + 1 >> 1 << 1)
    return [
        text[a : a + n] if n else None
        for a, n in zip(firsts.tolist(), lseq.tolist(), strict=True)
    ]  # fmt: skip


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


def _fault(data: bytes | bytearray, p: int) -> str:
    bs, ref, _, lrn, _, _, ncig, _, lseq, nref, _, _ = FIXED.unpack_from(data, p)
    return (
        f"block_size {bs}, refID {ref}, next_refID {nref}, l_read_name {lrn},"
        f" n_cigar_op {ncig}, l_seq {lseq}"
    )


def array_of_u32(data: bytes | bytearray, at: int, count: int) -> array.array[int]:
    values = array.array("I", data[at : at + 4 * count])
    if not _LITTLE:  # pragma: no cover - BAM is little-endian
        values.byteswap()
    return values


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
        None if q is None else bytes(q).translate(_PHRED).decode("ascii")
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

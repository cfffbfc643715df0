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
import functools
import itertools
import struct
import sys
from typing import Any, NamedTuple, TypeVar

from .._errors import FormatError
from .._gc import gc_paused
from ._bam_blocks import Blocks
from ._bam_header import MAX_RECORD, BamHeader
from ._bam_tags import decode_tags, tags_fault, tags_text

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
_HIGH = bytes(_BASES[b >> 4] for b in range(256))
_LOW = bytes(_BASES[b & 15] for b in range(256))
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

"""SAM lines straight to an Arrow table, column by column in Arrow's kernels.

:func:`table` gives the table that :func:`~aifdata.formats._bam_records.to_arrow`
makes of the records :func:`~aifdata.formats.sam.parse` reads, without a Python
object per record: the partition's text becomes one Arrow string array of lines,
each line is split at its first eleven tabs, and each field is cast, checked and
rewritten as pysam gives it (POS and PNEXT 0-based, ``*`` as null, RNEXT ``=`` as
the record's own reference). Python works only once per distinct CIGAR and per
distinct tag field other than strings and short integers (which read back as
written, checked by one regular expression). It checks what ``parse`` checks; when a
line is one it cannot take (too few fields, a bad number, CIGAR or tag, a reference
the header lacks, SEQ and QUAL or CIGAR of different lengths, bytes that are not
UTF-8) it answers None, and the caller reads the partition record by record, which
names the bad line.
"""

from __future__ import annotations

from typing import Any

from ..codecs import Text

__all__ = ["table"]

#: A tag field that reads back as written: ``XX:Z:text`` (no NUL: checked before) or
#: ``XX:i:N`` with N as htslib writes it, of at most 9 digits (in range, whatever its sign),
#: each with a printable name.
_PLAIN_TAG = r"^[ -9;-~]{2}:(Z:|i:(0|-?[1-9][0-9]{0,8})$)"
#: Above this many bytes a partition's text does not fit Arrow's 32-bit string offsets.
_MAX_BYTES = 2**31 - 1


class _Refused(Exception):
    """A line this module does not take: the caller reads record by record."""


def table(text: Text, references: tuple[str, ...]) -> Any:
    """The partition's records as an Arrow table (the BAM format's columns), or None
    when a line needs the record-by-record reading (to accept it, or to name it)."""
    try:
        return _table(text, references)
    except Exception:  # whatever it is, the record reading says it (or raises it)
        return None


def _table(text: Text, references: tuple[str, ...]) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    data = text.data
    if len(data) > _MAX_BYTES or b"\0" in data:
        raise _Refused
    lines = _lines(data, text.last)
    keep = pc.and_(pc.not_equal(lines, ""), pc.invert(pc.starts_with(lines, "@")))
    if not _every(keep):
        kept = keep.to_numpy(zero_copy_only=False)
        first = int(kept.argmax())
        whole = kept[first:].all()  # the header lines lead: a slice, not a copy
        lines = lines.slice(first) if whole else lines.filter(keep)
    if b"\r" in data:  # CR LF line ends: the record-by-record reading strips them
        lines = pc.utf8_rtrim(lines, characters="\r")
    if len(lines) == 0:
        return _empty()
    rows = pc.split_pattern(lines, "\t", max_splits=11)
    counts = pc.list_value_length(rows).to_numpy(zero_copy_only=False)
    if counts.min() < 11:
        raise _Refused
    flat = rows.flatten()
    firsts = rows.offsets.to_numpy()[:-1]
    col = [flat.take(pa.array(firsts + i)) for i in range(11)]
    qname, flag_, rname, pos_, mapq_, cigar, rnext, pnext_, tlen_, seq, qual = col
    flags = _integers(flag_)
    starts = pc.subtract_checked(_integers(pos_), 1)  # ArrowInvalid on overflow
    mapq = _integers(mapq_)
    next_starts = pc.subtract_checked(_integers(pnext_), 1)
    tlen = _integers(tlen_)

    star = pa.scalar(None, pa.string())
    names = pa.array(references, pa.string())
    known = pa.concat_arrays([names, pa.array(["*"], pa.string())])
    if not _every(pc.is_in(rname, value_set=known)):
        raise _Refused  # a reference the header lacks
    ref_name = pc.if_else(pc.equal(rname, "*"), star, rname)
    mate_same = pc.equal(rnext, "=")
    if not _every(pc.or_(mate_same, pc.is_in(rnext, value_set=known))):
        raise _Refused
    next_name = pc.if_else(mate_same, ref_name, pc.if_else(pc.equal(rnext, "*"), star, rnext))

    spans, covers = _cigars(cigar)  # numpy: reference and query bases per record (-1: '*')
    seq_star = pc.equal(seq, "*").to_numpy(zero_copy_only=False)
    qual_star = pc.equal(qual, "*").to_numpy(zero_copy_only=False)
    if not _every(pc.string_is_ascii(qual)):
        raise _Refused
    seq_len = pc.utf8_length(seq).to_numpy(zero_copy_only=False)
    qual_len = pc.binary_length(qual).to_numpy(zero_copy_only=False)
    if (((covers >= 0) & ~seq_star & (covers != seq_len)).any()
            or (~qual_star & ~seq_star & (qual_len != seq_len)).any()):  # fmt: skip
        raise _Refused
    flag_np = flags.to_numpy(zero_copy_only=False)
    unaligned = (flag_np & 4 != 0) | (covers < 0)
    begins = starts.to_numpy(zero_copy_only=False)
    ends = begins + np.maximum(spans, 1)
    if (~unaligned & (ends <= begins)).any():
        raise _Refused  # past int64: the record reading raises as it did
    tags = _tags(flat, rows.offsets.to_numpy(), counts)
    return pa.table(
        {
            "query_name": qname,
            "flag": flags.cast(pa.uint16()),
            "reference_name": ref_name,
            "reference_start": starts,
            "reference_end": pa.array(ends, pa.int64(), mask=unaligned),
            "mapping_quality": mapq.cast(pa.uint8()),
            "cigarstring": _nulled(cigar, pc.equal(cigar, "*").to_numpy(zero_copy_only=False)),
            "next_reference_name": next_name,
            "next_reference_start": next_starts,
            "template_length": tlen,
            "query_sequence": _nulled(seq, seq_star),
            "query_qualities": _nulled(qual, qual_star),
            "tags": tags,
        }
    )


def _lines(data: bytes, last: bool) -> Any:
    """The lines of ``data`` (without their newlines) as an Arrow string array; a last
    line without its newline counts only at the end of the stream (as ``parse``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    whole = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(np.array([0, len(data)], np.int32)),
                         pa.py_buffer(data)]
    )  # fmt: skip
    whole.validate(full=True)  # ArrowInvalid (a ValueError) for bytes that are not UTF-8
    lines = pc.split_pattern(whole, "\n").flatten()
    if not (last and data[-1:] != b"\n"):
        lines = lines.slice(0, len(lines) - 1)  # what follows the last newline
    return lines


def _integers(column: Any) -> Any:
    """An int64 column of decimal text, as Python's ``int`` reads it; _Refused for any
    text that is not plain digits (Arrow would read some, such as ``0x1F``, that ``int``
    refuses)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not _every(pc.ascii_is_decimal(pc.utf8_ltrim(column, characters="+-"))):
        raise _Refused
    return column.cast(pa.int64())


def _cigars(cigar: Any) -> tuple[Any, Any]:
    """Reference bases and query bases each record's CIGAR covers (numpy; 0 and -1 for
    ``*``), each distinct CIGAR worked out once."""
    import numpy as np

    from ._sam_fields import span_of as _span

    encoded = cigar.dictionary_encode()
    shapes = [(0, -1) if c == "*" else _span(c) for c in encoded.dictionary.to_pylist()]
    table = np.array(shapes, np.int64).reshape(-1, 2)
    index = encoded.indices.to_numpy(zero_copy_only=False)
    return table[index, 0], table[index, 1]


def _tags(flat: Any, offsets: Any, counts: Any) -> Any:
    """Each record's tags as SAM text, as ``to_arrow`` writes them: the line's text, with
    any field that reads back otherwise (each distinct one worked out once) rewritten."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ._bam_tags import tags_text
    from ._sam_fields import tag_bytes as _tag

    has = counts > 11
    where = np.where(has, offsets[:-1] + 11, 0)
    present = flat.take(pa.array(where, mask=~has))  # null: no tags
    raw = present.fill_null("")
    lists = pc.split_pattern(present, "\t")  # a null (no tags) has no fields
    fields = lists.values
    if len(fields) == 0:
        return raw
    if _some(pc.equal(fields, "")):
        raise _Refused  # an empty tag field (a tab too many)
    # string tags of a printable name, and integers of at most 9 digits as htslib writes
    # them, read back as written: no Python for them
    unsettled = pc.invert(pc.match_substring_regex(fields, _PLAIN_TAG))
    others = fields.filter(unsettled).dictionary_encode()
    texts = [tags_text(_tag(f)) for f in others.dictionary.to_pylist()]  # ValueError: bad
    if texts == others.dictionary.to_pylist():
        return raw
    # some read back otherwise (A as Z, say): each such field rewritten, the lines rejoined
    rewritten = pa.array(texts, pa.string()).take(others.indices)
    fields = pc.replace_with_mask(fields, unsettled, rewritten)
    joined = pa.ListArray.from_arrays(lists.offsets, fields, mask=lists.is_null())
    return pc.binary_join(joined, "\t").fill_null("")


def _nulled(column: Any, mask: Any) -> Any:
    """``column`` (a string array with no nulls) with nulls where ``mask`` (numpy) is
    true: its buffers kept, only a validity bitmap added (no copy of the strings)."""
    import numpy as np
    import pyarrow as pa

    if not mask.any():
        return column
    if column.offset or column.null_count:  # pragma: no cover - take gives neither
        import pyarrow.compute as pc

        return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), column)
    valid = pa.array(~mask).buffers()[1]  # bit-packed, as a validity bitmap is
    offsets, data = column.buffers()[1:]
    nulled = pa.Array.from_buffers(pa.string(), len(column), [valid, offsets, data],
                                   int(np.count_nonzero(mask)))  # fmt: skip
    return nulled


def _every(mask: Any) -> bool:
    """Whether every value of a boolean array is true (so for none)."""
    import pyarrow.compute as pc

    return bool(pc.all(mask, min_count=0).as_py())


def _some(mask: Any) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(mask, min_count=0).as_py())


def _empty() -> Any:
    from ._bam_records import Columns, to_arrow

    return to_arrow([Columns({k: [] for k in _FIELDS}, [], [], [], (None,))])


_FIELDS = ("query_name", "flag", "reference_id", "reference_start", "mapping_quality",
           "cigarstring", "next_reference_id", "next_reference_start", "template_length",
           "reference_end")  # fmt: skip

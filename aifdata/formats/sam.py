"""SAM, the text form of BAM: plain, gzip or BGZF, split at any line after the header.

A SAM file is header lines (each starting with ``@``), then one alignment per
line, eleven tab-separated fields and optional ``TAG:TYPE:VALUE`` fields. A
record starts at every line start that does not begin with ``@`` (header
lines come only first, and no record line begins with ``@``: QNAME may not),
so :func:`first_record` is all the codecs need to split (see
:class:`~aifdata.formats.TextFormat`). The header travels with every
partition: the reference names come from the file's first bytes, read once
per file version and process. Records come out as the BAM format's
:class:`~aifdata.formats.bam.Alignment` (pysam's names, 0-based positions,
tags encoded as BAM stores them so ``get_tags()`` answers as pysam does).
``read(as_arrow=True)`` and :meth:`SamFormat.to_arrow` build the same table
column by column in Arrow's kernels (:mod:`._sam_arrow`), with no Python object
per record; a partition with a line that pass does not take is read record by
record, which names the bad line.
"""

from __future__ import annotations

import array
import itertools
import struct
from collections.abc import Callable
from typing import Any

from .._config import Config
from .._errors import FormatError
from .._gc import gc_paused
from ..codecs import Codec, Text
from . import _sam_arrow
from ._base import KeptMetadata, Partition, RangeSource, TextFormat, open_source
from ._sam_fields import span_of as _span
from ._sam_fields import tag_bytes as _tag
from .bam import Alignment, Columns, to_arrow

#: Bytes of the file's start read to find the header (doubled until it ends there).
HEADER_BYTES = 64 * 2**10
_RECORD_TYPES = ("@HD\t", "@SQ\t", "@RG\t", "@PG\t", "@CO\t")
_PHRED = bytes((b - 33) & 0xFF for b in range(256))

__all__ = ["SamFormat", "first_record"]


class SamFormat(TextFormat):
    """SAM text (plain, gzip or BGZF), split at any record line."""

    name = "sam"
    extensions = (".sam",)
    description = "SAM alignments (text); split at any line after the header"
    codecs = ("none", "gzip", "bgzf")

    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        return first_record(data, at_eof)

    def sniff_text(self, text: bytes, path: str) -> bool:
        if text.startswith(tuple(t.encode() for t in _RECORD_TYPES)):
            return True
        fields = text.split(b"\n", 1)[0].split(b"\t")
        return len(fields) >= 11 and all(fields[i].lstrip(b"-").isdigit() for i in (1, 3, 4))

    def explain_text(self, text: bytes) -> tuple[int, str]:
        return 0, (
            "expected SAM: header lines such as '@HD\\t' or '@SQ\\t', or a line of 11"
            f" tab-separated fields; found {text[:32]!r}"
        )

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        source = open_source(partition, source, config)
        options.setdefault("references", self.references(source))
        return super().read(partition, source, **options)

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource, after: bytes = b"",
        **options: Any,
    ) -> Any:  # fmt: skip
        options.setdefault("references", self.references(source))
        return super().decode(partition, data, source, after, **options)

    def references(self, source: RangeSource) -> tuple[str, ...]:
        """The ``@SQ`` names of the file's header, in order (kept per file version)."""
        slot = _KEPT.slot(source)
        found: tuple[str, ...] | None = slot.get("references")
        if found is None:
            found = slot["references"] = _references(self._header_text(source))
        return found

    def _header_text(self, source: RangeSource) -> bytes:
        """The header lines, read in growing windows of the uncompressed text (a header
        may be far longer than one window)."""
        head = source.head(HEADER_BYTES)
        codec = self.codec(head, source.url)
        read = _text_reader(source, codec)
        window = HEADER_BYTES
        while True:
            text, at_eof = read(window)
            end = _header_end(text)
            if end is not None:
                return text[:end]
            if at_eof:
                if text and not text.endswith(b"\n"):
                    raise FormatError(
                        f"{source.url}: {'' if codec.name == 'none' else 'uncompressed '}byte"
                        f" {len(text)}: the header's last line has no line end (cut short?)"
                    )
                return text
            window *= 4

    def parse(
        self, text: Text, references: tuple[str, ...] = (), as_arrow: bool = False,
        **options: Any,
    ) -> Any:  # fmt: skip
        if options:
            raise TypeError(f"the sam format's read() takes no option {', '.join(options)}")
        if as_arrow:  # column by column, with no Python object per record
            found = _sam_arrow.table(text, references)
            if found is not None:
                return found
        records = parse(text, references)
        if not as_arrow:
            return records
        return to_arrow([_columns(records, references)])

    def table(self, partition: Partition) -> str:
        return "bam"  # the same columns as BAM

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A ``pyarrow.Table`` with the BAM format's columns."""
        return self.read(partition, as_arrow=True, **options)

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        return self.to_arrow(partition, **options).to_pandas()


def first_record(data: bytes, at_eof: bool) -> int | None:
    """Index (>= 1) of the first record line in ``data`` (``data[0]`` is context); header
    lines (``@``) are stepped over. None when ``data`` does not settle it."""
    pos = 1 if data[:1] == b"\n" else data.find(b"\n", 1) + 1
    while 0 < pos < len(data):
        if data[pos] != 64:  # '@'
            return pos
        nl = data.find(b"\n", pos)
        if nl < 0:
            return None
        pos = nl + 1
    return None


def _text_reader(source: RangeSource, codec: Codec) -> Callable[[int], tuple[bytes, bool]]:
    """``read(n)``: the first ``n`` uncompressed bytes (or fewer) and whether they are all."""
    if codec.name == "none":
        return lambda n: (source.head(n), n >= source.size)
    if codec.name == "bgzf":  # whole blocks decompress without a cap
        return lambda n: (codec.peek(source.head(n), source.url), n >= source.size)
    stream: Any = codec.open(source)  # gzip: its index, kept for the reads
    reader = stream.uncompressed
    return lambda n: (reader.read(0, min(n, reader.size)), n >= reader.size)


def _header_end(text: bytes) -> int | None:
    """Where the header lines of ``text`` (the file's start) end; None if not in it."""
    pos = 0
    while pos < len(text):
        if text[pos] != 64:
            return pos
        nl = text.find(b"\n", pos)
        if nl < 0:
            return None
        pos = nl + 1
    return None


def _references(header: bytes) -> tuple[str, ...]:
    names = []
    for line in header.decode("utf-8", "replace").splitlines():
        if line.startswith("@SQ\t"):
            fields = dict(f.split(":", 1) for f in line.split("\t")[1:] if ":" in f)
            names.append(fields.get("SN", ""))
    return tuple(names)


def parse(text: Text, references: tuple[str, ...]) -> list[Alignment]:
    """The records of ``text`` (whole lines of one partition; header lines skipped): all
    lines at once, column by column (:func:`_parse_columns`); line by line, to name the
    first bad one, when that fails."""
    try:
        found = _parse_columns(text, references)
    except (ValueError, IndexError, KeyError, struct.error, OverflowError):
        found = None
    return _parse_lines(text, references) if found is None else found


def _parse_lines(text: Text, references: tuple[str, ...]) -> list[Alignment]:
    """The records of ``text``, line by line; FormatError naming the first bad one."""
    data = text.data
    if text.last and data and not data.endswith(b"\n"):
        data += b"\n"  # a last line without its newline is still whole
    ids = {name: i for i, name in enumerate(references)}
    spans: dict[str, tuple[int, int]] = {}
    out = []
    pos = 0
    for line in data.split(b"\n")[:-1]:
        at, pos = pos, pos + len(line) + 1
        if not line or line[:1] == b"@":
            continue
        try:
            out.append(_record(line.decode("utf-8"), ids, spans, references))
        except (ValueError, IndexError, struct.error) as exc:
            raise FormatError(f"{text.where(at)}: not a SAM record ({exc})") from None
    return out


class _Tags(dict[str, bytes]):
    """Tag fields as BAM stores them, each worked out once per partition (most repeat)."""

    def __missing__(self, field: str) -> bytes:
        packed = self[field] = _tag(field)
        return packed


class _TagTexts(dict[str, bytes]):
    """The tags of a line (their text, tab-separated) as BAM stores them, each text
    worked out once per partition, and each tag in it once (:class:`_Tags`)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields = _Tags()

    def __missing__(self, text: str) -> bytes:
        packed = self[text] = b"".join(map(self.fields.__getitem__, text.split("\t")))
        return packed


def _parse_columns(text: Text, references: tuple[str, ...]) -> list[Alignment] | None:
    """The records of ``text`` as :func:`_record` makes them, column by column; an
    exception (or None, for what it leaves to :func:`_parse_lines`) when a line is bad."""
    string = text.data.decode("utf-8")
    if "\r" in string:
        return None  # CR line ends: line by line, as _record strips them
    lines = string.split("\n")
    tail = lines.pop()
    if tail and text.last:
        lines.append(tail)  # a last line without its newline is still whole
    if "\n@" in string or string.startswith("@") or "\n\n" in string or "" in lines:
        lines = [line for line in lines if line and line[0] != "@"]
    if not lines:
        return []
    with gc_paused():
        rows = [line.split("\t", 11) for line in lines]
        del lines
        if min(map(len, rows)) < 11:
            return None
        return _alignments(rows, references)


def _alignments(rows: list[list[str]], references: tuple[str, ...]) -> list[Alignment] | None:
    names, flag_, rname, pos_, mapq_, cigar, rnext, pnext_, tlen_, seq, qual = list(
        zip(*rows, strict=False)
    )[:11]
    ids = {name: i for i, name in enumerate(references)} | {"*": -1}
    refs = list(map(ids.__getitem__, rname))  # KeyError: a name the header lacks
    mates = [ref if mate == "=" else ids[mate] for mate, ref in zip(rnext, refs, strict=True)]
    spans = {c: _span(c) for c in set(cigar) - {"*"}} | {"*": (0, -1)}
    shapes = list(map(spans.__getitem__, cigar))
    lengths = list(map(len, seq))
    for (_, covers), length, sequence, quality in zip(shapes, lengths, seq, qual, strict=True):
        if (covers >= 0 and sequence != "*" and covers != length) or (
            quality != "*" and sequence != "*" and len(quality) != length
        ):
            return None
    flags = list(map(int, flag_))
    starts = [int(p) - 1 for p in pos_]
    ends = [
        None if flag & 4 or c == "*" else start + max(span, 1)
        for flag, c, start, (span, _) in zip(flags, cigar, starts, shapes, strict=True)
    ]
    texts = _TagTexts()
    fields = {
        "query_name": list(names), "flag": flags, "reference_id": refs, "reference_start": starts,
        "mapping_quality": list(map(int, mapq_)), "next_reference_id": mates,
        "next_reference_start": [int(p) - 1 for p in pnext_],
        "template_length": list(map(int, tlen_)),
        "cigarstring": [None if c == "*" else c for c in cigar], "reference_end": ends,
    }  # fmt: skip
    columns = Columns(
        fields,
        [None if s == "*" else s for s in seq],
        _qualities(qual),
        [texts[row[11]] if len(row) > 11 else b"" for row in rows],
        (*references, None),
    )
    return columns.alignments()


def _qualities(qual: tuple[str, ...]) -> list[bytes | None]:
    """Each QUAL as phred values (None for '*'), translated all at once."""
    joined = "".join(qual).encode("ascii").translate(_PHRED)  # UnicodeEncodeError: not ASCII
    bounds = itertools.accumulate(map(len, qual), initial=0)
    return [
        None if q == "*" else joined[a:b]
        for q, (a, b) in zip(qual, itertools.pairwise(bounds), strict=True)
    ]


def _record(
    line: str, ids: dict[str, int], spans: dict[str, tuple[int, int]], references: tuple[str, ...]
) -> Alignment:
    fields = line.rstrip("\r").split("\t")
    if len(fields) < 11:
        raise ValueError(f"{len(fields)} tab-separated fields, at least 11 expected")
    qname, flag_, rname, pos_, mapq, cigar, rnext, pnext, tlen, seq, qual = fields[:11]
    flag, pos = int(flag_), int(pos_) - 1
    ref = -1 if rname == "*" else _ref_id(rname, ids)
    mate = ref if rnext == "=" else -1 if rnext == "*" else _ref_id(rnext, ids)
    span, length = 0, -1
    if cigar != "*":
        span, length = spans.get(cigar) or spans.setdefault(cigar, _span(cigar))
    if seq != "*" and length >= 0 and length != len(seq):
        raise ValueError(f"CIGAR {cigar} covers {length} query bases, SEQ has {len(seq)}")
    if qual != "*" and seq != "*" and len(qual) != len(seq):
        raise ValueError(f"SEQ has {len(seq)} bases, QUAL {len(qual)} (line cut short?)")
    quals = None
    if qual != "*":
        quals = array.array("B", qual.encode("ascii").translate(_PHRED))
    aligned = not flag & 4 and cigar != "*"  # as htslib: a CIGAR on no reference ends at pos + 1
    return Alignment(
        qname, flag, ref, references[ref] if ref >= 0 else None, pos, int(mapq),
        None if cigar == "*" else cigar, mate, references[mate] if mate >= 0 else None,
        int(pnext) - 1, int(tlen), None if seq == "*" else seq, quals,
        b"".join(_tag(field) for field in fields[11:]), pos + max(span, 1) if aligned else None,
    )  # fmt: skip


def _ref_id(name: str, ids: dict[str, int]) -> int:
    found = ids.get(name)
    if found is None:
        raise ValueError(f"reference {name!r} is not in the header's @SQ lines")
    return found


def _columns(records: list[Alignment], references: tuple[str, ...]) -> Columns:
    names = ("query_name", "flag", "reference_id", "reference_start", "mapping_quality",
             "cigarstring", "next_reference_id", "next_reference_start", "template_length",
             "reference_end")  # fmt: skip
    return Columns(
        {key: [getattr(r, key) for r in records] for key in names},
        [r.query_sequence for r in records],
        [None if r.query_qualities is None else r.query_qualities.tobytes() for r in records],
        [r.tag_data for r in records],
        (*references, None),
    )


_KEPT = KeptMetadata()

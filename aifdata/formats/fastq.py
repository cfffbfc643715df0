"""FASTQ, plain or compressed (gzip, BGZF): split exactly, from one small read per boundary.

A record belongs to the partition in which its header line starts. A header
is recognised by the four-line structure, not by '@' alone (quality lines may
start with '@'): a line is a header when it starts with '@' *and the line two
below it starts with '+'*. Only a header passes that test in valid FASTQ: the
line two below a quality line is the next record's sequence, and sequences
never start with '+'. That rule (:func:`first_header`) is all the codec under
the file needs: plain FASTQ snaps each nominal split offset to the first
header at or after it, reading 64 KiB there (more only for reads longer than
that; the boundaries are looked up concurrently); gzip does the same in the
uncompressed bytes through a stored index; BGZF splits at block starts and
applies the rule to the decompressed blocks (see :mod:`aifdata.codecs`). So
partitions are whole records and their union is exactly the file.

Records are parsed by dnaio (the reference FASTQ parser) and come out as its
``SequenceRecord`` (``name``, ``sequence``, ``qualities``), or as an Arrow
table with ``as_arrow=True``. Wrapped (multi-line) FASTQ, unequal sequence and
quality lengths, a truncated last record and quality bytes outside 33..126
raise :class:`~aifdata.FormatError` with the file and byte offset (in the
uncompressed bytes for gzip, the block and the byte in it for BGZF).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from .._errors import FormatError
from .._gc import gc_paused
from ..codecs import BOUNDARY_WINDOW, ByteReader, Text, find_start
from ._base import Partition, TextFormat

#: Bytes read from the start of the file to find its codec and check it is FASTQ.
HEAD_BYTES = 4 * 2**10
#: Boundaries looked up at once (each is one small range read: latency, not bandwidth).
PLAN_THREADS = 16
_BAD_QUALITY = re.compile(r"[^!-~]")
_QUALITY_BYTES = bytes(range(33, 127))
_LINE_BYTES = _QUALITY_BYTES + b"\n"

__all__ = ["BOUNDARY_WINDOW", "HEAD_BYTES", "FastqFormat", "first_header", "parse", "record_start"]


class FastqFormat(TextFormat):
    """FASTQ, uncompressed, in gzip or in BGZF."""

    name = "fastq"
    extensions = (".fastq", ".fq")
    description = "FASTQ reads; split at any record, each record in exactly one partition"
    codecs = ("none", "gzip", "bgzf")
    formerly: ClassVar[Mapping[str, str]] = {"fastq-gzip": "gzip", "fastq-bgzf": "bgzf"}
    head_bytes = HEAD_BYTES
    plan_threads = PLAN_THREADS

    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        return first_header(data, at_eof)

    def sniff_text(self, text: bytes, path: str) -> bool:
        if not text.startswith(b"@"):
            return False
        lines = text.split(b"\n", 3)
        if len(lines) < 3:  # one long read fills the head: '@' is all there is to go on
            return b"\x00" not in text
        return lines[2].startswith(b"+")

    def explain_text(self, text: bytes) -> tuple[int, str]:
        if not text.startswith(b"@"):
            return 0, f"expected a header line starting with '@', found {text[:16]!r}"
        lines = text.split(b"\n", 3)
        if len(lines) < 3:  # what sniff_text refuses there: a NUL byte, binary data
            return text.find(b"\x00"), "expected FASTQ text, found a NUL byte (binary data)"
        offset = len(lines[0]) + len(lines[1]) + 2
        return offset, (
            f"expected the '+' line after the sequence, found {lines[2][:16]!r}"
            " (wrapped, multi-line FASTQ is not supported)"
        )

    def parse(self, text: Text, as_arrow: bool = False, **options: Any) -> Any:
        records = parse(text)
        return to_arrow(records) if as_arrow else records

    def table(self, partition: Partition) -> str:
        return "fastq"  # plain, gzip and BGZF (and the old format names): the same columns

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """Columns ``name``, ``sequence``, ``quality``."""
        return self.to_arrow(partition, **options).to_pandas()

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A ``pyarrow.Table``: columns ``name``, ``sequence``, ``quality`` (what Ray reads)."""
        return self.read(partition, as_arrow=True, **options)


def record_start(source: ByteReader, offset: int) -> int:
    """The offset of the first record header at or after ``offset`` (the file size if none)."""
    return find_start(source, offset, first_header)


def first_header(data: bytes, at_eof: bool) -> int | None:
    """Index (>= 1) in ``data`` of the first line that starts a record; ``data[0]`` is context.

    None means no header in ``data``: more bytes are needed (or, at the end
    of the file, there is none).
    """
    pos = 1 if data[:1] == b"\n" else data.find(b"\n", 1) + 1
    if pos == 0:
        return None
    end = len(data)
    while pos < end:
        line0_end = data.find(b"\n", pos)
        line1_end = data.find(b"\n", line0_end + 1) if line0_end >= 0 else -1
        if line1_end < 0 or line1_end + 1 >= end:
            return None  # the third line is not here yet (or never comes: a truncated tail)
        if data[pos] == 64 and data[line1_end + 1] == 43:  # '@' ... '+'
            return pos
        pos = line0_end + 1
    return None


def parse(text: Text) -> list[Any]:
    """The records in ``text`` (whole records of one partition), checked."""
    import dnaio

    data = text.data
    try:
        with gc_paused(), dnaio.open(io.BytesIO(data), fileformat="fastq") as reader:
            records = list(reader)
    except dnaio.exceptions.FileFormatError as exc:
        line = getattr(exc, "line", None)
        where = text.where(_line_offset(data, line) if line is not None else 0)
        message = str(exc).split(": ", 1)[-1]
        if text.last and data and not data.endswith(b"\n"):
            message += " (the file ends in the middle of a line: truncated?)"
        raise FormatError(f"{where}: {message}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{text.where(0)} (or the {len(data)} bytes after it): {exc}") from None
    if _only_headers_hold_other_bytes(data, records):
        return records  # the common case, found in one pass over the bytes in C
    for index, record in enumerate(records):
        if _BAD_QUALITY.search(record.qualities):
            line = 4 * index + 3
            raise FormatError(
                f"{text.where(_line_offset(data, line))}: quality characters must be"
                f" '!'..'~' (ASCII 33..126); record {record.name!r} has"
                f" {_BAD_QUALITY.search(record.qualities).group()!r}"  # type: ignore[union-attr]
            )
    return records


def _only_headers_hold_other_bytes(data: bytes, records: list[Any]) -> bool:
    """Whether every byte outside 33..126 in ``data`` is a newline or in a header line.

    Compares the count of such bytes in all of ``data`` with their count in
    the names: equal means no sequence or quality line holds one.
    """
    others = len(data.translate(None, _LINE_BYTES))
    if others == 0:
        return True
    names = "".join([record.name for record in records])
    return names.isascii() and others == len(names.encode().translate(None, _QUALITY_BYTES))


def _line_offset(data: bytes, line: int) -> int:
    """Byte offset of 0-based line ``line`` in ``data``."""
    pos = 0
    for _ in range(line):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return len(data)
        pos = nl + 1
    return pos


def to_arrow(records: list[Any]) -> Any:
    """Records as an Arrow table (``name``, ``sequence``, ``quality``)."""
    import pyarrow as pa

    return pa.table(
        {
            "name": pa.array([r.name for r in records], pa.string()),
            "sequence": pa.array([r.sequence for r in records], pa.string()),
            "quality": pa.array([r.qualities for r in records], pa.string()),
        }
    )

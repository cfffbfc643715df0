"""JSON lines (``.jsonl``, ``.ndjson``), plain, gzip or BGZF: split exactly at newlines.

One JSON value per line. A JSON string cannot hold a raw newline (it must be
escaped as ``\\n``), so every ``\\n`` in a valid file ends a value: a partition
starts after the first newline at or after its nominal offset, and the rule is
exact with no look-behind (one small read per boundary). Blank lines are
skipped, as ``pyarrow.json`` and most readers do.

Reading gives the values as Python objects (``json.loads`` of each line), or
an Arrow table with ``as_arrow=True`` (``pyarrow.json``; pass ``schema=`` so
that every partition has the same one, else each infers its own from its
lines). A partition of blank lines only, which has no values to infer from,
gets the schema of the file's first value (its columns, no rows), so the
partitions of a file stay joinable with ``pyarrow.concat_tables``. A line that
is not JSON raises FormatError naming the file, the byte offset where the line
starts and the JSON error.
"""

from __future__ import annotations

import json
from typing import Any

from .._config import Config
from .._errors import FormatError
from ..codecs import Text
from ._base import Partition, RangeSource, TextFormat, open_source

_BOM = b"\xef\xbb\xbf"

__all__ = ["JsonLinesFormat", "line_start", "parse"]


class JsonLinesFormat(TextFormat):
    """JSON lines: one JSON value per line."""

    name = "jsonl"
    extensions = (".jsonl", ".ndjson")
    description = "JSON lines; split at any newline, each value in exactly one partition"
    codecs = ("none", "gzip", "bgzf")

    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        return line_start(data, at_eof)

    def sniff_text(self, text: bytes, path: str) -> bool:
        text = text.removeprefix(_BOM).lstrip(b" \t\r\n")
        if not text:
            return path.lower().endswith(self.extensions)  # blank lines only: no values
        if b"\x00" in text or text[:1] not in (b"{", b"["):
            return False
        first, newline, _ = text.partition(b"\n")
        if not newline:
            return True  # one long value fills the head
        try:
            json.loads(first)
        except ValueError:
            return False
        return True

    def explain_text(self, text: bytes) -> tuple[int, str]:
        if b"\x00" in text:
            return text.find(b"\x00"), "expected JSON text, found a NUL byte (binary data)"
        stripped = text.removeprefix(_BOM).lstrip(b" \t\r\n")
        offset = len(text) - len(stripped)
        if stripped[:1] not in (b"{", b"["):
            return offset, f"expected a JSON object or array per line, found {stripped[:16]!r}"
        first = stripped.partition(b"\n")[0]
        try:
            json.loads(first)
        except ValueError as exc:
            return offset, f"the first line is not one JSON value ({exc})"
        return offset, "?"

    def parse(self, text: Text, as_arrow: bool = False, schema: Any = None, **options: Any) -> Any:
        if options:
            raise TypeError(f"unexpected options for jsonl: {', '.join(sorted(options))}")
        if as_arrow:
            return to_arrow(text, schema)
        return parse(text)

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        source = open_source(partition, source, config)
        return self._joinable(
            partition, source, super().read(partition, source, **options), options
        )

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource, after: bytes = b"",
        **options: Any,
    ) -> Any:  # fmt: skip
        found = super().decode(partition, data, source, after, **options)
        return self._joinable(partition, source, found, options)

    def _joinable(
        self, partition: Partition, source: RangeSource, found: Any, options: dict[str, Any]
    ) -> Any:
        """``found``, or, for an Arrow table of a blank-only partition (no columns, no rows,
        no ``schema=``), an empty table with the schema of the file's first value."""
        if not options.get("as_arrow") or options.get("schema") is not None:
            return found
        if found.num_columns or found.num_rows:
            return found
        return self.first_schema(partition, source).empty_table()

    def first_schema(self, partition: Partition, source: RangeSource) -> Any:
        """The Arrow schema ``pyarrow.json`` infers from the file's first non-blank line
        (no columns when the file has none), read from the start in growing windows."""
        import pyarrow as pa

        stream = self.codec_of(partition).open(source)
        window = self.head_bytes
        while True:
            end = min(window, stream.extent)
            text = stream.text(0, end, self.boundary)
            pos = len(_BOM) if text.start == 0 and text.data.startswith(_BOM) else 0
            for line in text.data[pos:].split(b"\n"):
                if line.strip():
                    return to_arrow(_line_text(text, pos, line)).schema
                pos += len(line) + 1
            if end >= stream.extent:
                return pa.schema([])
            window *= 4

    def table(self, partition: Partition) -> str:
        return f"jsonl:{partition.url}"

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """A row per line, a column per key (through ``pyarrow.json``)."""
        return self.read(partition, as_arrow=True, **options).to_pandas()

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """The partition as a ``pyarrow.Table`` (objects only; ``schema=`` fixes the columns)."""
        return self.read(partition, as_arrow=True, **options)


def line_start(data: bytes, at_eof: bool) -> int | None:
    """Index (>= 1) after the first newline in ``data`` (``data[0]`` is the byte before)."""
    found = data.find(b"\n")
    return found + 1 if found >= 0 else None


def parse(text: Text) -> list[Any]:
    """The JSON value of each non-blank line of ``text``."""
    data = text.data
    if text.start == 0 and data.startswith(_BOM):
        data = b"   " + data[3:]  # offsets stay those of the file
    loads = json.loads
    try:
        return [loads(line) for line in data.split(b"\n") if line and not line.isspace()]
    except ValueError:
        pass
    pos = 0
    for line in data.split(b"\n"):  # again, to name the line that is not JSON
        if line and not line.isspace():
            try:
                loads(line)
            except ValueError as exc:
                raise FormatError(_bad_line(text, pos, line, exc)) from None
        pos += len(line) + 1
    raise AssertionError("unreachable: a line failed once and not twice")  # pragma: no cover


def _line_text(text: Text, pos: int, line: bytes) -> Text:
    """``line`` (at offset ``pos`` of ``text``) as a Text that names places as ``text`` does."""
    return Text(text.url, line, text.start + pos, False, lambda i: text.where(pos + i))


def _bad_line(text: Text, pos: int, line: bytes, exc: ValueError) -> str:
    message = str(exc)
    if isinstance(exc, json.JSONDecodeError):
        message = f"{exc.msg} at column {exc.colno}"
    tail = ""
    if text.last and pos + len(line) == len(text.data) and not text.data.endswith(b"\n"):
        tail = " (the file ends in the middle of this line: truncated?)"
    return f"{text.where(pos)}: this line is not JSON: {message}{tail}"


def to_arrow(text: Text, schema: Any = None) -> Any:
    """The lines of ``text`` (JSON objects) as an Arrow table, through ``pyarrow.json``."""
    import pyarrow as pa
    import pyarrow.json as pj

    data = text.data
    if not data.strip():
        return (schema or pa.schema([])).empty_table()
    parse_options = pj.ParseOptions(explicit_schema=schema) if schema is not None else None
    # one block, one thread: a partition is the unit of parallelism (and blocks cost time)
    read_options = pj.ReadOptions(use_threads=False, block_size=len(data) + 1)
    try:
        return pj.read_json(pa.BufferReader(pa.py_buffer(data)), read_options, parse_options)
    except pa.ArrowInvalid as exc:
        parse(text)  # names the line when one is not JSON
        raise FormatError(f"{text.where(0)} (or the {len(data)} bytes after it): {exc}") from None

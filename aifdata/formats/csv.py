"""CSV and TSV, plain or gzip: split exactly at record starts, quoted newlines included.

Where a record starts cannot be told from the bytes near an offset: a newline
inside a quoted field (RFC 4180 allows one) looks like any other, and whether
an offset lies inside quotes depends on every quote before it. So a plan of
more than one partition first reads the file once, in order, and makes a
*quote index* (:class:`QuoteIndex`): the quote parity and the newline count at
points of a grid (at most 4,096 of them, 64 KiB apart in a big file). Each
boundary is then one small read from a grid point, where the parity says
whether it starts inside quotes, to the first line end outside quotes.

The index is kept per file version in memory
(:class:`~aifdata.formats._base.KeptMetadata`) and under
``$AIFDATA_HOME/csvindex/`` with the version's key (size plus ETag or mtime,
or checksum; inode and ctime for a local file), so later plans in any process
skip the pass; an index of another version is never used, a damaged one is
built again, and reading needs none.

Counting quotes gives the state only where every quote opens a field, closes
one, or is doubled inside one (RFC 4180). A quote inside an unquoted field
(``5" screen``) or after a closing quote breaks that; pyarrow reads it as a
literal character. When the pass meets one, it starts again and follows
pyarrow's own rules instead (a quote opens a field only at its start; inside
one, ``""`` is a quote and any other quote closes it), walking the quotes one
by one, and so do the boundary lookups: such a file splits exactly as pyarrow
reads it, a little slower to plan. A quote that never closes is refused
(FormatError with its byte offset). A plan of one partition reads only the
header. Nothing here is a guess: no partition starts inside a field, and
reading checks again where quotes are counted (a partition whose quotes do
not pair up raises instead of returning rows).

The header (the first record, when ``header=True``, the default) travels with
every partition: each partition's spec holds where it ends, and reading takes
the column names from there (read once per file version and process).
Partitions hold byte ranges, the codec, the delimiter (``'\\t'`` for ``.tsv``
or ``.tab`` names and for tab-separated first lines, else ``','``), and the
line number where they start, for error messages.

Reading parses with ``pyarrow.csv`` (``newlines_in_values=True``) and gives an
Arrow table; every column is a string column unless ``column_types`` names its
type, so every partition has the same schema (inference per partition would
not: one partition's integers are another's floats). The union of the
partitions equals ``pyarrow.csv.read_csv`` of the whole file with the same
column types. A record with the wrong number of fields raises FormatError
naming the file, its byte offset and its line. BGZF files are read as gzip
(through the index of :mod:`aifdata.codecs.gzip`): their block boundaries
cannot be record boundaries without the quote parity there.
"""

from __future__ import annotations

import contextlib
import csv as _csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import aifdata_home
from .._errors import FormatError
from .._threads import ThreadPool
from ..codecs import BOUNDARY_WINDOW, Boundary, ByteReader, Text, find_start
from ..codecs._gzip_index import version_key
from ._base import (
    KeptMetadata,
    Partition,
    RangeSource,
    TextFormat,
    open_source,
    partition_count,
)

#: Points of the quote index at most (each: one parity byte and one line count).
GRID_POINTS = 4096
#: Bytes between grid points at most.
GRID_BYTES = 64 * 2**10
#: Bytes read per request while building the quote index (one pass, in order).
SCAN_BYTES = 16 * 2**20
#: Boundaries looked up at once (each is one small range read).
PLAN_THREADS = 16
_BOM = b"\xef\xbb\xbf"
_QUOTE, _LF, _CR = 34, 10, 13
_KEPT = KeptMetadata()
_LAYOUT = "aifdata-csv-quote-index 2"

__all__ = ["CsvFormat", "QuoteIndex", "build_index", "record_start_rule"]


@dataclass(frozen=True)
class QuoteIndex:
    """What one pass over a CSV file keeps: at grid point ``i`` (byte ``i * grid``),
    the quote parity (1: inside a quoted field) and the number of ``\\n`` before it."""

    grid: int
    parity: bytes
    lines: tuple[int, ...]
    extent: int
    delimiter: bytes
    #: The file has quotes RFC 4180 does not allow (``5" screen``): ``parity`` holds the
    #: state of pyarrow's quote rules instead (0 outside, 1 inside, 2 on an escaped quote).
    lenient: bool = False


class CsvFormat(TextFormat):
    """Comma- or tab-separated values (RFC 4180 quoting), uncompressed or in gzip."""

    name = "csv"
    generic = True  # SAM, VCF and much else are tab-separated too
    extensions = (".csv", ".tsv", ".tab")
    description = "CSV/TSV rows; split at record starts found by a quote index, header kept"
    codecs = ("none", "gzip")  # BGZF falls back to gzip (see the module docstring)
    head_bytes = 4 * 2**10

    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        """The first record start in ``data``, valid only where ``data[1]`` is known to
        lie outside quotes (a plan asks :func:`record_start_rule` with the parity)."""
        return record_start_rule(0)(data, at_eof)

    def sniff_text(self, text: bytes, path: str) -> bool:
        if b"\x00" in text:
            return False
        if _named(path):
            return True
        if text.lstrip()[:1] in (b"{", b"["):
            return False  # JSON (lines) has commas in each line too
        lines = text.removeprefix(_BOM).split(b"\n")[:2]
        if len(lines) < 2 or not lines[1].strip():
            return False
        delimiter = _delimiter(text, path)
        return all(delimiter in line for line in lines)

    def explain_text(self, text: bytes) -> tuple[int, str]:
        if b"\x00" in text:
            return text.find(b"\x00"), "expected text, found a NUL byte (binary data)"
        return 0, (
            f"expected delimited text (a ',' or a tab in each of the first two lines), found"
            f" {text[:32]!r}"
        )

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        """Partitions of about ``target_bytes`` (or ``n`` of them) of the uncompressed
        text, each starting at a record outside quotes (see the module docstring)."""
        if source.size == 0:
            return []
        head = self.checked_head(source, self.head_bytes)
        codec = self.codec(head, source.url)
        stream = codec.open(source)
        extent = stream.extent
        if extent == 0:
            return []
        delimiter = _delimiter(codec.peek(head, source.url), source.url)
        reader = _reader(stream, source)
        header_end = _header_end(reader, codec.peek(head, source.url), delimiter)
        count = partition_count(extent, n, target_bytes, at_most=extent)
        bounds: list[tuple[int, int]] = [(0, 0)]
        spec = {"codec": codec.name, "delimiter": delimiter.decode(), "header_end": header_end}
        if count > 1:
            index = _index(source, reader, extent, delimiter)
            bounds += _snapped(reader, index, count)
            if index.lenient:
                spec["lenient"] = True  # quotes that do not pair up are no sign of a bad plan
        cuts = sorted({b for b in bounds if b[0] < extent and (b[0] == 0 or b[0] >= header_end)})
        ends = [start for start, _ in cuts[1:]] + [extent]
        return [
            Partition.make(
                source.url,
                self.name,
                i,
                source.fingerprint,
                start=start,
                end=end,
                line=line,
                **spec,
            )
            for i, ((start, line), end) in enumerate(zip(cuts, ends, strict=True))
        ]

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Any = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        source = open_source(partition, source, config)
        stream = self.codec_of(partition).open(source)
        text = stream.text(partition["start"], partition["end"], self.boundary)
        return self._table(partition, text, source, **options)

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource, after: bytes = b"",
        **options: Any,
    ) -> Any:  # fmt: skip
        codec = self.codec_of(partition)
        if not codec.file_offsets:
            return self.read(partition, source, **options)
        text = codec.open(source).text(partition["start"], partition["end"], self.boundary, data)
        return self._table(partition, text, source, **options)

    def parse(self, text: Text, **options: Any) -> Any:
        raise NotImplementedError("CSV partitions are parsed with their header (see read)")

    def _table(
        self, partition: Partition, text: Text, source: RangeSource, header: bool = True,
        column_types: dict[str, Any] | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        if options:
            raise TypeError(f"unexpected options for csv: {', '.join(sorted(options))}")
        names = self.header(partition, source)
        delimiter = partition["delimiter"].encode()
        skip = 0
        if header and partition["start"] == 0:
            skip = partition["header_end"]
        if not header:
            names = [f"f{i}" for i in range(len(names))]
        _check_quotes(text, skip, partition)
        return parse_table(text, skip, names, delimiter, partition["line"], column_types)

    def header(self, partition: Partition, source: RangeSource) -> list[str]:
        """The column names: the fields of the file's first record (kept per version)."""
        slot = _KEPT.slot(source)
        names: list[str] | None = slot.get("header")
        if names is None:
            stream = self.codec_of(partition).open(source)
            raw = stream.text(0, partition["header_end"], self.boundary).data
            names = slot["header"] = _header_names(raw, partition["delimiter"], source.url)
        return names

    def table(self, partition: Partition) -> str:
        return f"csv:{partition.url}"  # the columns are the file's header

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """The partition's rows as a DataFrame, a column per header field."""
        return self.read(partition, **options).to_pandas()

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """The partition's rows as a ``pyarrow.Table`` (what :meth:`read` returns)."""
        return self.read(partition, **options)

    def records(self, partition: Partition, **options: Any) -> Any:
        """The rows as dicts, column name -> value."""
        yield from self.read(partition, **options).to_pylist()


def _named(path: str) -> bool:
    lower = path.lower().removesuffix(".gz").removesuffix(".bgz")
    return lower.endswith(CsvFormat.extensions)


def _delimiter(text: bytes, path: str) -> bytes:
    """``\\t`` for a ``.tsv``/``.tab`` name or a first line with tabs and no commas."""
    lower = path.lower().removesuffix(".gz").removesuffix(".bgz")
    if lower.endswith((".tsv", ".tab")):
        return b"\t"
    if lower.endswith(".csv"):
        return b","
    line = text.split(b"\n", 1)[0]
    return b"\t" if b"\t" in line and b"," not in line else b","


def _reader(stream: Any, source: RangeSource) -> ByteReader:
    """The uncompressed bytes of the file, by range (the file itself when plain)."""
    return getattr(stream, "uncompressed", source)


def record_start_rule(parity: int, lenient: bytes | None = None) -> Boundary:
    """A boundary rule for ``data`` whose byte 1 lies inside quotes when ``parity`` is 1:
    the index after the first line end (``\\n``, or ``\\r`` not before ``\\n``) outside
    quotes, ``data[0]`` taken as the byte before. ``lenient``: the delimiter, to follow
    pyarrow's quote rules (``parity`` 2: byte 1 is the second quote of a ``""``) instead
    of counting quotes."""

    def rule(data: bytes, at_eof: bool) -> int | None:
        import numpy as np

        arr = np.frombuffer(data, np.uint8)
        if len(arr) == 0:
            return None
        limit = len(arr)
        if lenient is None:
            toggles = arr == _QUOTE
        else:
            at = (np.flatnonzero(arr[1:] == _QUOTE) + 1).tolist()
            walk = _walk(data, at, parity, lenient, -1, len(data), at_eof)
            toggles = np.zeros(len(arr), bool)
            toggles[walk.toggles] = True
            limit = len(arr) if walk.undecided is None else walk.undecided
        flips = np.cumsum(toggles, dtype=np.int64)
        # state at byte i (i >= 1): parity xor flips in data[1:i]; at byte 0: parity xor data[0]
        before = np.empty(len(arr), np.int64)
        before[0] = int(parity > 0) ^ int(toggles[0])
        before[1:] = int(parity > 0) + flips[:-1] - flips[0]
        outside = (before & 1) == 0
        ends = outside & (arr == _LF)
        lone_cr = outside & (arr == _CR)
        lone_cr[:-1] &= arr[1:] != _LF
        if not at_eof:
            lone_cr[-1] = False  # a CR at the window's end: a CRLF or a lone CR, undecided
        found = np.flatnonzero((ends | lone_cr)[:limit])
        return int(found[0]) + 1 if len(found) else None

    return rule


_OUT, _IN, _ESCAPED = 0, 1, 2


@dataclass
class _Walk:
    toggles: list[int]  # quotes that open or close a quoted field
    state: int  # after the bytes walked (_ESCAPED: the next byte is an escaped quote)
    undecided: int | None  # a quote at the end of the bytes whose meaning needs the next
    escapes: list[int]  # the first quote of each ``""`` inside a quoted field


def _walk(
    data: bytes, at: list[int], state: int, delimiter: bytes, previous: int, own: int,
    at_end: bool, bof: int = -1,
) -> _Walk:  # fmt: skip
    """pyarrow's quote rules over the quotes ``at`` (indices in ``data``, all below
    ``own``; ``data`` may hold one byte more): a quote opens a field only at its start
    (after a delimiter, a line end or the start ``bof``), and inside one closes it unless
    doubled. ``previous``: the byte before ``data`` (-1: the start of the file)."""
    starts = {_LF, _CR, delimiter[0]}
    toggles: list[int] = []
    escapes: list[int] = []
    i, count, size = 0, len(at), len(data)
    while i < count:
        x = at[i]
        if state == _ESCAPED:
            state, i = _IN, i + 1
        elif state == _OUT:
            before = data[x - 1] if x > 0 else previous
            if before in starts or x == bof or before < 0:
                toggles.append(x)
                state = _IN
            i += 1
        elif x + 1 >= size and not at_end:
            return _Walk(toggles, state, x, escapes)
        elif x + 1 < size and data[x + 1] == _QUOTE:
            escapes.append(x)
            i += 2
            if x + 1 >= own:
                state = _ESCAPED  # the second quote is the next chunk's first byte
        else:
            toggles.append(x)
            state = _OUT
            i += 1
    return _Walk(toggles, state, None, escapes)


def _index(source: RangeSource, reader: ByteReader, extent: int, delimiter: bytes) -> QuoteIndex:
    """The quote index of this version of the file: kept in memory, else stored under
    ``$AIFDATA_HOME/csvindex/`` (used only while its version key matches), else built."""
    slot = _KEPT.slot(source)
    index: QuoteIndex | None = slot.get(("quotes", delimiter))
    if index is None:
        path = index_path(source.url, source.version, delimiter)
        key = version_key(source)
        index = _load(path, key, extent, delimiter)
        if index is None:
            index = build_index(reader, extent, delimiter, source.url)
            _store(path, key, index)
        slot["quotes", delimiter] = index
    return index


def index_path(url: str, version: str, delimiter: bytes) -> Path:
    """Where the quote index of this version of ``url`` is stored."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    tail = hashlib.sha256(f"{version}|{delimiter!r}".encode()).hexdigest()[:16]
    return aifdata_home() / "csvindex" / f"{digest}-{delimiter.hex()}-{tail}.json"


def _load(path: Path, key: str, extent: int, delimiter: bytes) -> QuoteIndex | None:
    try:
        stored = json.loads(path.read_text())
        if stored["layout"] != _LAYOUT or stored["key"] != key:
            return None  # another version of the file (or of this layout): never trusted
        index = QuoteIndex(int(stored["grid"]), bytes.fromhex(stored["parity"]),
                           tuple(int(n) for n in stored["lines"]), int(stored["extent"]),
                           stored["delimiter"].encode(), bool(stored["lenient"]))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, cut short or damaged: built again
    points = -(-index.extent // index.grid) if index.extent else 0
    if (index.extent, index.delimiter) != (extent, delimiter) or not (
        len(index.parity) == len(index.lines) == points and set(index.parity) <= {0, 1, 2}
    ):
        return None
    return index


def _store(path: Path, key: str, index: QuoteIndex) -> None:
    """Write atomically (a temporary name, then a rename) and drop older versions' files;
    a home that cannot be written only costs the next plan a pass."""
    payload = {
        "layout": _LAYOUT, "key": key, "grid": index.grid, "parity": index.parity.hex(),
        "lines": list(index.lines), "extent": index.extent,
        "delimiter": index.delimiter.decode(), "lenient": index.lenient,
    }  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".building-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(payload, out)
        os.replace(temporary, path)
    except BaseException as exc:  # a full disk, or an interrupt: no temporary file left
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            return
        raise
    url_key, delimiter_key, _ = path.name.split("-", 2)
    for old in path.parent.glob(f"{url_key}-*.json"):
        parts = old.name.split("-")
        # this file's other versions with this delimiter (and names from before the
        # delimiter was in them); another delimiter's index of this version stays
        if old != path and (len(parts) == 2 or parts[1] == delimiter_key):
            old.unlink(missing_ok=True)


def build_index(reader: ByteReader, extent: int, delimiter: bytes, url: str) -> QuoteIndex:
    """One pass over the uncompressed text: the quote state and line count at each grid
    point. Quotes are counted (RFC 4180) until one breaks that rule; then the pass starts
    again with pyarrow's rules (:func:`_walk`). FormatError for a quote that never closes."""
    try:
        return _scan(reader, extent, delimiter, url, lenient=False)
    except _Stray:
        return _scan(reader, extent, delimiter, url, lenient=True)


class _Stray(Exception):
    """A quote RFC 4180 does not allow: counting quotes does not tell the state."""


def _scan(reader: ByteReader, extent: int, delimiter: bytes, url: str, lenient: bool
          ) -> QuoteIndex:  # fmt: skip
    import numpy as np

    grid = max(1, min(GRID_BYTES, -(-extent // GRID_POINTS)))
    step = max(grid, SCAN_BYTES // grid * grid)
    states, lines = bytearray(), []
    quotes = newlines = 0
    state = _OUT
    previous = -1  # the byte before the chunk (-1: the start of the file)
    last_open = -1
    allowed = np.array(sorted({_LF, _CR, _QUOTE, delimiter[0]}), np.uint8)
    for a in range(0, extent, step):
        b = min(a + step, extent)
        data = reader.read(a, min(b + 1, extent))  # one byte more: what follows a quote
        arr = np.frombuffer(data, np.uint8)
        own = arr[: b - a]
        at = np.flatnonzero(own == _QUOTE)
        nl = np.flatnonzero(own == _LF)
        points = np.arange(-(-a // grid) * grid, b, grid) - a
        lines += (newlines + np.searchsorted(nl, points)).tolist()
        newlines += len(nl)
        if lenient:
            bof = 3 if a == 0 and data.startswith(_BOM) else -1
            walk = _walk(data, at.tolist(), state, delimiter, previous, b - a, True, bof)
            flips = np.searchsorted(np.array(walk.toggles, np.int64), points)
            inside = (int(state > 0) + flips) & 1
            escaped = np.isin(points - 1, np.array(walk.escapes, np.int64))
            inside[escaped] = _ESCAPED
            if len(points) and points[0] == 0:
                inside[0] = state
            states += inside.astype(np.uint8).tobytes()
            if walk.toggles and (int(state > 0) + len(walk.toggles)) & 1:
                last_open = a + walk.toggles[-1]  # it opened a field still open
            state = walk.state
        else:
            states += ((quotes + np.searchsorted(at, points)) & 1).astype(np.uint8).tobytes()
            if len(at):
                opening = ((quotes + np.arange(len(at))) & 1) == 0
                last_open = a + int(at[opening][-1]) if opening.any() else last_open
                if _stray(arr, at, opening, previous, a, allowed) is not None:
                    raise _Stray
            quotes += len(at)
            state = quotes & 1
        previous = int(own[-1]) if len(own) else previous
    if state != _OUT:
        raise FormatError(
            f"{url}: byte {last_open}: a quoted field opens here and never closes (the file"
            " ends inside it: truncated?)"
        )
    return QuoteIndex(grid, bytes(states), tuple(lines), extent, delimiter, lenient)


def _stray(
    arr: Any, at: Any, opening: Any, previous: int, a: int, allowed: Any
) -> int | None:  # fmt: skip
    """The first quote (index in the chunk) that neither opens a field (after a delimiter,
    a line end, the start or a BOM), closes one (before those or the end), nor doubles."""
    import numpy as np

    before = np.where(at > 0, arr[np.maximum(at - 1, 0)], max(previous, 0)).astype(np.uint8)
    start = (at == 0) & (previous < 0)
    if a == 0:
        start |= (at == 3) & (arr[:3].tobytes() == _BOM)
    after_ok = at + 1 >= len(arr)
    following = arr[np.minimum(at + 1, len(arr) - 1)]
    good_open = start | np.isin(before, allowed)
    good_close = after_ok | np.isin(following, allowed)
    bad = np.flatnonzero(np.where(opening, ~good_open, ~good_close))
    return int(at[bad[0]]) if len(bad) else None


def _snapped(reader: ByteReader, index: QuoteIndex, count: int) -> list[tuple[int, int]]:
    """``(record start, line)`` near each of ``count - 1`` even splits: each moved to the
    grid point at or after it, then to the first record start there (looked up at once:
    each is one small read, latency rather than bandwidth)."""
    extent, grid = index.extent, index.grid
    points = sorted({-(-(extent * i // count) // grid) for i in range(1, count)} - {0})
    points = [point for point in points if point * grid < extent]
    with ThreadPool(min(PLAN_THREADS, max(1, len(points)))) as pool:
        found = pool.map(lambda point: _snap(reader, index, point), points)
        return [start for start in found if start[0] < extent]


def _snap(reader: ByteReader, index: QuoteIndex, point: int) -> tuple[int, int]:
    """The first record start at or after grid point ``point``, and its line."""
    lenient = index.delimiter if index.lenient else None
    at, rule, seen = point * index.grid, record_start_rule(index.parity[point], lenient), [0]

    def counting(data: bytes, at_eof: bool) -> int | None:
        found = rule(data, at_eof)
        if found is not None:  # the newlines from ``at`` to the record start
            seen[0] = data.count(b"\n", 1, found)
        return found

    found = find_start(reader, at, counting)
    return found, index.lines[point] + seen[0]


def _header_end(reader: ByteReader, text: bytes, delimiter: bytes) -> int:
    """Where the first record that is not a blank line ends (blank lines before it
    are skipped, as pyarrow skips them, however many: past ``text``, the file's head,
    they are read on in growing windows); the file's end when it holds none."""
    lead = _first_filled(reader, text)
    if lead >= reader.size:
        return reader.size
    first = reader.read(lead, lead + 1)
    return find_start(reader, lead + 1, record_start_rule(int(first == b'"'), delimiter))


def _first_filled(reader: ByteReader, text: bytes) -> int:
    """The offset of the file's first byte that is not a line end (after a BOM);
    ``text``, the file's head, is looked at first."""
    offset = len(_BOM) if text.startswith(_BOM) else 0
    data, window = text[offset:], max(len(text), BOUNDARY_WINDOW)
    while True:
        rest = data.lstrip(b"\r\n")
        if rest:
            return offset + len(data) - len(rest)
        offset += len(data)
        if offset >= reader.size:
            return reader.size
        data = reader.read(offset, min(reader.size, offset + window))
        if not data:
            return reader.size
        window *= 2


def _header_names(raw: bytes, delimiter: str, url: str) -> list[str]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{url}: byte {exc.start}: the header is not UTF-8 ({exc})") from None
    try:
        rows = _csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        return next((row for row in rows if row), [])
    except _csv.Error as exc:
        raise FormatError(f"{url}: byte 0: the header does not parse ({exc})") from None


def _check_quotes(text: Text, skip: int, partition: Partition) -> None:
    """A partition of a split file starts outside quotes; its quotes must pair up before
    its end (a whole file read as one is pyarrow's to judge)."""
    lenient = partition.options.get("lenient", False)
    if (
        not lenient
        and (partition["start"] > 0 or not text.last)
        and text.data.count(b'"', skip) & 1
    ):
        raise FormatError(
            f"{text.where(len(text.data))}: this partition ends inside a quoted field (its"
            " quotes do not pair up): the file is malformed or not the one planned"
        )


def parse_table(
    text: Text, skip: int, names: list[str], delimiter: bytes, line: int,
    column_types: dict[str, Any] | None = None,
) -> Any:  # fmt: skip
    """The rows of ``text.data[skip:]`` as an Arrow table with columns ``names``."""
    import pyarrow as pa
    import pyarrow.csv as pc

    types = {name: pa.string() for name in names}
    types.update(column_types or {})
    schema = pa.schema([(name, types[name]) for name in names])
    body = memoryview(text.data)[skip:]
    if not names or not _has_row(text.data, skip):
        return schema.empty_table()
    try:
        return pc.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pc.ReadOptions(column_names=names, use_threads=False),
            parse_options=pc.ParseOptions(delimiter=delimiter.decode(), newlines_in_values=True),
            convert_options=pc.ConvertOptions(column_types=types, strings_can_be_null=False),
        ).cast(schema)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        where = _bad_row(bytes(body), len(names), delimiter)
        if where is None:
            raise FormatError(f"{text.where(skip)}: {exc}") from None
        offset, fields = where
        row_line = line + text.data.count(b"\n", 0, skip + offset) + 1
        raise FormatError(
            f"{text.where(skip + offset)} (line {row_line}): expected {len(names)} fields"
            f" (the header's), found {fields}"
        ) from None


def _has_row(data: bytes, skip: int) -> bool:
    """Whether ``data[skip:]`` holds more than line ends."""
    return any(data[i : i + 4096].strip(b"\r\n") for i in range(skip, len(data), 4096))


def _bad_row(data: bytes, expected: int, delimiter: bytes) -> tuple[int, int] | None:
    """``(offset, fields)`` of the first non-empty record whose field count is not
    ``expected`` (``data`` starts outside quotes); None if every record has it."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    inside = (np.cumsum(arr == _QUOTE) - (arr == _QUOTE)) & 1
    outside = inside == 0
    lone_cr = arr == _CR
    lone_cr[:-1] &= arr[1:] != _LF
    ends = np.flatnonzero(outside & ((arr == _LF) | lone_cr))
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(arr)]))
    separators = np.cumsum(outside & (arr == delimiter[0]))
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        if not data[start:stop].strip(b"\r"):
            continue
        fields = 1 + int(separators[stop - 1] - (separators[start - 1] if start else 0))
        if fields != expected:
            return start, fields
    return None

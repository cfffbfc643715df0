"""FASTA, plain or compressed (gzip, BGZF): split by records, or by residue ranges of a sequence.

**By records** (the default): a record starts at a line that begins with '>',
and belongs to the partition in which that line starts. Sequence lines may be
wrapped at any width, differently in each record; blank lines are dropped and
Windows line endings (CRLF) read as LF. Any byte offset snaps to the next
'>' at a line start (:func:`first_header`), so plain, gzip and BGZF files
split as FASTQ does (see :mod:`aifdata.codecs`): one small read per boundary.
A boundary that falls inside a long sequence (a chromosome) snaps to the header
after it; one forward scan serves every boundary inside that sequence, and a
BGZF plan drops the block starts whose partition would hold no record (so no
partition inflates a chromosome to find where it ends). A file of a few long
sequences is thus read about once when planned without an index: give it a
``.fai``, or cut it by residues.

When a samtools faidx index (``NAME.fai``) lies beside an uncompressed file,
planning takes the record starts from it and reads nothing of the data but a
few bytes at each boundary, which must be a header line start (the index's
arithmetic, checked). A BGZF file is planned the same way from the ``.fai``
and the ``.gzi`` that ``samtools faidx`` writes beside it (the ``.gzi`` maps
uncompressed offsets to block starts): its record partitions start at the
blocks that hold the byte before a record start, its residue ranges are read
as the blocks that hold them. An index is tied to the data: the data must end
where the index's last sequence does (for BGZF, the ``.gzi``'s last block must
be the file's last block of data, bgzip's empty end-of-file block after it),
and a residue partition, when read, checks the header line before a
sequence's first residue and the byte after its last. An index that does not
fit the file (data appended or edited after it was made, a boundary that is
not a header, a header that names another sequence) is **refused**:
FormatError naming the index, the data file and the byte, and what to do
(``samtools faidx FILE`` to make it again, or ``index=False`` to plan without
it). A stale index is a sign that the data and what other tools will read
from it disagree; aifdata does not guess which is right. ``index=True``
insists on an index, ``index=None`` (the default) uses one when present.
A plain gzip file (which samtools cannot index) is planned through its codec.

**By residues** (``by="residues"``, with ``region="chr1"`` or
``"chr1:1-1000000"``, 1-based and inclusive as samtools and pyfaidx write
it; without a region, every sequence): each partition is one residue range
``(name, start, end)`` (0-based, end excluded) of one sequence, and the
ranges of a sequence concatenate to it exactly. With a ``.fai``, planning
reads the index and a few bytes at the sequence's two ends; without one,
planning reads the whole file once (:func:`~aifdata.formats._fasta_index.scan`,
the pass samtools faidx makes; gzip and BGZF are read through a stored gzip
index, the same cost). Residue ranges need the lines of a sequence to hold the
same number of residues but its last (as samtools requires); reading one
checks that its line ends sit where the layout says.

Records come out as :class:`FastaRecord` (``name``: the header's first word,
``description``: the rest of the header, ``sequence``: residues without line
breaks); residue ranges as :class:`SequenceSlice`; ``to_arrow`` and
``to_pandas`` give tables of them. Text before the first '>', a NUL byte,
or any residue byte other than a letter, '*', '-' or '.' is a FormatError
naming the file and the byte offset.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
from dataclasses import dataclass
from typing import Any, NamedTuple

import aifdata.codecs as codecs

from .._config import Config
from .._errors import FormatError
from .._threads import ThreadPool
from ..codecs import BOUNDARY_WINDOW, Boundary, ByteReader, Codec, Text
from ..codecs.bgzf import BgzfStream, decompress_blocks
from ._base import Partition, RangeSource, TextFormat, open_source, partition_count
from ._fasta_index import (
    SCAN_BLOCK,
    FaiEntry,
    GziText,
    check_sequence,
    mismatch,
    parse_fai,
    parse_gzi,
    scan,
)
from ._region import split_region

__all__ = [
    "FastaFormat",
    "FastaRecord",
    "SequenceSlice",
    "first_header",
    "parse",
    "parse_region",
]

#: Residue bytes: IUPAC letters of either case, '*' (stop), '-' and '.' (gaps).
RESIDUES = bytes(range(65, 91)) + bytes(range(97, 123)) + b"*-."
#: Bytes around a boundary an index planner reads to check it is a header start.
CHECK_BYTES = 256
#: Sequences a residue plan from a ``.fai`` spot-checks (first, last, evenly between).
CHECKED_SEQUENCES = 8


class FastaRecord(NamedTuple):
    """One FASTA record."""

    name: str
    description: str
    sequence: str


class SequenceSlice(NamedTuple):
    """Residues ``[start, end)`` (0-based) of sequence ``name``."""

    name: str
    start: int
    end: int
    sequence: str


class FastaFormat(TextFormat):
    """FASTA, uncompressed, in gzip or in BGZF; by records or by residue ranges."""

    name = "fasta"
    extensions = (".fa", ".fasta", ".fna", ".faa", ".fas")
    description = "FASTA sequences; split at any record, or into residue ranges of a sequence"
    codecs = ("none", "gzip", "bgzf")

    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        return first_header(data, at_eof)

    def sniff_text(self, text: bytes, path: str) -> bool:
        return text.startswith(b">") and b"\x00" not in text

    def explain_text(self, text: bytes) -> tuple[int, str]:
        if not text.startswith(b">"):
            return 0, f"expected a header line starting with '>', found {text[:16]!r}"
        return text.find(b"\x00"), "expected FASTA text, found a NUL byte (binary data)"

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        by: str = "records",
        region: str | None = None,
        index: bool | None = None,
    ) -> list[Partition]:
        """Partitions by records, or (``by="residues"``) residue ranges of ``region``.

        ``index``: use the ``.fai`` beside the file when there is one (None),
        insist on one (True), or plan without it (False)."""
        if by not in ("records", "residues"):
            raise ValueError(f"by must be 'records' or 'residues', not {by!r}")
        if region is not None and by != "residues":
            raise ValueError("region= names residues: give by='residues' with it")
        if source.size == 0:
            return []
        head = self.checked_head(source, self.head_bytes)
        codec = self.codec(head, source.url)
        if codec.name == "gzip" and index:
            raise FormatError(
                f"{source.url}: a {codec.label} file; a .fai index is used for uncompressed"
                " and BGZF FASTA only (bgzip it; or plan with index=None or False: the codec"
                " plans it)"
            )
        fai = _read_fai(source, index, codec.name) if index is not False else None
        if by == "residues":
            return _plan_residues(self.name, source, codec.name, fai, region, n, target_bytes)
        if fai is None:
            return self._plan_records(source, codec, n, target_bytes)
        if fai.gzi is not None:
            return _plan_bgzf_records_from_fai(self.name, source, fai, n, target_bytes)
        return _plan_records_from_fai(self.name, source, fai, n, target_bytes)

    def _plan_records(
        self, source: RangeSource, codec: Codec, n: int | None, target_bytes: int | None
    ) -> list[Partition]:
        """Record partitions found in the text: each boundary snapped to the next header,
        looked for once however many boundaries fall inside one long sequence."""
        stream = codec.open(source)
        extent = stream.extent
        if extent == 0:
            return []
        count = partition_count(extent, n, target_bytes, at_most=extent)
        nominal = stream.nominal(count)
        if isinstance(stream, BgzfStream):
            starts = _bgzf_starts(stream, nominal, self.boundary)
        else:
            reader = getattr(stream, "uncompressed", source)  # gzip: its uncompressed bytes
            starts = _snap_all(reader, nominal)
        bounds = [0, *sorted({s for s in starts if 0 < s < extent}), extent]
        fingerprint = source.fingerprint
        return [
            Partition.make(source.url, self.name, i, fingerprint, start=a, end=b, codec=codec.name)
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
        ]

    def parse(self, text: Text, as_arrow: bool = False, **options: Any) -> Any:
        records = parse(text)
        return records_to_arrow(records) if as_arrow else records

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        if "name" not in partition.options:
            return super().read(partition, source, config, **options)
        source = open_source(partition, source, config)
        spec = partition.options
        span = self.byte_span(partition)
        if span is not None:
            data = source.read(*span)
        else:
            stream = codecs.get("gzip").open(source)
            data = stream.uncompressed.read(*_text_span(spec))  # type: ignore[attr-defined]
        return self._residues(partition, data, source.url, **options)

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        if "name" not in partition.options:
            return super().byte_span(partition)
        if partition["codec"] == "bgzf":
            return partition["block_start"], partition["block_end"]
        if partition["codec"] != "none":
            return None
        return _text_span(partition.options)

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource, after: bytes = b"",
        **options: Any,
    ) -> Any:  # fmt: skip
        if "name" not in partition.options:
            return super().decode(partition, data, source, after, **options)
        return self._residues(partition, data, source.url, **options)

    def _residues(self, partition: Partition, data: bytes, url: str, as_arrow: bool = False,
                  **options: Any) -> Any:  # fmt: skip
        """The slice of a residue partition from ``data``: the file bytes of its
        :meth:`byte_span` (the BGZF blocks that hold its text), or its text."""
        spec = partition.options
        if spec["codec"] == "bgzf":
            inflated, _ = decompress_blocks(data, url, spec["block_start"])
            base = spec["block_base"]
            data = inflated[spec["read_from"] - base : spec["read_to"] - base]
        if "read_from" in spec:
            data = check_edges(spec, data, url)
        piece = residue_slice(spec, data, url)
        return slices_to_arrow([piece]) if as_arrow else [piece]

    def table(self, partition: Partition) -> str:
        return "fasta-residues" if "name" in partition.options else "fasta"

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """Columns ``name``, ``description``, ``sequence`` (residue ranges: ``name``,
        ``start``, ``end``, ``sequence``)."""
        return self.to_arrow(partition, **options).to_pandas()

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A ``pyarrow.Table`` of the partition (the columns of :meth:`to_pandas`)."""
        return self.read(partition, as_arrow=True, **options)


def _snap_all(reader: ByteReader, offsets: list[int]) -> list[int]:
    """The first header at or after each of ``offsets`` (sorted): one window read each,
    looked at together; past a window, one forward scan serves every offset it passes."""
    with ThreadPool(min(16, max(1, len(offsets)))) as pool:
        probes = list(pool.map(lambda at: _probe(reader, at), offsets))
    out, reached = [], -1
    for offset, found in zip(offsets, probes, strict=True):
        if found is None:
            found = reached if offset <= reached else _scan_to_header(reader, offset)
        out.append(found)
        reached = max(reached, found)
    return out


def _probe(reader: ByteReader, offset: int) -> int | None:
    """The first header at or after ``offset`` within one window (None: not in it)."""
    data = reader.read(offset - 1, offset - 1 + BOUNDARY_WINDOW)
    found = first_header(data, False)
    if found is not None:
        return offset - 1 + found
    return reader.size if offset - 1 + len(data) >= reader.size else None


def _scan_to_header(reader: ByteReader, offset: int) -> int:
    """The first header at or after ``offset``, reading forward in growing pieces."""
    at, window = offset - 1, BOUNDARY_WINDOW
    while at < reader.size:
        data = reader.read(at, at + window)
        found = first_header(data, False)
        if found is not None:
            return at + found
        if not data:
            break
        at += len(data) - 1  # the last byte is the next piece's context
        window = min(window * 2, SCAN_BLOCK)
    return reader.size


def _bgzf_starts(stream: BgzfStream, nominal: list[int], boundary: Boundary) -> list[int]:
    """Block starts where a partition of a BGZF file begins, none of them empty: a block
    whose first header lies past the next start is dropped (else reading its partition, and
    each before it in one long sequence, would inflate up to that header)."""
    with ThreadPool(min(16, max(1, len(nominal)))) as pool:
        starts = sorted({s for s in pool.map(lambda at: stream.snap(at, boundary), nominal)
                         if 0 < s < stream.extent})  # fmt: skip
    kept, i = [], 0
    while i < len(starts):
        found, at = stream.start_of(starts[i], boundary)  # and the block that holds it
        if found is None:
            break  # no header from here to the end: these partitions would be empty
        following = starts[i + 1] if i + 1 < len(starts) else stream.extent
        if at < following:
            kept.append(starts[i])
        i += 1
        while i < len(starts) and starts[i] < at:  # the same first header: empty, dropped
            i += 1
    return kept


def first_header(data: bytes, at_eof: bool) -> int | None:
    """Index (>= 1) in ``data`` of the first line that starts with '>'; ``data[0]`` is
    context (the byte before). None: no header starts in ``data``."""
    found = data.find(b"\n>")
    return None if found < 0 else found + 1


# -- records ---------------------------------------------------------------------------


def parse(text: Text) -> list[FastaRecord]:
    """The records in ``text`` (whole records of one partition), checked."""
    data = text.data
    if not data:
        return []
    if data[0] != 62:
        raise FormatError(
            f"{text.where(0)}: expected a header line starting with '>', found {data[:16]!r}"
        )
    _refuse_control_bytes(data, text)
    clean = data.replace(b"\r\n", b"\n") if b"\r" in data else data
    records = []
    offsets = _record_offsets(data) if clean is not data else None
    at = 0
    for k, chunk in enumerate(clean[1:].split(b"\n>")):
        header, _, body = chunk.partition(b"\n")
        sequence = body.replace(b"\n", b"")
        if sequence.translate(None, RESIDUES):
            where = offsets[k] if offsets is not None else at
            _refuse_residues(data, where, text)
        records.append(_record(header, sequence, text, at))
        at += len(chunk) + 2
    return records


def _record(header: bytes, sequence: bytes, text: Text, at: int) -> FastaRecord:
    words = header.split(None, 1)  # ASCII whitespace, as samtools and pyfaidx
    try:
        name = words[0].decode() if words else ""
        description = words[1].strip().decode() if len(words) > 1 else ""
    except UnicodeDecodeError:
        bad = _first_non_utf8(header)
        raise FormatError(f"{text.where(at + 1 + bad)}: header is not UTF-8") from None
    return FastaRecord(name, description, sequence.decode("ascii"))


def _first_non_utf8(data: bytes) -> int:
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        return exc.start
    return 0


def _refuse_control_bytes(data: bytes, text: Text) -> None:
    """FormatError at a NUL byte, or at a carriage return that does not end a line."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FormatError(f"{text.where(nul)}: expected FASTA text, found a NUL byte")
    cr = data.find(b"\r")
    while cr >= 0:
        if data[cr + 1 : cr + 2] != b"\n":
            raise FormatError(
                f"{text.where(cr)}: a carriage return that does not end a line (CR LF)"
            )
        cr = data.find(b"\r", cr + 2)


def _record_offsets(data: bytes) -> list[int]:
    """Offsets of each record's '>' in ``data``."""
    out, at = [0], data.find(b"\n>")
    while at >= 0:
        out.append(at + 1)
        at = data.find(b"\n>", at + 1)
    return out


def _refuse_residues(data: bytes, record: int, text: Text) -> None:
    """FormatError at the first byte of the record at ``record`` that is not a residue."""
    end = data.find(b"\n>", record)
    end = len(data) if end < 0 else end
    pos = data.find(b"\n", record) + 1
    body = data[pos:end]
    bad = body.translate(None, RESIDUES + b"\r\n")
    i = pos + body.find(bad[:1])
    raise FormatError(
        f"{text.where(i)}: expected residues (letters, '*', '-', '.'), found {data[i : i + 1]!r}"
        + (" (';' comment lines are not supported)" if data[i : i + 1] == b";" else "")
    )


def records_to_arrow(records: list[FastaRecord]) -> Any:
    """Records as an Arrow table (``name``, ``description``, ``sequence``)."""
    import pyarrow as pa

    return pa.table(
        {
            "name": pa.array([r.name for r in records], pa.string()),
            "description": pa.array([r.description for r in records], pa.string()),
            "sequence": pa.array([r.sequence for r in records], pa.large_string()),
        }
    )


def slices_to_arrow(slices: list[SequenceSlice]) -> Any:
    """Residue ranges as an Arrow table (``name``, ``start``, ``end``, ``sequence``)."""
    import pyarrow as pa

    return pa.table(
        {
            "name": pa.array([s.name for s in slices], pa.string()),
            "start": pa.array([s.start for s in slices], pa.int64()),
            "end": pa.array([s.end for s in slices], pa.int64()),
            "sequence": pa.array([s.sequence for s in slices], pa.large_string()),
        }
    )


# -- the .fai (and a BGZF file's .gzi) ------------------------------------------------------


@dataclass(frozen=True)
class Fai:
    """A ``.fai`` read and tied to its data file: its URL, its entries, and the data's text
    they count in (the file, or a BGZF file's uncompressed bytes through its ``.gzi``)."""

    where: str
    entries: list[FaiEntry]
    text: ByteReader
    gzi: GziText | None = None


def _read_fai(source: RangeSource, index: bool | None, codec: str) -> Fai | None:
    """The ``.fai`` beside ``source`` (and a BGZF file's ``.gzi``), checked against the
    file: its sequences inside it, and the file ending where its last one does. None when
    there is none, or the file is plain gzip (FormatError when ``index`` insists)."""
    if codec not in ("none", "bgzf"):
        return None
    where = source.url + ".fai"
    found = source.read_beside(".fai")
    gzi = None
    if found is not None and codec == "bgzf":
        blob = source.read_beside(".gzi")
        if blob is None:
            if index:
                raise FormatError(f"{source.url}.gzi: no such index, which a BGZF file's .fai"
                                  " needs; make both with samtools faidx")  # fmt: skip
            return None
        at = source.url + ".gzi"
        gzi = GziText.open(source, at, parse_gzi(blob, at, source.size))
    if found is None:
        if index:
            raise FormatError(
                f"{where}: no such index; make it with samtools faidx, or plan with index=None"
            )
        return None
    text: ByteReader = gzi if gzi is not None else source
    fai = Fai(where, parse_fai(found, where, text.size), text, gzi)
    _check_tail(fai)
    return fai


def _stale(where: str, problem: str) -> FormatError:
    return FormatError(f"{where}: {problem}: {mismatch(where)}")


def _plan_records_from_fai(
    fmt: str, source: RangeSource, fai: Fai, n: int | None, target_bytes: int | None
) -> list[Partition]:
    """Partitions at record starts the index gives, each start checked in the data."""
    entries, size = fai.entries, source.size
    starts = [e.stop for e in entries[:-1]]  # where the index says each next record starts
    count = partition_count(size, n, target_bytes, at_most=len(entries))
    nominal = sorted({size * i // count for i in range(1, count)} - {0})
    chosen = sorted({starts[k] for k in (bisect.bisect_left(starts, x) for x in nominal)
                     if k < len(starts)})  # fmt: skip
    with ThreadPool(min(16, max(1, len(chosen)))) as pool:
        found = list(pool.map(lambda at: _header_at(fai, at), chosen))
    bounds = [0, *sorted(set(found)), size]
    fingerprint = source.fingerprint
    return [
        Partition.make(source.url, fmt, i, fingerprint, start=a, end=b, codec="none")
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


def _plan_bgzf_records_from_fai(
    fmt: str, source: RangeSource, fai: Fai, n: int | None, target_bytes: int | None
) -> list[Partition]:
    """Partitions of a BGZF file at the blocks that hold the byte before a record start the
    index gives (the codec's partitions: each takes the records whose header begins after
    its first block's first byte), each record start checked in the data."""
    assert fai.gzi is not None
    gzi, extent = fai.gzi, source.size
    block_of: dict[int, int] = {}  # a block, and the first record start it leads to
    for entry in fai.entries[:-1]:
        block_of.setdefault(gzi.span(entry.stop - 1, entry.stop)[0], entry.stop)
    blocks = sorted(block_of.keys() - {0})
    count = partition_count(extent, n, target_bytes, at_most=len(fai.entries))
    nominal = [extent * i // count for i in range(1, count)]
    chosen = sorted({blocks[k] for k in (bisect.bisect_left(blocks, x) for x in nominal)
                     if k < len(blocks)})  # fmt: skip
    with ThreadPool(min(16, max(1, len(chosen)))) as pool:
        list(pool.map(lambda block: _header_at(fai, block_of[block]), chosen))
    bounds = [0, *chosen, extent]
    fingerprint = source.fingerprint
    return [
        Partition.make(source.url, fmt, i, fingerprint, start=a, end=b, codec="bgzf")
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]


def _check_tail(fai: Fai) -> None:
    """The data must end where the index's last sequence does (blank lines aside)."""
    last, size = fai.entries[-1], fai.text.size
    if size - last.stop > CHECK_BYTES:
        raise _stale(fai.where, f"its last sequence {last.name!r} ends at byte {last.stop},"
                                f" the data goes on to byte {size}")  # fmt: skip
    rest = fai.text.read(last.stop, size)
    if rest.strip(b"\r\n"):
        raise _stale(fai.where, f"byte {last.stop}: {rest[:32]!r} after its last sequence"
                                f" {last.name!r}")  # fmt: skip


def _header_at(fai: Fai, at: int) -> int:
    """``at`` (or the first header within a few blank lines after it), checked to start a
    header line in the data."""
    data = fai.text.read(at - 1, at - 1 + CHECK_BYTES)
    found = first_header(data, False)
    if found is None or data[:found].strip(b"\r\n"):
        raise _stale(fai.where, f"byte {at}: expected a header line ('>') there, found"
                                f" {data[1:33]!r}")  # fmt: skip
    return at - 1 + found


# -- residue ranges --------------------------------------------------------------------


def parse_region(region: str, lengths: dict[str, int]) -> tuple[str, int, int]:
    """``"chr1"``, ``"chr1:1001"`` or ``"chr1:1,001-2,000"`` (1-based, inclusive, as
    samtools) as ``(name, start, end)``, 0-based with ``end`` excluded and clipped to the
    sequence. A name that holds ':' is taken whole when it is a sequence's name."""
    try:
        name, first, last = split_region(region, lengths)
    except ValueError:
        name, first, last = region, None, None  # not a region: perhaps a name unknown here
    if name not in lengths:
        close = difflib.get_close_matches(name, list(lengths), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise FormatError(f"no sequence {name!r} in the file ({len(lengths)} sequences){hint}")
    length = lengths[name]
    first, last = 1 if first is None else first, length if last is None else last
    if first < 1 or last < first or first > length:
        raise ValueError(
            f"region {region!r}: residues {first}-{last} are not in {name!r} (1-{length})"
        )
    return name, first - 1, min(last, length)


def _plan_residues(
    fmt: str, source: RangeSource, codec: str, fai: Fai | None, region: str | None,
    n: int | None, target_bytes: int | None,
) -> list[Partition]:  # fmt: skip
    text: ByteReader = source
    if fai is not None:
        entries, text = fai.entries, fai.text
    elif codec == "none":
        entries = scan(source, source.url)
    else:  # through a stored gzip index (BGZF is gzip too): uncompressed offsets
        text = codecs.get("gzip").open(source).uncompressed  # type: ignore[attr-defined]
        entries = scan(text, source.url)
        codec = "gzip"
    by_name = {e.name: e for e in entries}
    before = {e.name: p.stop for p, e in itertools.pairwise(entries)}  # where a header may start
    if region is not None:
        name, start, end = parse_region(region, {e.name: e.length for e in entries})
        ranges = [(by_name[name], start, end)]
    else:
        ranges = [(e, 0, e.length) for e in entries if e.length]
    if fai is not None:
        _check_sequences(fai, [e for e, _, _ in ranges])
    pieces = _cut(ranges, n, target_bytes)
    fingerprint = source.fingerprint
    parts = []
    for i, (e, a, b) in enumerate(pieces):
        spec: dict[str, Any] = {
            "name": e.name, "start": a, "end": b, "codec": codec, "byte_start": e.byte(a),
            "byte_end": e.byte(b), "linebases": e.linebases, "linewidth": e.linewidth,
            # the edges read with it: the header line before its first residue, the byte
            # after its last (a header, a blank line or the end), checked when read
            "read_from": before.get(e.name, 0) if a == 0 else e.byte(a),
            "read_to": min(e.byte(b) + (b == e.length), text.size),
        }  # fmt: skip
        if fai is not None and fai.gzi is not None:
            start, base, stop = fai.gzi.span(spec["read_from"], spec["read_to"])
            spec.update(block_start=start, block_base=base, block_end=stop)
        parts.append(Partition.make(source.url, fmt, i, fingerprint, **spec))
    return parts


def _check_sequences(fai: Fai, entries: list[FaiEntry]) -> None:
    """Spot-check a few of ``entries`` (first, last, evenly between) against the data."""
    step = max(1, len(entries) // CHECKED_SEQUENCES)
    chosen = {*entries[::step], entries[-1]} if entries else set()
    for entry in sorted(chosen, key=lambda e: e.offset):
        check_sequence(entry, fai.text.read, fai.where)


def _text_span(spec: dict[str, Any]) -> tuple[int, int]:
    """The text a residue partition reads: its residues and the edges it checks (partitions
    planned before edges were checked: its residues)."""
    return spec.get("read_from", spec["byte_start"]), spec.get("read_to", spec["byte_end"])


def check_edges(spec: dict[str, Any], data: bytes, url: str) -> bytes:
    """The residue bytes of a partition from its text ``data`` (``read_from`` on), its
    edges checked: a partition that starts a sequence has its header line right before
    it, one that ends it has a header, a blank line or the end of the data right after.
    FormatError when not: the file changed under its index (or the plan)."""
    base, first, last = spec["read_from"], spec["byte_start"], spec["byte_end"]
    name = spec["name"]
    if first > base:
        head = data[: first - base]
        line = head[head.rfind(b"\n", 0, len(head) - 1) + 1 :]
        word = (line[1:].split(None, 1) or [b""])[0]  # the name, as samtools takes it
        if not (line.startswith(b">") and line.endswith(b"\n") and word == name.encode()):
            raise FormatError(
                f"{url}: byte {first}: the first residue of {name!r} is planned here, but the"
                f" line before it is {line[-80:]!r}, not its header: the file does not match"
                " its .fai (or the plan); make the index again (samtools faidx FILE)"
            )
    after = data[last - base : last - base + 1]
    if spec["read_to"] > last and after not in (b"", b">", b"\n", b"\r"):
        raise FormatError(
            f"{url}: byte {last}: {name!r} is planned to end here, but {after!r} follows (more"
            " residues?): the file does not match its .fai (or the plan); make the index"
            " again (samtools faidx FILE)"
        )
    return data[first - base : last - base]


def _cut(
    ranges: list[tuple[FaiEntry, int, int]], n: int | None, target_bytes: int | None
) -> list[tuple[FaiEntry, int, int]]:
    """Each range cut into pieces: ``n`` over all residues (at least one per range)."""
    total = sum(b - a for _, a, b in ranges)
    if total == 0:
        return []
    count = partition_count(total, n, target_bytes, at_most=total)
    out = []
    for entry, a, b in ranges:
        k = min(b - a, -(-count * (b - a) // total))
        out += [(entry, a + (b - a) * i // k, a + (b - a) * (i + 1) // k) for i in range(k)]
    return out


def residue_slice(spec: dict[str, Any], data: bytes, url: str) -> SequenceSlice:
    """The residues of a residue-range partition from its bytes, the layout checked: each
    line end where the sequence's line width puts it, nothing but residues between."""
    start, end, lb, lw = spec["start"], spec["end"], spec["linebases"], spec["linewidth"]
    at, m = spec["byte_start"], end - start
    column = start % lb
    breaks = (column + m - 1) // lb  # line ends between the first residue and the last
    first = lb - column  # where the first of them lies in ``data``
    eol = lw - lb
    last = (column + m - 1) // lb * lw + (column + m - 1) % lb - column  # the last residue
    ends = data[first:last:lw] if breaks else b""
    ok = len(data) > last and ends == (b"\r" if eol == 2 else b"\n") * breaks
    if ok and eol == 2:
        ok = data[first + 1 : last : lw] == b"\n" * breaks
    residues = data[: last + 1].replace(b"\r\n" if eol == 2 else b"\n", b"") if ok else b""
    if not ok or len(residues) != m:
        raise FormatError(
            f"{url}: byte {at}: residues {start}-{end} of {spec['name']!r} are not laid out in"
            f" lines of {lb} residues ({lw} bytes) there: the file changed or its index is stale"
        )
    if data[last + 1 :].strip(b"\r\n"):
        i = last + 1 + len(data[last + 1 :]) - len(data[last + 1 :].lstrip(b"\r\n"))
        raise FormatError(f"{url}: byte {at + i}: expected the end of {spec['name']!r}'s"
                          f" residue line, found {data[i : i + 16]!r}")  # fmt: skip
    bad = residues.translate(None, RESIDUES)
    if bad:
        i = data.find(bad[:1])
        raise FormatError(f"{url}: byte {at + i}: expected residues (letters, '*', '-', '.'),"
                          f" found {bad[:1]!r}")  # fmt: skip
    return SequenceSlice(spec["name"], start, end, residues.decode("ascii"))

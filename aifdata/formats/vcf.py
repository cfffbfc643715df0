"""VCF, plain or compressed (gzip, BGZF): split exactly at records, or by genomic region.

A VCF file is a header (``##`` meta lines, then the ``#CHROM`` line that names
the columns and the samples) and one record per line. Partitions are byte
ranges snapped to record starts (:func:`first_record`: a line that does not
start with ``#``), through the codec under the file (see
:mod:`aifdata.codecs`); the first one starts after the header, however long
it is (planning reads it in growing windows). The header travels with every
partition without being in its spec: a partition holds only where the header
ends, and reading reads it once per process and file version
(:class:`~aifdata.formats.KeptMetadata`). :meth:`VcfFormat.header` gives it.

With a tabix (``.tbi``) or CSI (``.csi``) index beside a BGZF file,
``plan(source, region="chr1:1-1000000", n=8)`` splits the records that overlap
a region (or a whole contig) at BGZF virtual offsets taken from the index,
as ``tabix``/``pysam`` ``fetch`` return them (see :mod:`aifdata.formats._tabix`).

Records come out as :class:`VcfRecord` (``chrom``, ``pos``, ``id``, ``ref``,
``alts``, ``qual``, ``filter``, ``info``, ``format``, ``samples``, ``genotypes``)
in a list that knows the header (:class:`Records`), or as an Arrow table
(``as_arrow=True``: columns ``chrom pos id ref alt qual filter info format``
and one per sample). A record is the text of its line (``str(record)``), its
columns read as they are asked for; every line is checked when its partition is
read, in bulk (:mod:`aifdata.formats._tsv`), and line by line only to name the
bad one. A file that does not start with ``##fileformat=VCF``, a
record with the wrong number of columns, a POS that is not an integer, a QUAL
that is not a number or '.', and a truncated BGZF block raise
:class:`~aifdata.FormatError` with the file and the byte offset (uncompressed
for gzip, the block and the byte in it for BGZF).
Windows line ends (CRLF) are read as ``\\n``, as htslib does.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from .._config import Config
from .._errors import FormatError
from .._gc import gc_paused
from .._threads import ThreadPool
from ..codecs import Codec, Text
from ..codecs.bgzf import MAX_BLOCK, BgzfStream, block_size_at, decompress_blocks, inflate_block
from . import _tsv
from ._base import (
    KeptMetadata,
    Partition,
    RangeSource,
    TextFormat,
    open_source,
    partition_count,
)
from ._region import split_region

#: Bytes of the file read first (the header, for most files, and the codec).
HEAD_BYTES = 64 * 2**10
#: What every VCF file starts with (the version follows: ``VCFv4.2``).
MAGIC = b"##fileformat=VCF"
#: The fixed columns, as the ``#CHROM`` line names them.
FIXED = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
#: Arrow and pandas column names of the fixed columns, then ``format``, then the samples.
COLUMNS = ("chrom", "pos", "id", "ref", "alt", "qual", "filter", "info")
#: Bytes of an empty BGZF block (bgzip ends files with one): no partition starts there.
EMPTY_BLOCK = 28
_HEADERS = KeptMetadata()

__all__ = [
    "COLUMNS",
    "FIXED",
    "HEAD_BYTES",
    "MAGIC",
    "Records",
    "VcfFormat",
    "VcfHeader",
    "VcfRecord",
    "first_record",
    "header",
    "plan_region",
]


@dataclass(frozen=True)
class VcfHeader:
    """The header of one VCF file: its ``##`` lines and its columns (with the samples)."""

    meta: tuple[str, ...]  # the '##' lines, without their line ends
    columns: tuple[str, ...]  # the '#CHROM' line's names: FIXED, then FORMAT and the samples

    @property
    def samples(self) -> tuple[str, ...]:
        return self.columns[9:]

    @property
    def fileformat(self) -> str:
        return self.meta[0].partition("=")[2] if self.meta else ""

    @property
    def text(self) -> str:
        """The header as it stands in the file (``\\n`` line ends)."""
        return "".join(f"{line}\n" for line in (*self.meta, "\t".join(self.columns)))

    @cached_property
    def contigs(self) -> tuple[str, ...]:
        """The IDs of the ``##contig`` lines, in order."""
        return tuple(_meta_id(line) for line in self.meta if line.startswith("##contig=<"))

    @cached_property
    def digest(self) -> str:
        """A short digest of the columns: the same string, the same table."""
        return hashlib.sha1("\t".join(self.columns).encode()).hexdigest()[:16]

    def __reduce__(self) -> tuple[Any, ...]:  # without what is kept (the record class)
        return VcfHeader, (self.meta, self.columns)

    @cached_property
    def record_class(self) -> type[VcfRecord]:
        """The class of this file's records: :class:`VcfRecord` that knows this header."""
        return type("VcfRecord", (VcfRecord,), {"__slots__": (), "header": self})

    def ids(self, kind: str) -> tuple[str, ...]:
        """The IDs declared by the ``##INFO``, ``##FORMAT``, ``##FILTER`` ... lines."""
        prefix = f"##{kind}=<"
        return tuple(_meta_id(line) for line in self.meta if line.startswith(prefix))


def _meta_id(line: str) -> str:
    inner = line.partition("<")[2]
    for field in inner.split(","):
        key, _, value = field.partition("=")
        if key == "ID":
            return value.rstrip(">")
    return ""


class VcfRecord(str):
    """One VCF record: the text of its line (without the line end), its columns read
    through properties as they are asked for. ``fields`` are the columns (the sample
    columns in the last); ``pos`` is 1-based as in the file; ``qual`` is None for '.';
    ``alts`` and ``filter`` are lists (empty for '.'); ``info`` a dict (a flag is True);
    ``sample_fields`` the raw sample columns, ``samples`` them by name and FORMAT key;
    ``header`` the file's header (records of one file share it). Every record was
    checked when its partition was read (its columns, POS, QUAL): a property never
    meets a malformed line."""

    __slots__ = ()
    header: ClassVar[VcfHeader]

    @property
    def fields(self) -> tuple[str, ...]:
        """The columns as in the file: 8 to 10 strings, the sample columns in the last."""
        return tuple(self.split("\t", 9))

    @property
    def chrom(self) -> str:
        return self[: self.find("\t")]

    @property
    def pos(self) -> int:
        return int(self.split("\t", 2)[1])

    @property
    def id(self) -> str | None:
        value = self.split("\t", 3)[2]
        return None if value == "." else value

    @property
    def ref(self) -> str:
        return self.split("\t", 4)[3]

    @property
    def alts(self) -> list[str]:
        value = self.split("\t", 5)[4]
        return [] if value == "." else value.split(",")

    @property
    def qual(self) -> float | None:
        value = self.split("\t", 6)[5]
        return None if value == "." else float(value)

    @property
    def filter(self) -> list[str]:
        value = self.split("\t", 7)[6]
        return [] if value == "." else value.split(";")

    @property
    def info_text(self) -> str:
        return self.split("\t", 8)[7]

    @property
    def format_text(self) -> str | None:
        fields = self.split("\t", 9)
        return fields[8] if len(fields) > 8 else None

    @property
    def _rest(self) -> str | None:
        fields = self.split("\t", 9)
        return fields[9] if len(fields) > 9 else None

    def __reduce__(self) -> tuple[Any, ...]:
        return _record, (str(self), self.header)

    @property
    def info(self) -> dict[str, str | bool]:
        """INFO as a dict: ``KEY=VALUE`` gives the value text, a flag gives True."""
        text = self.info_text
        if text == "." or not text:
            return {}
        out: dict[str, str | bool] = {}
        for item in text.split(";"):
            key, eq, value = item.partition("=")
            if key:  # an empty item (';;'), as htslib, is nothing
                out[key] = value if eq else True
        return out

    @property
    def format(self) -> list[str]:  # type: ignore[override]
        """The FORMAT keys (empty for a sites-only file)."""
        text = self.format_text
        return [] if text is None or text == "." else text.split(":")

    @property
    def sample_fields(self) -> list[str]:
        """The sample columns as in the file, one per sample."""
        return [] if self._rest is None else self._rest.split("\t")

    @property
    def samples(self) -> dict[str, dict[str, str]]:
        """Each sample's fields by FORMAT key (trailing fields may be left out, as VCF allows)."""
        keys = self.format
        return {
            name: dict(zip(keys, field.split(":"), strict=False))
            for name, field in zip(self.header.samples, self.sample_fields, strict=True)
        }

    @property
    def genotypes(self) -> list[tuple[int | None, ...]]:
        """Each sample's GT as allele indexes (None for '.'), as pysam gives them."""
        keys = self.format
        if not keys or keys[0] != "GT":
            return [() for _ in self.header.samples]
        return [_alleles(field.partition(":")[0]) for field in self.sample_fields]

    @property
    def end(self) -> int:
        """The 1-based last position the record covers: INFO END when larger than POS (as
        tabix), else POS + len(REF) - 1."""
        return _span(self)[1]

    def __repr__(self) -> str:
        return f"VcfRecord({self.chrom}:{self.pos} {self.ref}>{','.join(self.alts) or '.'})"


def _record(line: str | tuple[str, ...], header: VcfHeader) -> VcfRecord:
    """A record again, from its line (or, as records pickled before, its columns) and
    its header: how a record pickles."""
    text = line if isinstance(line, str) else "\t".join(line)
    return header.record_class(text)


def _alleles(gt: str) -> tuple[int | None, ...]:
    if not gt:
        return ()
    return tuple(None if a == "." else int(a) for a in gt.replace("|", "/").split("/"))


def _span(record: VcfRecord) -> tuple[int, int]:
    """``(beg, end)``, 0-based half-open, as tabix computes it for a VCF line."""
    beg = record.pos - 1
    end = beg + len(record.ref) if record.ref else beg + 1
    text = record.info_text
    at = 0 if text.startswith("END=") else (text.find(";END=") + 1 or -1)
    if at >= 0:
        digits = text[at + 4 :].partition(";")[0]
        if digits.isdigit() and int(digits) > beg:
            end = int(digits)
    return max(beg, 0), max(end, 1)


class Records(list[VcfRecord]):
    """The records of one partition, and the header they belong to (``records.header``)."""

    header: VcfHeader

    def __init__(self, records: list[VcfRecord], header: VcfHeader) -> None:
        super().__init__(records)
        self.header = header

    @property
    def samples(self) -> tuple[str, ...]:
        return self.header.samples


class VcfFormat(TextFormat):
    """VCF, uncompressed, in gzip or in BGZF; by region with a ``.tbi``/``.csi`` index."""

    name = "vcf"
    extensions = (".vcf",)
    description = (
        "VCF variants; split at any record (the header travels with each), or by region"
        " with a .tbi/.csi index"
    )
    codecs = ("none", "gzip", "bgzf")
    head_bytes = HEAD_BYTES

    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        return first_record(data, at_eof)

    def sniff_text(self, text: bytes, path: str) -> bool:
        return text.startswith(MAGIC) or (len(text) < len(MAGIC) and MAGIC.startswith(text))

    def explain_text(self, text: bytes) -> tuple[int, str]:
        return 0, f"expected '##fileformat=VCF', found {text[:20]!r}"

    def matches_name(self, path: str) -> bool:
        return super().matches_name(path) or path.lower().endswith(".vcf.bgz")

    # -- planning -------------------------------------------------------------

    def parse_region(self, region: str, contigs: tuple[str, ...] = ()) -> Region:
        """A region string as tabix reads it (see :func:`parse_region`)."""
        return parse_region(region, contigs)

    def scan_header(self, source: RangeSource, codec: Codec) -> HeaderScan:
        """The header of ``source``, read once per process (see :func:`scan_header`)."""
        return scan_header(source, codec, codec.open(source))

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        region: str | None = None,
        index: str | None = None,
    ) -> list[Partition]:
        """Partitions of about ``target_bytes`` (or ``n``) over the records; with
        ``region`` (``"chr1"``, ``"chr1:1-1000000"``), over the records that overlap it,
        through the index beside the file (``index``: its URL, if not ``.tbi``/``.csi``)."""
        if source.size == 0:
            if region is not None:
                raise FormatError(f"{source.url}: empty file: no region to read")
            return []
        head = self.checked_head(source, self.head_bytes)
        codec = self.codec(head, source.url)
        if region is not None:
            from ._tabix import plan_region as plan_indexed

            return plan_indexed(self, source, codec, region, n, target_bytes, index)
        stream = codec.open(source)
        if isinstance(stream, BgzfStream):
            stream.check_end()  # a file cut at a block boundary is refused even for n=1
        found = scan_header(source, codec, stream)
        first, extent = found.first, stream.extent
        if first >= extent or not found.records:
            return []
        count = partition_count(extent - first, n, target_bytes, at_most=extent - first)
        nominal = sorted({first + (extent - first) * i // count for i in range(1, count)})
        with ThreadPool(min(self.plan_threads, max(1, len(nominal)))) as pool:
            snapped = pool.map(lambda offset: stream.snap(offset, self.boundary), nominal)
            last = extent - (EMPTY_BLOCK if codec.name == "bgzf" else 0)  # bgzip's end marker
            starts = sorted({first, *(s for s in snapped if first < s < last)})
        fingerprint = source.fingerprint
        return [
            Partition.make(
                source.url,
                self.name,
                i,
                fingerprint,
                start=a,
                end=b,
                codec=codec.name,
                **found.spec(),
            )
            for i, (a, b) in enumerate(itertools.pairwise([*starts, extent]))
        ]

    def header(self, source: RangeSource | str, config: Config | None = None) -> VcfHeader:
        """The header of a VCF file (a URL, or an open source)."""
        if isinstance(source, str):
            source = RangeSource(source, config)
        head = self.checked_head(source, self.head_bytes)
        codec = self.codec(head, source.url)
        kept = _HEADERS.slot(source)
        if "header" not in kept:
            kept["header"] = scan_header(source, codec, codec.open(source)).header
        found: VcfHeader = kept["header"]
        return found

    # -- reading --------------------------------------------------------------

    def table(self, partition: Partition) -> str:
        return f"vcf {partition.options.get('table', '')}".strip()

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        if "region" in partition.options:
            return None  # virtual offsets, read through the index's plan
        return super().byte_span(partition)

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        source = open_source(partition, source, config)
        header = partition_header(partition, source, self.codec_of(partition))
        if "region" in partition.options:
            from ._tabix import read_region

            text = read_region(partition, source)
            return self.parse(text, header=header, region=partition["region"], **options)
        return super().read(partition, source, header=header, **options)

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource, after: bytes = b"",
        **options: Any,
    ) -> Any:  # fmt: skip
        if "region" in partition.options:
            return self.read(partition, source, **options)
        header = partition_header(partition, source, self.codec_of(partition))
        return super().decode(partition, data, source, after, header=header, **options)

    def parse(
        self, text: Text, header: VcfHeader | None = None, as_arrow: bool = False,
        region: str | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        if header is None:
            raise TypeError("VcfFormat.parse needs the file's header")
        skip = _header_length(text.data) if text.start == 0 else 0
        if as_arrow and region is None:
            return arrow_table(text, header, skip)
        parsed = _parse(text, header, skip)
        records = parsed.records
        if region is not None:
            records = _in_region(parsed, parse_region(region))
        return to_arrow(records) if as_arrow else records

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """Columns ``chrom pos id ref alt qual filter info format`` and one per sample."""
        return self.to_arrow(partition, **options).to_pandas()

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A ``pyarrow.Table``: ``chrom pos id ref alt qual filter info format`` and one
        column per sample (its raw field)."""
        return self.read(partition, as_arrow=True, **options)

    def records(self, partition: Partition, **options: Any) -> Iterator[Any]:
        yield from self.read(partition, **options)


# -- the header -----------------------------------------------------------------


@dataclass(frozen=True)
class HeaderScan:
    """Where the header ends, in the codec's offsets and in the file."""

    header: VcfHeader
    length: int  # uncompressed bytes of the header
    raw: int  # file bytes that hold it (for BGZF: through the end of the block it ends in)
    first: int  # where the first partition starts, in the codec's offsets
    records: bool  # whether any record follows

    def spec(self) -> dict[str, Any]:
        return {"header": self.length, "header_raw": self.raw, "table": self.header.digest}


def first_record(data: bytes, at_eof: bool) -> int | None:
    """Index (>= 1) in ``data`` of the first line that does not start with '#' (a record);
    ``data[0]`` is context. None: none in ``data`` (more bytes are needed, or none is left)."""
    pos = 1 if data[:1] == b"\n" else data.find(b"\n", 1) + 1
    if pos == 0:
        return None
    end = len(data)
    while pos < end:
        if data[pos] != 35:  # '#'
            return pos
        pos = data.find(b"\n", pos) + 1
        if pos == 0:
            return None
    return None


def _header_length(data: bytes) -> int:
    """Bytes at the start of ``data`` that are header lines (``#``), up to the first record."""
    if not data.startswith(b"#"):
        return 0
    found = first_record(b"\n" + data, True)
    return len(data) if found is None else found - 1


def scan_header(source: RangeSource, codec: Codec, stream: Any) -> HeaderScan:
    """Read the header in growing windows (it may be far longer than the first read), and
    keep it for this process's reads of the file."""
    found = _scan_bgzf(source) if codec.name == "bgzf" else _scan_text(source, codec, stream)
    _HEADERS.slot(source)["header"] = found.header
    return found


def _scan_text(source: RangeSource, codec: Codec, stream: Any) -> HeaderScan:
    reader = source if codec.name == "none" else stream.uncompressed
    size, window = reader.size, HEAD_BYTES
    while True:
        data = reader.read(0, min(size, window))
        at_eof = window >= size
        found = first_record(b"\n" + data, at_eof)
        if found is not None or at_eof:
            length = len(data) if found is None else found - 1
            header = parse_header(data[:length], source.url, codec.name)
            raw = length if codec.name == "none" else 0
            return HeaderScan(header, length, raw, length, found is not None)
        window *= 4


def _scan_bgzf(source: RangeSource) -> HeaderScan:
    url, size = source.url, source.size
    data, pos, window = b"", 0, HEAD_BYTES
    blocks: list[tuple[int, int, int]] = []  # (file offset, file end, inflated end) of each
    while True:
        raw = source.head(window) if pos == 0 else source.read(pos, pos + window)
        k = 0
        while k + 18 <= len(raw):
            n = block_size_at(raw, k)
            if n is None:
                raise FormatError(f"{url}: byte {pos + k}: expected a BGZF block header")
            if k + n > len(raw):
                break
            data += inflate_block(memoryview(raw)[k : k + n], url, pos + k)
            blocks.append((pos + k, pos + k + n, len(data)))
            k += n
        if k == 0 and pos < size:
            raise FormatError(f"{url}: byte {pos}: a BGZF block is cut short")
        pos += k
        at_eof = pos >= size
        found = first_record(b"\n" + data, at_eof)
        if found is not None or at_eof:
            length = len(data) if found is None else found - 1
            header = parse_header(data[:length], url, "bgzf")
            # the first partition starts at the block that holds the header's last byte
            first, raw_end = 0, 0
            if length:
                first, raw_end, _ = next(b for b in blocks if b[2] >= length)
            return HeaderScan(header, length, raw_end, first, found is not None)
        window = min(window * 4, 16 * MAX_BLOCK)


def parse_header(data: bytes, url: str, codec: str) -> VcfHeader:
    """The header from its bytes; FormatError naming the offset of what is wrong."""
    where = "byte" if codec == "none" else "uncompressed byte"
    if not data.startswith(MAGIC):
        raise FormatError(f"{url}: {where} 0: expected '##fileformat=VCF', found {data[:20]!r}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{url}: {where} {exc.start}: the header is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    last = lines[-1] if lines else ""
    columns = tuple(last.split("\t"))
    line_at = max(len(data) - len(last.encode()) - (1 if data.endswith(b"\n") else 0), 0)
    if not last.startswith("#CHROM"):
        raise FormatError(
            f"{url}: {where} {len(data)}: expected the '#CHROM' line ({' '.join(FIXED)} ...)"
            f" before the first record; the header ends with {last[:40]!r}"
        )
    if columns[:8] != FIXED:
        raise FormatError(
            f"{url}: {where} {line_at}: expected the '#CHROM' line's columns to be"
            f" {' '.join(FIXED)} ..., tab-separated; found {last[:60]!r}"
        )
    if len(columns) > 8 and columns[8] != "FORMAT":
        raise FormatError(f"{url}: {where} {line_at}: the 9th column of the"
                          f" '#CHROM' line must be FORMAT, found {columns[8]!r}")  # fmt: skip
    for number, line in enumerate(lines[:-1]):
        if not line.startswith("##"):
            offset = sum(len(x.encode()) + 1 for x in lines[:number])
            raise FormatError(
                f"{url}: {where} {offset}: expected a '##' meta line before the '#CHROM'"
                f" line, found {line[:40]!r}"
            )
    return VcfHeader(tuple(lines[:-1]), columns)


def partition_header(partition: Partition, source: RangeSource, codec: Codec) -> VcfHeader:
    """The header of a partition's file: read once per process and file version."""
    kept = _HEADERS.slot(source)
    found: VcfHeader | None = kept.get("header")
    if found is not None:
        return found
    length, raw = partition["header"], partition["header_raw"]
    if codec.name == "bgzf":
        data, _ = decompress_blocks(source.read(0, raw), source.url, 0)
    else:  # plain: the file's bytes; gzip: through its stored index
        data = codec.open(source).text(0, length, first_record).data
    if len(data) < length:
        raise FormatError(f"{source.url}: byte {len(data)}: the header is cut short")
    found = kept["header"] = parse_header(data[:length], source.url, codec.name)
    return found


def header(url: str, config: Config | None = None) -> VcfHeader:
    """The header of the VCF file at ``url``."""
    return VcfFormat().header(url, config)


# -- records --------------------------------------------------------------------


def parse(text: Text, header: VcfHeader, skip: int = 0) -> Records:
    """The records in ``text`` (whole records of one partition; ``skip`` header bytes
    first), all checked at once for their column count, POS and QUAL (and, when one is
    wrong, looked at line by line to say which)."""
    return _parse(text, header, skip).records


@dataclass(frozen=True)
class _Parsed:
    records: Records
    layout: Any  # where each record's fields lie (a _tsv.Layout); None without numpy
    positions: Any  # each record's POS (int64), when they were read in bulk


def _parse(text: Text, header: VcfHeader, skip: int) -> _Parsed:
    """The records of ``text``, a record per line, checked: in bulk (:mod:`._tsv`), and
    line by line only when the bulk check cannot tell."""
    data = text.data
    body = data[skip:] if skip else data
    if not body:
        return _Parsed(Records([], header), None, None)
    try:
        string = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{text.where(skip + exc.start)}: a record is not UTF-8") from None
    clean = body
    if "\r" in string or "\n\n" in string or string.startswith("\n"):
        # CRLF line ends and blank lines (at the end, usually): the lines alone
        string = "".join(f"{line}\n" for line in string.replace("\r\n", "\n").split("\n") if line)
        clean = string.encode("utf-8")
    lines = string.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        return _Parsed(Records([], header), None, None)
    columns = len(header.columns)
    found = _tsv.layout(clean, min(columns - 1, 8))
    positions = None if found is None else _checked(found, columns)
    if positions is None:
        _first_error(text, skip, body, columns)  # raises, unless every line is good after all
    with gc_paused():
        made = Records(list(map(header.record_class, lines)), header)
        del lines  # freed before the collector comes back: it need not walk them
    return _Parsed(made, found, positions)


def _checked(found: _tsv.Layout, columns: int) -> Any | None:
    """Each line's POS (int64) when every line surely has the columns of the '#CHROM'
    line, an integer POS and a QUAL that is a number or '.'; None when one may not."""
    import numpy as np

    if not np.all(found.counts == columns - 1) or np.any(found.array[found.starts] == 35):
        return None  # a line with other columns, or a '#' line among the records
    positions = found.integers(1)
    plain = found.decimals(5)
    if positions is None or plain is None:
        return None
    for line in np.flatnonzero(~plain).tolist():  # '1e-3', 'nan', ...: as float() reads them
        try:
            float(found.field(5, line).decode("utf-8"))
        except ValueError:
            return None
    return positions


def _first_error(text: Text, skip: int, body: bytes, columns: int) -> None:
    """Raise FormatError for the first bad record of ``body``, naming its offset (none:
    every record is good)."""
    lines = body.decode("utf-8").replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    samples = columns - 10
    for number, line in enumerate(lines):
        if not line:
            continue
        f = line.split("\t", 9)
        if len(f) != min(columns, 10) or (samples > 0 and f[9].count("\t") != samples):
            _bad_columns(text, skip, body, number, line, columns)
        if line[0] == "#":
            _bad(text, skip, body, number, "a '#' line among the records")
        pos, qual = f[1], f[5]
        if not (pos.isdigit() and pos.isascii()):
            _bad(text, skip, body, number, f"POS must be an integer, found {pos!r}")
        if qual != ".":
            try:
                float(qual)
            except ValueError:
                _bad(text, skip, body, number, f"QUAL must be a number or '.', found {qual!r}")


def _line_offset(body: bytes, number: int) -> int:
    pos = 0
    for _ in range(number):
        pos = body.find(b"\n", pos) + 1
        if pos == 0:
            return len(body)
    return pos


def _bad(text: Text, skip: int, body: bytes, number: int, why: str) -> None:
    raise FormatError(f"{text.where(skip + _line_offset(body, number))}: {why}")


def _bad_columns(text: Text, skip: int, body: bytes, number: int, line: str, columns: int) -> None:
    found = line.count("\t") + 1
    why = f"expected {columns} tab-separated columns (as the '#CHROM' line), found {found}"
    if text.last and number == body.count(b"\n") and not body.endswith(b"\n"):
        why += " (the file ends in the middle of a line: truncated?)"
    _bad(text, skip, body, number, why)


# -- regions --------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A contig and a 0-based, half-open interval on it."""

    contig: str
    beg: int
    end: int

    def __str__(self) -> str:  # always with ':' (a contig name may hold one)
        return f"{self.contig}:{self.beg + 1}-{'' if self.end >= WHOLE else self.end}"


#: The end of a region given without one ("chr1", "chr1:100-").
WHOLE = 2**62


def parse_region(region: str, contigs: tuple[str, ...] = ()) -> Region:
    """``chr1``, ``chr1:100``, ``chr1:100-200`` (1-based, inclusive; commas allowed), as
    tabix reads them; a contig whose name holds ':' is taken whole when known."""
    try:
        contig, first, last = split_region(region, contigs)
    except ValueError as exc:
        raise FormatError(str(exc)) from None
    beg = 0 if first is None else max(first - 1, 0)
    end = WHOLE if last is None else last
    if end <= beg:
        raise FormatError(f"region {region!r}: its end is before its start")
    return Region(contig, beg, end)


def _in_region(parsed: _Parsed, region: Region) -> Records:
    """The records of ``parsed`` that overlap ``region``: a record on its contig whose POS
    lies in it does; one before it may reach into it (its REF, or INFO END), and is
    looked at alone."""
    records = parsed.records
    if parsed.positions is None:
        return Records([r for r in records if _overlaps(r, region)], records.header)
    import numpy as np

    begs = parsed.positions - 1
    keep = parsed.layout.equals(0, region.contig.encode("utf-8")) & (begs < region.end)
    for line in np.flatnonzero(keep & (begs < region.beg)).tolist():
        keep[line] = _overlaps(records[line], region)
    return Records(list(itertools.compress(records, keep.tolist())), records.header)


def _overlaps(record: VcfRecord, region: Region) -> bool:
    if record.chrom != region.contig:
        return False
    beg, end = _span(record)
    return beg < region.end and end > region.beg


def plan_region(
    url: str, region: str, n: int | None = None, target_bytes: int | None = None,
    index: str | None = None, config: Config | None = None,
) -> list[Partition]:  # fmt: skip
    """Partitions of the records of ``url`` that overlap ``region``, through its index."""
    source = RangeSource(url, config)
    return VcfFormat().plan(source, n=n, target_bytes=target_bytes, region=region, index=index)


# -- tables ---------------------------------------------------------------------


def to_arrow(records: Records) -> Any:
    """Records as an Arrow table: the fixed columns, ``format``, one column per sample."""
    import pyarrow as pa

    header = records.header
    rows = [r.split("\t", 9) for r in records]
    ids = [row[2] for row in rows]
    alts, filters, quals = ([row[k] for row in rows] for k in (4, 6, 5))
    table: dict[str, Any] = {
        "chrom": pa.array([row[0] for row in rows], pa.string()),
        "pos": pa.array([int(row[1]) for row in rows], pa.int64()),
        "id": pa.array([None if v == "." else v for v in ids], pa.string()),
        "ref": pa.array([row[3] for row in rows], pa.string()),
        "alt": pa.array([[] if v == "." else v.split(",") for v in alts], pa.list_(pa.string())),
        "qual": pa.array([None if v == "." else float(v) for v in quals], pa.float64()),
        "filter": pa.array([[] if v == "." else v.split(";") for v in filters],
                           pa.list_(pa.string())),
        "info": pa.array([row[7] for row in rows], pa.string()),
    }  # fmt: skip
    if len(header.columns) > 8:
        table["format"] = pa.array([row[8] for row in rows], pa.string())
    if header.samples:
        fields = [row[9].split("\t") for row in rows]
        for k, name in enumerate(header.samples):
            table[name] = pa.array([f[k] for f in fields], pa.string())
    return pa.table(table)


def arrow_table(text: Text, header: VcfHeader, skip: int = 0) -> Any:
    """The records in ``text`` as an Arrow table, parsed by Arrow's CSV reader (in C): the
    same columns and checks as :func:`to_arrow` of :func:`parse`'s records."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv

    body = text.data[skip:] if skip else text.data
    names = _arrow_names(header)
    if not body.strip():
        return to_arrow(Records([], header))
    try:
        table = csv.read_csv(
            pa.py_buffer(body),
            read_options=csv.ReadOptions(column_names=names, use_threads=False,
                                         block_size=max(len(body) + 1, 2**20)),
            parse_options=csv.ParseOptions(delimiter="\t", quote_char=False,
                                           double_quote=False, escape_char=False),
            convert_options=csv.ConvertOptions(
                column_types={n: pa.string() for n in names} | {"pos": pa.int64(),
                                                                 "qual": pa.float64()},
                null_values=["."], strings_can_be_null=False,
            ),
        )  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        table = None
    if (
        table is None
        or table["pos"].null_count
        or (len(table) and pc.min(table["pos"]).as_py() < 0)
        or pc.any(pc.starts_with(table["chrom"], "#")).as_py()
    ):
        _first_error(text, skip, body, len(header.columns))
        raise FormatError(f"{text.where(skip)}: Arrow's CSV reader refuses these records")
    assert table is not None

    def listed(name: str, sep: str) -> Any:
        column = table[name]
        empty = pa.scalar([], pa.list_(pa.string()))
        return pc.if_else(pc.equal(column, "."), empty, pc.split_pattern(column, sep))

    ident = pc.if_else(pc.equal(table["id"], "."), pa.scalar(None, pa.string()), table["id"])
    table = table.set_column(names.index("id"), "id", ident)
    table = table.set_column(names.index("alt"), "alt", listed("alt", ","))
    return table.set_column(names.index("filter"), "filter", listed("filter", ";"))


def _arrow_names(header: VcfHeader) -> list[str]:
    extra = ["format"] if len(header.columns) > 8 else []
    return [*COLUMNS, *extra, *header.samples]

"""mzML: ranges of spectra, planned from the file's own offset index (or one scan without one).

An indexed mzML (``<indexedmzML>``) ends with ``<indexListOffset>``, the byte
offset of an ``<indexList>`` whose ``<index name="spectrum">`` gives the byte
offset of every ``<spectrum>``. Planning reads the file's head and tail (64 KiB
each), the index when it starts before the tail, 4 KiB before the first
spectrum and the last spectrum: four or five requests, whatever ``n``. It then
cuts the spectra into about ``n`` runs of consecutive spectra (or runs of about
``target_bytes``), balanced by bytes. A partition is the byte range from its
first spectrum's offset to the next partition's, and its spec says how many
spectra it holds (``first``, ``count``).

The index is never trusted blindly. Planning checks that the first indexed
offset is the first spectrum of ``<spectrumList>`` and reads the last indexed
spectrum whole, to see that it is the last one: a file edited or cut after
its index was written (every later offset moves) or an index that leaves
spectra out at the end is caught there. Reading checks each partition: it
starts on ``<spectrum``, holds exactly ``count`` spectra, with consecutive
``index`` attributes, else FormatError naming the file and the byte offset;
``check_splits=True`` checks every split offset while planning instead (a
small read each). An index that does not match its file makes planning
fall back to one scan of the file: the partitions then say
``planned_by="scan"`` and ``why``; ``index="require"`` refuses such a file
instead (FormatError naming the file and the byte offset), ``index="ignore"``
always scans.

A file without an index is planned by one scan: the file is streamed once in
8 MiB reads, finding every ``<spectrum`` up to ``</spectrumList>``; its
partitions say ``planned_by="scan"``. What either way of planning found is
kept per file version, so planning it again for another ``n`` reads nothing
more.

A gzipped mzML (``.mzML.gz``, BGZF too) is planned and read the same way over
its uncompressed bytes, through the codec layer's gzip index (built by one pass
over the file, then stored); its partitions say ``codec="gzip"``, their
offsets, and those error messages name, count uncompressed bytes.

Reading parses each partition's spectra with lxml (the standard library's
ElementTree without it) and decodes their binary arrays: base64, zlib
(MS:1000574) or no compression (MS:1000576), 32/64-bit float or integer.
MS-Numpress arrays (linear, pic, slof, each also followed by zlib) are decoded
with pynumpress when it is installed, else refused with a FormatError naming
the cvParam.
Chromatograms are not spectra and are not read. A :class:`Spectrum` holds the
native id, the ``index``, the MS level, the scan start time in minutes, and
the m/z and intensity arrays (numpy).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import itertools
import re
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._errors import FormatError
from ._base import (
    ByteRangeFormat,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)

if TYPE_CHECKING:
    import numpy as np

#: Bytes read from the start (the header: encoding, referenceable parameter groups).
HEAD_BYTES = 64 * 2**10
#: Bytes read from the end to find ``<indexListOffset>`` (and often the whole index).
TAIL_BYTES = 64 * 2**10
#: Bytes per read when scanning a file for its spectra.
SCAN_BYTES = 8 * 2**20
#: Split offsets checked at once (each is one 16-byte read: latency, not bandwidth).
CHECK_THREADS = 16

SPECTRUM_START = re.compile(rb"<spectrum[ \t\r\n]")
#: A spectrum at an index offset (some writers point at the indentation before it).
SPECTRUM_AT = re.compile(rb"[ \t\r\n]{0,64}<spectrum[ \t\r\n]")
LIST_END = b"</spectrumList>"
_INDEX_LIST_OFFSET = re.compile(rb"<indexListOffset>\s*(\d+)\s*</indexListOffset>")
_INDEX = re.compile(rb'<index\s+name="(\w+)"\s*>(.*?)</index>', re.S)
_OFFSET = re.compile(rb"<offset\b[^>]*>\s*(\d+)\s*</offset>")
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)["']""")
_GROUPS = re.compile(rb"<referenceableParamGroupList\b.*?</referenceableParamGroupList>", re.S)

# Controlled vocabulary (PSI-MS) accessions.
MZ_ARRAY, INTENSITY_ARRAY = "MS:1000514", "MS:1000515"
DTYPES = {"MS:1000521": "<f4", "MS:1000523": "<f8", "MS:1000519": "<i4", "MS:1000522": "<i8"}
ZLIB, NO_COMPRESSION = "MS:1000574", "MS:1000576"
NUMPRESS = {
    "MS:1002312": "MS-Numpress linear prediction compression",
    "MS:1002313": "MS-Numpress positive integer compression",
    "MS:1002314": "MS-Numpress short logged float compression",
    "MS:1002746": "MS-Numpress linear prediction compression followed by zlib compression",
    "MS:1002747": "MS-Numpress positive integer compression followed by zlib compression",
    "MS:1002748": "MS-Numpress short logged float compression followed by zlib compression",
}
#: MS-Numpress accessions: the pynumpress decoder, and whether zlib was applied after it.
NUMPRESS_CODING = {
    "MS:1002312": ("linear", False),
    "MS:1002313": ("pic", False),
    "MS:1002314": ("slof", False),
    "MS:1002746": ("linear", True),
    "MS:1002747": ("pic", True),
    "MS:1002748": ("slof", True),
}
MS_LEVEL, SCAN_START_TIME = "MS:1000511", "MS:1000016"
#: What a referenceable parameter group may carry that reading needs (the rest is dropped).
RELEVANT = frozenset(
    {MZ_ARRAY, INTENSITY_ARRAY, ZLIB, NO_COMPRESSION, MS_LEVEL, *DTYPES, *NUMPRESS}
)
_SECONDS = frozenset({"UO:0000010", "second"})
_MINUTES = frozenset({"UO:0000031", "minute"})

#: Each file version's spectrum offsets, as the index or a scan found them.
_LAYOUTS = KeptMetadata()

Groups = Mapping[str, Sequence[tuple[str, str]]]


@dataclass(frozen=True, slots=True, eq=False)
class Spectrum:
    """One spectrum: its native id, index, MS level, scan start time (minutes) and arrays."""

    id: str
    index: int
    ms_level: int | None
    scan_start_time: float | None
    mz: np.ndarray
    intensity: np.ndarray


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a file's spectra start, where the last ends, and how that was found."""

    offsets: tuple[int, ...]
    end: int
    planned_by: str  # "index" or "scan"
    why: str = ""  # why a file with an index was scanned
    checked: set[int] = field(default_factory=set, compare=False)  # offsets seen on <spectrum


_NOT_THERE = (
    "byte {}: the offset index says a spectrum starts here, but the file holds something"
    " else (the index does not match the file)"
)


class _Mismatch(Exception):
    """The index does not match the file (a message naming the byte offset)."""


class MzmlFormat(ByteRangeFormat):
    """mzML mass spectra: runs of spectra from the offset index, or from one scan."""

    name = "mzml"
    extensions = (".mzml",)
    description = "mzML spectra; runs of spectra from the file's offset index (or one scan)"

    codecs = ("none", "gzip")

    def sniff(self, head: bytes, path: str) -> bool:
        try:
            head = text_head(head, path)
        except FormatError:
            return False
        return _is_mzml(head) and not _is_imzml(head)

    def matches_name(self, path: str) -> bool:
        lower = path.lower()
        return super().matches_name(lower[:-3] if lower.endswith(".gz") else lower)

    def explain(self, head: bytes, url: str) -> str:
        try:
            head = text_head(head, url)
        except FormatError as exc:
            return str(exc)
        if _is_imzml(head):
            return f"{url}: byte 0: this is imzML (imaging, its arrays in an .ibd): format='imzml'"
        return (
            f"{url}: byte 0: this is not mzML: expected an XML document with an <mzML> or"
            f" <indexedmzML> root, found {head[:32]!r}"
        )

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        index: str = "auto",
        check_splits: bool = False,
    ) -> list[Partition]:
        """Runs of spectra: ``index`` "auto" (the index when it matches, else a scan),
        "require" (refuse a file whose index is missing or does not match) or "ignore".

        ``check_splits``: also check, with a small read each, that every offset a
        partition starts at lands on a spectrum (else reading that partition refuses it).
        """
        if index not in ("auto", "require", "ignore"):
            raise ValueError(f"index must be 'auto', 'require' or 'ignore', not {index!r}")
        partition_count(0, n, target_bytes)  # refuse a bad n even for a file without spectra
        if source.size == 0:
            return []
        head = source.head(HEAD_BYTES)
        if not self.sniff(head, source.url):
            raise FormatError(self.explain(head, source.url))
        codec = codec_of(head, source.url)
        if codec != "none":  # the same planning over the uncompressed bytes
            source = Inflated(source)
            head = source.head(HEAD_BYTES)
        extra = header_spec(source, head) | ({"codec": codec} if codec != "none" else {})
        layout = layout_of(source, head, index)
        bounds = split(layout, n, target_bytes)
        if layout.planned_by == "index" and check_splits:
            try:
                check_offsets(source, layout, [layout.offsets[b] for b in bounds[:-1]])
            except _Mismatch as exc:
                if index == "require":
                    raise FormatError(f"{source.url}: {exc}") from None
                _LAYOUTS.slot(source).pop("index", None)  # not to be checked again
                layout = scanned(source, head, why=str(exc))
                bounds = split(layout, n, target_bytes)
        return partitions(source, self.name, layout, bounds, extra)

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        if partition.options.get("codec", "none") != "none":
            return None  # a range of the uncompressed bytes: only read() reads it
        return partition["start"], partition["end"]

    def decode(self, partition: Partition, data: bytes, source: RangeSource, **options: Any) -> Any:
        if partition.options.get("codec", "none") != "none":
            return self.read(partition, source)
        return read_spectra(partition, data, source.url)

    def records(self, partition: Partition, **options: Any) -> Iterator[Spectrum]:
        yield from self.read(partition, **options)

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """A row per spectrum: id, index, ms_level, scan_start_time, mz, intensity (arrays)."""
        import pandas as pd

        return pd.DataFrame(rows(self.read(partition, **options)))

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """A row per spectrum, the arrays as list columns."""
        return arrow_table(rows(self.read(partition, **options)))

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> list[Spectrum]:  # fmt: skip
        if partition.options.get("codec", "none") == "none":
            result: list[Spectrum] = super().read(partition, source, config, **options)
            return result
        inflated = Inflated(open_source(partition, source, config))
        data = inflated.read(partition["start"], partition["end"])
        return read_spectra(partition, data, inflated.url)


class Inflated(RangeSource):
    """A gzip file's uncompressed bytes, read through the codec layer's stored gzip index
    (built once per file version): planning and reading a ``.mzML.gz`` see plain mzML.
    Offsets (and so the ones error messages name) count uncompressed bytes."""

    def __init__(self, raw: RangeSource) -> None:  # reads go through ``raw``: no super()
        from ..codecs._gzip_index import load_or_build

        self.raw, self.url, self.fs, self.path = raw, raw.url, raw.fs, raw.path
        self.index = load_or_build(raw)
        self.bytes_read, self.requests = 0, 0
        self._count_lock = threading.Lock()

    @property
    def size(self) -> int:
        return int(self.index.size)

    @property
    def fingerprint(self) -> str:
        return self.raw.fingerprint

    @property
    def version(self) -> str:
        return self.raw.version

    def read(self, start: int, end: int) -> bytes:
        from ..codecs._gzip_index import read_range

        data: bytes = read_range(self.raw, self.index, max(0, start), min(end, self.size))
        return data


def codec_of(head: bytes, url: str) -> str:
    """``none`` or ``gzip`` (BGZF is read as gzip); FormatError for another compression."""
    import aifdata.codecs as codecs

    found = codecs.detect(head, url)
    while found.name not in MzmlFormat.codecs and found.fallback is not None:
        found = codecs.get(found.fallback)
    if found.name not in MzmlFormat.codecs:
        raise FormatError(f"{url}: byte 0: {found.label} data; mzML is read plain or gzipped")
    return found.name


def text_head(head: bytes, url: str) -> bytes:
    """The uncompressed start of the file."""
    import aifdata.codecs as codecs

    codec = codec_of(head, url)
    return head if codec == "none" else codecs.get(codec).peek(head, url)


# -- sniffing and the header ------------------------------------------------------


def _is_mzml(head: bytes) -> bool:
    start = head.lstrip()[:1]
    return start == b"<" and (b"<mzML" in head or b"<indexedmzML" in head)


def _is_imzml(head: bytes) -> bool:
    return b'accession="IMS:' in head or b"imagingMS.obo" in head


def encoding_of(head: bytes) -> str:
    """The document's encoding, from its XML declaration (UTF-8 when it names none)."""
    found = _ENCODING.match(head)
    return found.group(1).decode("ascii") if found else "UTF-8"


def header_spec(source: RangeSource, head: bytes) -> dict[str, Any]:
    """What every partition needs from the header: the encoding and the parameter groups."""
    encoding = encoding_of(head)
    if b"<referenceableParamGroupList" in head and b"</referenceableParamGroupList>" not in head:
        head = source.read(0, 16 * HEAD_BYTES)  # a long header: read on
    found = _GROUPS.search(head)
    groups = param_groups(found.group(0), encoding, source.url) if found else ()
    return {"encoding": encoding, "groups": groups}


def param_groups(xml: bytes, encoding: str, url: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """``(id, ((accession, value), ...))`` of each referenceable parameter group, keeping
    only what reading needs (array kind, precision, compression, MS level)."""
    root = parse_fragment(xml, encoding, url, 0)
    out = []
    for group in root.iter():
        if local(group.tag) == "referenceableParamGroup":
            params = tuple(
                (p.get("accession", ""), p.get("value", ""))
                for p in group
                if local(p.tag) == "cvParam" and p.get("accession") in RELEVANT
            )
            if params:  # a group of nothing reading needs is left out
                out.append((group.get("id", ""), params))
    return tuple(out)


# -- planning ---------------------------------------------------------------------


def layout_of(source: RangeSource, head: bytes, index: str) -> Layout:
    """The spectra of this file version: from its index or a scan, kept once found."""
    slot = _LAYOUTS.slot(source)
    indexed = b"<indexedmzML" in head and index != "ignore"
    kept: Layout | None = slot.get("index" if indexed else "scan")
    if kept is None and indexed and "scan" in slot and index == "auto":
        kept = slot["scan"]  # the index was found not to match before
    if kept is not None:
        return kept
    if index == "require" and b"<indexedmzML" not in head:
        raise FormatError(f"{source.url}: byte 0: this mzML has no offset index (<indexedmzML>)")
    if not indexed:
        return scanned(source, head)
    try:
        layout = slot["index"] = from_index(source)
    except _Mismatch as exc:
        if index == "require":
            raise FormatError(f"{source.url}: {exc}") from None
        return scanned(source, head, why=str(exc))
    return layout


def from_index(source: RangeSource) -> Layout:
    """The spectrum offsets of an indexed mzML, from its tail (one or two reads)."""
    size = source.size
    tail_start = max(0, size - TAIL_BYTES)
    tail = source.read(tail_start, size)
    if b"</indexedmzML>" not in tail[-256:]:
        raise FormatError(
            f"{source.url}: byte {size}: the file ends without </indexedmzML> (truncated?)"
        )
    found = _INDEX_LIST_OFFSET.search(tail)
    if found is None:
        raise _Mismatch(f"byte {tail_start}: no <indexListOffset> in the last {len(tail)} bytes")
    at = int(found.group(1))
    if not 0 < at < size:
        raise _Mismatch(f"byte {tail_start + found.start()}: indexListOffset {at} is past the end")
    text = tail[at - tail_start :] if at >= tail_start else source.read(at, tail_start) + tail
    if not text.lstrip().startswith(b"<indexList"):  # psims points at the indent before
        raise _Mismatch(f"byte {at}: indexListOffset does not point at <indexList>")
    indexes = {m.group(1): m.group(2) for m in _INDEX.finditer(text)}
    offsets = tuple(int(m.group(1)) for m in _OFFSET.finditer(indexes.get(b"spectrum", b"")))
    if any(b <= a for a, b in itertools.pairwise(offsets)) or (
        offsets and not (offsets[0] > 0 and offsets[-1] < at)
    ):
        raise _Mismatch(f"byte {at}: the spectrum offsets of the index are out of order")
    if not offsets:
        return Layout((), at, "index")
    first = _around_first(source, offsets[0])
    end = offsets[-1] + _last_length(source, offsets[-1], at)
    return Layout(offsets, end, "index", checked={first})


def _around_first(source: RangeSource, offset: int) -> int:
    """Check that the first indexed spectrum is the first of the spectrum list."""
    lo = max(0, offset - 4096)
    data = source.read(lo, offset + 80)
    opened = data.rfind(b"<spectrumList", 0, offset - lo)
    if opened < 0 or SPECTRUM_START.search(data, opened, offset - lo):
        raise _Mismatch(
            f"byte {offset}: the index's first spectrum is not the first of <spectrumList>"
        )
    if not SPECTRUM_AT.match(data, offset - lo):
        raise _Mismatch(_NOT_THERE.format(offset))
    return offset


def _last_length(source: RangeSource, offset: int, limit: int) -> int:
    """The length of the last indexed spectrum, checked to be the last of the list (one read
    of it: a spectrum the index leaves out at the end would otherwise go unseen)."""
    data = source.read(offset, limit)
    stop = data.find(LIST_END)
    if stop < 0:
        raise _Mismatch(f"byte {limit}: no </spectrumList> after the last indexed spectrum")
    found = [m.start() for m in SPECTRUM_START.finditer(data, 0, stop)]
    if not found or data[: found[0]].strip():
        raise _Mismatch(_NOT_THERE.format(offset))
    if len(found) > 1:
        raise _Mismatch(
            f"byte {offset + found[1]}: a spectrum the offset index does not list (the index"
            " does not match the file)"
        )
    return stop


def check_offsets(source: RangeSource, layout: Layout, offsets: Iterable[int]) -> None:
    """Each offset must land on ``<spectrum`` (a 16-byte read each, in parallel)."""
    todo = sorted(set(offsets) - layout.checked)
    if not todo:
        return
    with ThreadPoolExecutor(min(CHECK_THREADS, len(todo))) as pool:
        landed = list(pool.map(lambda o: _lands(source, o), todo))
    for offset, ok in zip(todo, landed, strict=True):
        if not ok:
            raise _Mismatch(_NOT_THERE.format(offset))
    layout.checked.update(todo)


def _lands(source: RangeSource, offset: int) -> bool:
    return SPECTRUM_AT.match(source.read(offset, offset + 74)) is not None


def scanned(source: RangeSource, head: bytes, why: str = "") -> Layout:
    """Every spectrum's offset, from one pass over the file (kept for this version)."""
    slot = _LAYOUTS.slot(source)
    layout: Layout | None = slot.get("scan")
    if layout is None:
        offsets, end = scan(source)
        layout = slot["scan"] = Layout(tuple(offsets), end, "scan", why)
    elif why and not layout.why:
        layout = Layout(layout.offsets, layout.end, "scan", why, layout.checked)
    return layout


def scan(source: RangeSource) -> tuple[list[int], int]:
    """Stream the file once: the offsets of its spectra and of ``</spectrumList>``."""
    size = source.size
    offsets: list[int] = []
    keep = 32  # bytes carried over between reads, so a tag cut in two is found whole
    carry, at = b"", 0
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(source.read, 0, SCAN_BYTES)
        while at < size:
            chunk = pending.result()
            nxt = at + len(chunk)
            if not chunk:
                break
            if nxt < size:
                pending = pool.submit(source.read, nxt, nxt + SCAN_BYTES)
            data, base = carry + chunk, at - len(carry)
            stop = data.find(LIST_END)
            limit = len(data) if stop < 0 else stop
            for m in SPECTRUM_START.finditer(data, 0, limit):
                if not offsets or base + m.start() > offsets[-1]:
                    offsets.append(base + m.start())
            if stop >= 0:
                return offsets, base + stop
            carry, at = data[-keep:], nxt
    if offsets or b"<spectrumList" in head_of(source):
        raise FormatError(
            f"{source.url}: byte {size}: the file ends inside its spectrum list, before"
            " </spectrumList> (truncated?)"
        )
    return [], size  # no spectrum list (a file of chromatograms only)


def head_of(source: RangeSource) -> bytes:
    return source.head(HEAD_BYTES)


def split(layout: Layout, n: int | None, target_bytes: int | None) -> list[int]:
    """Spectrum numbers where partitions start, plus the number of spectra: about ``n``
    runs (or runs of about ``target_bytes``), balanced by bytes."""
    offsets = layout.offsets
    k = len(offsets)
    if k == 0:
        return [0]
    first, total = offsets[0], layout.end - offsets[0]
    count = partition_count(total, n, target_bytes, at_most=k)
    bounds = [0]
    for i in range(1, count):
        j = bisect.bisect_left(offsets, first + total * i // count)
        bounds.append(min(max(j, bounds[-1] + 1), k - (count - i)))
    return [*bounds, k]


def partitions(
    source: RangeSource, name: str, layout: Layout, bounds: list[int], extra: dict[str, Any]
) -> list[Partition]:
    offsets, fingerprint = layout.offsets, source.fingerprint
    how = {"planned_by": layout.planned_by, **({"why": layout.why[:200]} if layout.why else {})}
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        end = offsets[b] if b < len(offsets) else layout.end
        spec = {"start": offsets[a], "end": end, "first": a, "count": b - a, **how, **extra}
        out.append(Partition.make(source.url, name, i, fingerprint, **spec))
    return out


# -- reading ----------------------------------------------------------------------


def read_spectra(partition: Partition, data: bytes, url: str) -> list[Spectrum]:
    """The spectra of one partition from its bytes, checked against what the plan expects."""
    base, count = partition["start"], partition["count"]
    stop = data.find(LIST_END)
    if stop >= 0:
        data = data[:stop]
    starts = [m.start() for m in SPECTRUM_START.finditer(data)]
    if count and (not starts or data[: starts[0]].strip()):
        raise FormatError(
            f"{url}: byte {base}: expected a <spectrum> here (as planned by"
            f" {partition['planned_by']}), found {data[:24]!r}: the file does not match"
            " its plan or index"
        )
    if len(starts) != count:
        raise FormatError(
            f"{url}: bytes {base}..{base + len(data)}: expected {count} spectra there (as"
            f" planned, {partition['planned_by']}), found {len(starts)}: the file does not match"
            " its index; plan it again with index='ignore'"
        )
    if not count:
        return []
    groups = dict(partition.options.get("groups") or ())
    encoding = partition.options.get("encoding", "UTF-8")
    elements = parse_elements(data, starts, encoding, url, base)
    out = [spectrum_of(e, groups, url, base + s) for e, s in zip(elements, starts, strict=True)]
    numbers = [s.index for s in out]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        at = next(i for i in range(1, len(numbers)) if numbers[i] != numbers[0] + i)
        raise FormatError(
            f"{url}: byte {base + starts[at]}: spectrum index {numbers[at]} where"
            f" {numbers[0] + at} was expected (spectra out of order or missing)"
        )
    return out


def parse_elements(
    data: bytes, starts: Sequence[int], encoding: str, url: str, base: int
) -> list[Any]:
    """The elements of the XML ``data`` (consecutive elements starting at ``starts``)."""
    try:
        root = _fromstring(wrap(data, encoding))
    except _xml_errors():
        for a, b in zip(starts, [*starts[1:], len(data)], strict=True):
            parse_fragment(data[a:b], encoding, url, base + a)  # raises, naming the offset
        raise FormatError(f"{url}: byte {base}: not well-formed XML") from None
    elements = [e for e in root if isinstance(e.tag, str)]
    if len(elements) != len(starts):
        raise FormatError(
            f"{url}: byte {base}: {len(starts)} elements expected, {len(elements)} found"
        )
    return elements


def wrap(data: bytes, encoding: str) -> bytes:
    return b'<?xml version="1.0" encoding="%s"?><_>%s</_>' % (encoding.encode(), data)


def parse_fragment(data: bytes, encoding: str, url: str, offset: int) -> Any:
    """``data`` parsed inside a dummy root; FormatError naming the byte offset of an error."""
    wrapped = wrap(data, encoding)
    try:
        return _fromstring(wrapped)
    except _xml_errors() as exc:
        line, column = _position(exc)
        prefix = len(wrapped) - len(data) - len(b"</_>")
        at = _line_start(wrapped, line) + max(column - 1, 0) - prefix
        at = min(max(at, 0), len(data))
        message = str(exc).split(" (<string>")[0][:200]
        raise FormatError(f"{url}: byte {offset + at}: not well-formed XML: {message}") from None


def _line_start(data: bytes, line: int) -> int:
    at = 0
    for _ in range(max(line - 1, 0)):
        found = data.find(b"\n", at)
        if found < 0:
            break
        at = found + 1
    return at


def _position(exc: Exception) -> tuple[int, int]:
    position = getattr(exc, "position", None)  # ElementTree
    if position:
        return int(position[0]), int(position[1]) + 1
    return int(getattr(exc, "lineno", 1) or 1), int(getattr(exc, "offset", 1) or 1)


@functools.cache
def _parser() -> Any:
    try:
        from lxml import etree
    except ImportError:
        return None
    return etree.XMLParser(
        huge_tree=True, resolve_entities=False, no_network=True, remove_comments=True
    )


def _fromstring(data: bytes) -> Any:
    parser = _parser()
    if parser is None:
        import xml.etree.ElementTree as ElementTree

        return ElementTree.fromstring(data)
    from lxml import etree

    return etree.fromstring(data, parser)


@functools.cache
def _xml_errors() -> tuple[type[Exception], ...]:
    import xml.etree.ElementTree as ElementTree

    errors: list[type[Exception]] = [ElementTree.ParseError]
    try:
        from lxml import etree

        errors.append(etree.XMLSyntaxError)
    except ImportError:
        pass
    return tuple(errors)


def local(tag: Any) -> str:
    """An element's tag without its namespace."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def params(element: Any, groups: Groups) -> list[tuple[str, str, Any]]:
    """``(accession, value, element)`` of the cvParams of ``element`` and its groups."""
    out: list[tuple[str, str, Any]] = []
    for child in element:
        tag = local(child.tag)
        if tag == "cvParam":
            out.append((child.get("accession", ""), child.get("value", ""), child))
        elif tag == "referenceableParamGroupRef":
            out.extend((a, v, None) for a, v in groups.get(child.get("ref", ""), ()))
    return out


def spectrum_of(element: Any, groups: Groups, url: str, offset: int) -> Spectrum:
    """A :class:`Spectrum` from its ``<spectrum>`` element (at byte ``offset``)."""
    if local(element.tag) != "spectrum":
        raise FormatError(f"{url}: byte {offset}: expected <spectrum>, found <{element.tag}>")
    level = None
    for accession, value, _ in params(element, groups):
        if accession == MS_LEVEL:
            level = _number(value, int, url, offset, "ms level")
    length = _number(element.get("defaultArrayLength", "0"), int, url, offset, "length")
    arrays = {}
    time = None
    for child in element:
        tag = local(child.tag)
        if tag == "scanList" and time is None:
            time = scan_start_time(child, groups, url, offset)
        elif tag == "binaryDataArrayList":
            arrays = binary_arrays(child, groups, length, url, offset)
    import numpy as np

    empty = np.empty(0, "f8")
    return Spectrum(
        element.get("id", ""),
        _number(element.get("index", "-1"), int, url, offset, "index"),
        level,
        time,
        arrays.get(MZ_ARRAY, empty),
        arrays.get(INTENSITY_ARRAY, empty),
    )


def scan_start_time(scan_list: Any, groups: Groups, url: str, offset: int) -> float | None:
    """The first scan's start time, in minutes."""
    for scan in scan_list:
        if local(scan.tag) != "scan":
            continue
        for accession, value, element in params(scan, groups):
            if accession == SCAN_START_TIME:
                time: float = _number(value, float, url, offset, "scan start time")
                unit = (
                    {element.get("unitAccession"), element.get("unitName")}
                    if element is not None
                    else set()
                )
                return time / 60 if unit & _SECONDS else time
        return None
    return None


def binary_arrays(
    array_list: Any, groups: Groups, length: int, url: str, offset: int
) -> dict[str, np.ndarray]:
    """The m/z and intensity arrays of a ``<binaryDataArrayList>``, decoded."""
    out = {}
    for array in array_list:
        if local(array.tag) != "binaryDataArray":
            continue
        accessions = {a: v for a, v, _ in params(array, groups)}
        kind = MZ_ARRAY if MZ_ARRAY in accessions else INTENSITY_ARRAY
        if kind not in accessions:
            continue  # another array (ion mobility, time, ...): not read
        expected = _number(array.get("arrayLength", str(length)), int, url, offset, "arrayLength")
        text = "".join(child.text or "" for child in array if local(child.tag) == "binary")
        out[kind] = decode_array(text, accessions, expected, url, offset)
    return out


def array_type(accessions: Mapping[str, str], url: str, offset: int) -> tuple[str, bool]:
    """The numpy dtype of an array and whether it is zlib-compressed, from its cvParams."""
    dtypes = [DTYPES[a] for a in accessions if a in DTYPES]
    if len(dtypes) != 1:
        raise FormatError(
            f"{url}: byte {offset}: a binary array names {len(dtypes)} precisions; expected one"
            f" of {', '.join(DTYPES)}"
        )
    return dtypes[0], ZLIB in accessions


def numpress_of(accessions: Mapping[str, str], url: str, offset: int) -> str | None:
    """The MS-Numpress accession of an array, if any (checked to be decodable here)."""
    found = next((a for a in accessions if a in NUMPRESS), None)
    if found is not None and _pynumpress() is None:
        raise FormatError(
            f"{url}: byte {offset}: a binary array is compressed with {NUMPRESS[found]}"
            f" ({found}); decoding it needs pynumpress (pip install pynumpress)"
        )
    return found


@functools.cache
def _pynumpress() -> Any:
    try:
        import pynumpress
    except ImportError:
        return None
    return pynumpress


def decode_array(
    text: str, accessions: Mapping[str, str], expected: int, url: str, offset: int
) -> np.ndarray:
    """One base64 binary array, decompressed and checked to hold ``expected`` values."""
    import numpy as np

    numpress = numpress_of(accessions, url, offset)
    if numpress is None:
        dtype, compressed = array_type(accessions, url, offset)
    else:
        dtype, compressed = "<f8", NUMPRESS_CODING[numpress][1]
    compact = "".join(text.split())
    if not compact:
        raw = b""
    else:
        try:
            raw = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FormatError(
                f"{url}: byte {offset}: a binary array is not base64: {exc}"
            ) from None
        if compressed:
            raw = inflate(raw, url, offset)
    if numpress is not None and raw:
        raw = unpress(raw, numpress, url, offset)
    array: np.ndarray = as_array(raw, dtype, expected, url, offset, np)
    return array


def unpress(raw: bytes, accession: str, url: str, offset: int) -> bytes:
    """MS-Numpress bytes decoded (by pynumpress) to little-endian doubles."""
    import numpy as np

    decoder = getattr(_pynumpress(), f"decode_{NUMPRESS_CODING[accession][0]}")
    try:
        values = decoder(np.frombuffer(raw, np.uint8))
    except Exception as exc:  # pynumpress raises what its C++ library throws
        raise FormatError(
            f"{url}: byte {offset}: a binary array is not {NUMPRESS[accession]} data: {exc}"
        ) from None
    return bytes(np.asarray(values, "<f8").tobytes())


def inflate(raw: bytes, url: str, offset: int) -> bytes:
    try:
        return zlib.decompress(raw)
    except zlib.error as exc:
        raise FormatError(f"{url}: byte {offset}: a binary array is not zlib data: {exc}") from None


def as_array(raw: bytes, dtype: str, expected: int, url: str, offset: int, np: Any) -> Any:
    width = int(dtype[-1])
    if len(raw) != expected * width:
        raise FormatError(
            f"{url}: byte {offset}: a binary array holds {len(raw)} bytes; {expected} values of"
            f" {width} bytes were expected"
        )
    return np.frombuffer(raw, dtype)


def _number(value: str, kind: type, url: str, offset: int, what: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise FormatError(f"{url}: byte {offset}: {what} {value!r} is not a number") from None


# -- tables -----------------------------------------------------------------------


def rows(spectra: Iterable[Spectrum]) -> dict[str, list[Any]]:
    """Columns of a table with a row per spectrum."""
    names = ("id", "index", "ms_level", "scan_start_time", "mz", "intensity")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for s in spectra:
        for name in names:
            columns[name].append(getattr(s, name))
    return columns


def arrow_table(columns: Mapping[str, list[Any]]) -> Any:
    """A pyarrow table: scalars as they are, arrays as list columns."""
    import numpy as np
    import pyarrow as pa

    out = {}
    for name, values in columns.items():
        if values and isinstance(values[0], np.ndarray):
            lengths = np.fromiter((len(v) for v in values), "i8", len(values))
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            flat = np.concatenate(values) if values else np.empty(0, "f8")
            out[name] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat))
        else:
            out[name] = pa.array(values)
    return pa.table(out)

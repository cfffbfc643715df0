"""mzML: ranges of spectra, planned from the file's own offset index (or one scan without one).

An indexed mzML (``<indexedmzML>``) ends with ``<indexListOffset>``, the byte
offset of an ``<indexList>`` whose ``<index name="spectrum">`` gives the byte
offset of every ``<spectrum>`` (attribute values in either quote). Planning reads
the file's head and tail (64 KiB each), the index when it starts before the tail,
4 KiB before the first spectrum and the last spectrum up to ``</spectrumList>``
(never the chromatograms after it): four or five requests, whatever ``n``. A
header longer than the head (a long ``<fileDescription>``) is read on, in
doubling windows, until its referenceable parameter groups close or ``<run``
starts; a group list that never closes is refused. It then
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
fall back to one scan of the file (so does an index that lists no spectrum
when the head does not show an empty spectrum list): the partitions then say
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

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._config import Config
from .._errors import FormatError
from .._threads import ThreadPool
from ._base import (
    ByteRangeFormat,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)
from ._psi import (
    INTENSITY_ARRAY,
    MS_LEVEL,
    MZ_ARRAY,
    SCAN_START_TIME,
    Groups,
    arrow_table,
    decode_array,
    encoding_of,
    is_imzml,
    is_mzml,
    local,
    number,
    param_groups,
    params,
    parse_elements,
)
from ._ranges import balanced_bounds

if TYPE_CHECKING:
    import numpy as np

#: Bytes read from the start (the header: encoding, referenceable parameter groups).
HEAD_BYTES = 64 * 2**10
#: Bytes read from the end to find ``<indexListOffset>`` (and often the whole index).
TAIL_BYTES = 64 * 2**10
#: Bytes per read when scanning a file for its spectra.
SCAN_BYTES = 8 * 2**20
#: Split offsets checked at once (each is one small read: latency, not bandwidth).
CHECK_THREADS = 16

SPECTRUM_START = re.compile(rb"<spectrum[ \t\r\n]")
#: A spectrum at an index offset (some writers point at the indentation before it).
SPECTRUM_AT = re.compile(rb"[ \t\r\n]{0,64}<spectrum[ \t\r\n]")
LIST_END = b"</spectrumList>"
_INDEX_LIST_OFFSET = re.compile(rb"<indexListOffset>\s*(\d+)\s*</indexListOffset>")
# XML lets an attribute value stand in either quote: every attribute pattern takes both.
_INDEX = re.compile(rb"""<index\s+name\s*=\s*(["'])(\w+)\1\s*>(.*?)</index>""", re.S)
_OFFSET = re.compile(rb"<offset\b[^>]*>\s*(\d+)\s*</offset>")
_GROUPS = re.compile(rb"<referenceableParamGroupList\b.*?</referenceableParamGroupList>", re.S)
_GROUPS_OPEN = b"<referenceableParamGroupList"
#: Where the header ends: the parameter groups, if any, come before these.
_HEADER_END = re.compile(rb"<(?:run|spectrumList)[ \t\r\n>]")
_LIST_COUNT = re.compile(rb"""<spectrumList\b[^>]*?\bcount\s*=\s*["'](\d+)["']""")
#: The most bytes a header (up to ``<run``) or a parameter group list may take.
HEADER_LIMIT = 64 * 2**20

#: A scan start time in seconds (unit accession or name); minutes otherwise.
_SECONDS = frozenset({"UO:0000010", "second"})

#: Each file version's spectrum offsets, as the index or a scan found them.
_LAYOUTS = KeptMetadata()


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
        return is_mzml(head) and not is_imzml(head)

    def matches_name(self, path: str) -> bool:
        lower = path.lower()
        return super().matches_name(lower[:-3] if lower.endswith(".gz") else lower)

    def explain(self, head: bytes, url: str) -> str:
        try:
            head = text_head(head, url)
        except FormatError as exc:
            return str(exc)
        if is_imzml(head):
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
        head = self.checked_head(source, HEAD_BYTES)
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

        self._attach(raw.url, raw.fs, raw.path)
        self.raw = raw
        self.index = load_or_build(raw)

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
        with self._count_lock:  # uncompressed bytes: what planning a .mzML.gz costs
            self.bytes_read += len(data)
            self.requests += 1
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


def header_spec(source: RangeSource, head: bytes) -> dict[str, Any]:
    """What every partition needs from the header: the encoding and the parameter groups."""
    encoding = encoding_of(head)
    found = _GROUPS.search(head)
    # a long header (a long fileDescription, comments): read on in doubling windows until
    # the group list closes or the header ends without one
    while found is None and not _HEADER_END.search(head, 0, _header_limit(head)):
        opened = head.find(_GROUPS_OPEN)
        if len(head) >= source.size or len(head) >= HEADER_LIMIT:
            if opened >= 0:
                raise FormatError(
                    f"{source.url}: byte {opened}: <referenceableParamGroupList> does not close"
                    f" within {len(head) - opened} bytes (truncated or not mzML?)"
                )
            break  # no group list in the header (what is wrong is found when planning)
        head += source.read(len(head), min(HEADER_LIMIT, 2 * len(head)))
        found = _GROUPS.search(head)
    groups = param_groups(found.group(0), encoding, source.url) if found else ()
    return {"encoding": encoding, "groups": groups}


def _header_limit(head: bytes) -> int:
    """Where ``<run`` may be looked for: before an unclosed group list (whose groups may
    name anything), else anywhere."""
    opened = head.find(_GROUPS_OPEN)
    return len(head) if opened < 0 else opened


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
    indexes = {m.group(2): m.group(3) for m in _INDEX.finditer(text)}
    offsets = tuple(int(m.group(1)) for m in _OFFSET.finditer(indexes.get(b"spectrum", b"")))
    if any(b <= a for a, b in itertools.pairwise(offsets)) or (
        offsets and not (offsets[0] > 0 and offsets[-1] < at)
    ):
        raise _Mismatch(f"byte {at}: the spectrum offsets of the index are out of order")
    if not offsets:
        _no_spectra(source, at)
        return Layout((), at, "index")
    first = _around_first(source, offsets[0])
    hint = (offsets[-1] - offsets[0]) // max(1, len(offsets) - 1)
    end = offsets[-1] + _last_length(source, offsets[-1], at, hint)
    return Layout(offsets, end, "index", checked={first})


def _no_spectra(source: RangeSource, at: int) -> None:
    """An index that lists no spectrum is believed only when the head shows an empty
    spectrum list (or none before the index): else the file is scanned."""
    head = head_of(source)
    listed = _LIST_COUNT.search(head)
    if listed is not None:
        after = head[listed.end() :]
        if int(listed.group(1)) == 0 and not SPECTRUM_START.search(after):
            return
        raise _Mismatch(
            f"byte {at}: the offset index lists no spectrum, but <spectrumList> (byte"
            f" {listed.start()}) says count={int(listed.group(1))}"
            + (" and holds spectra" if SPECTRUM_START.search(after) else "")
        )
    if b"<spectrumList" not in head and b"</run>" in head:  # a small file without one
        return
    raise _Mismatch(
        f"byte {at}: the offset index lists no spectrum and the first {len(head)} bytes do"
        " not show an empty spectrum list"
    )


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


def _last_length(source: RangeSource, offset: int, limit: int, hint: int = 0) -> int:
    """The length of the last indexed spectrum, checked to be the last of the list (a
    spectrum the index leaves out at the end would otherwise go unseen). Read forward in
    doubling windows, from about two spectra's worth, up to ``</spectrumList>``: not
    the chromatograms after it."""
    data = b""
    window = max(4096, 2 * hint + 1024)
    while True:
        data += source.read(offset + len(data), min(limit, offset + len(data) + window))
        stop = data.find(LIST_END, max(0, len(data) - window - len(LIST_END)))
        if stop >= 0 or offset + len(data) >= limit:
            break
        window = len(data)  # doubling: the whole read so far again
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
    with ThreadPool(min(CHECK_THREADS, len(todo))) as pool:
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
    with ThreadPool(1) as pool:
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
    if not offsets:
        return [0]
    sizes = [b - a for a, b in itertools.pairwise((*offsets, layout.end))]
    count = partition_count(layout.end - offsets[0], n, target_bytes, at_most=len(offsets))
    return balanced_bounds(sizes, count)


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


def spectrum_of(element: Any, groups: Groups, url: str, offset: int) -> Spectrum:
    """A :class:`Spectrum` from its ``<spectrum>`` element (at byte ``offset``)."""
    if local(element.tag) != "spectrum":
        raise FormatError(f"{url}: byte {offset}: expected <spectrum>, found <{element.tag}>")
    level = None
    for accession, value, _ in params(element, groups):
        if accession == MS_LEVEL:
            level = number(value, int, url, offset, "ms level")
    length = number(element.get("defaultArrayLength", "0"), int, url, offset, "length")
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
        number(element.get("index", "-1"), int, url, offset, "index"),
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
                time: float = number(value, float, url, offset, "scan start time")
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
        expected = number(array.get("arrayLength", str(length)), int, url, offset, "arrayLength")
        text = "".join(child.text or "" for child in array if local(child.tag) == "binary")
        out[kind] = decode_array(text, accessions, expected, url, offset)
    return out


# -- tables -----------------------------------------------------------------------


def rows(spectra: Iterable[Spectrum]) -> dict[str, list[Any]]:
    """Columns of a table with a row per spectrum."""
    names = ("id", "index", "ms_level", "scan_start_time", "mz", "intensity")
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for s in spectra:
        for name in names:
            columns[name].append(getattr(s, name))
    return columns

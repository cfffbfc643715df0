"""What every format plug-in shares: the partition descriptor, range reads, the plug-in base.

A :class:`Partition` is a frozen, picklable description of one independent
piece of one file: where the file is (a URL), which format reads it, its
ordinal, and the format's own spec (byte ranges, a tile window, an entry
range). It holds no open handle and no credential: any process that has the
configuration can read it. Its ``fingerprint`` (size and ETag or mtime, as
seen when planned) lets :meth:`Partition.read` refuse a file that changed
since, instead of returning records of another version.
"""

from __future__ import annotations

import collections
import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import aifdata.codecs as codecs

from .._config import Config, load_config
from .._errors import FormatError
from .._threads import ThreadPool
from ..codecs import ByteReader as ByteReader  # where it lived before the codecs layer
from ..codecs import Codec, Text

#: A partition's target size when neither ``n`` nor ``target_bytes`` is given.
DEFAULT_TARGET_BYTES = 64 * 2**20


#: How a partition finds its format's plug-in: the registry's lookup, installed by
#: :mod:`aifdata.formats._registry` when it loads (so this module never imports it).
_lookup: list[Callable[[str], FormatPlugin]] = []


def use_lookup(lookup: Callable[[str], FormatPlugin]) -> None:
    """Make ``lookup`` the way partitions find plug-ins by name."""
    _lookup[:] = [lookup]


def plugin_named(name: str) -> FormatPlugin:
    """The plug-in called ``name``, through the registry."""
    if not _lookup:  # importing aifdata.formats loads the registry, which installs it
        raise RuntimeError("the format registry (aifdata.formats) has not loaded")
    return _lookup[0](name)


@dataclass(frozen=True)
class Partition:
    """One independent piece of one file, readable anywhere the configuration is."""

    url: str
    format: str
    ordinal: int
    spec: tuple[tuple[str, Any], ...]
    fingerprint: str = ""

    @classmethod
    def make(
        cls, url: str, format: str, ordinal: int, fingerprint: str = "", **spec: Any
    ) -> Partition:
        return cls(url, format, ordinal, tuple(spec.items()), fingerprint)

    def __getitem__(self, key: str) -> Any:
        for name, value in self.spec:
            if name == key:
                return value
        raise KeyError(f"partition spec of {self.format!r} has no {key!r}")

    @property
    def options(self) -> dict[str, Any]:
        """The spec as a dict."""
        return dict(self.spec)

    def read(self, **options: Any) -> Any:
        """This partition's records, through its format's plug-in."""
        return plugin_named(self.format).read(self, **options)

    def to_pandas(self, **options: Any) -> Any:
        """This partition as a pandas DataFrame, a row per record."""
        return plugin_named(self.format).to_pandas(self, **options)

    def __repr__(self) -> str:
        spec = ", ".join(f"{k}={v!r}" for k, v in self.spec)
        return f"Partition({self.url!r}, {self.format!r}, #{self.ordinal}, {spec})"


class RangeSource:
    """Byte ranges of one file (``aif://``, ``s3://`` or local), with a count of what was read.

    The counts (``bytes_read``, ``requests``) are how tests show that planning
    reads little.
    """

    def __init__(self, url: str, config: Config | None = None) -> None:
        from .._urls import resolve_url

        fs, path = resolve_url(url, config if config is not None else load_config())
        self._attach(url, fs, path)

    @classmethod
    def on(cls, fs: Any, path: str, url: str) -> RangeSource:
        """The file at ``path`` of an open filesystem ``fs`` (named ``url`` in messages):
        for a caller that holds the filesystem to read through (a service's, governed by
        its own catalog), so the URL is not resolved again."""
        source = cls.__new__(cls)
        source._attach(url, fs, path)
        return source

    def _attach(self, url: str, fs: Any, path: str) -> None:
        """What every source holds: its name, filesystem and path, and its counts."""
        self.url, self.fs, self.path = url, fs, path
        self.bytes_read = 0
        self.requests = 0
        self._count_lock = threading.Lock()  # plug-ins may read from several threads

    def beside(self, url: str, path: str) -> RangeSource:
        """The file at ``path`` (named ``url`` in messages) on this source's filesystem,
        with counts of its own: an index or a data file beside this one, its URL not
        resolved again."""
        other = RangeSource.__new__(RangeSource)
        other._attach(url, self.fs, path)
        return other

    def count(self, requests: int, nbytes: int) -> None:
        """Add reads made elsewhere (of an index beside the file) to what this source cost."""
        with self._count_lock:
            self.requests += requests
            self.bytes_read += nbytes

    def read_beside(self, suffix: str) -> bytes | None:
        """The whole file named like this one plus ``suffix`` (an index), None when there is
        none; one request, counted as this source's (what planning costs)."""
        try:
            data: bytes = self.fs.cat_file(self.path + suffix)
        except FileNotFoundError:
            return None
        self.count(1, len(data))
        return data

    @cached_property
    def info(self) -> Mapping[str, Any]:
        info: Mapping[str, Any] = self.fs.info(self.path)
        if info.get("type") == "directory":
            raise FormatError(f"{self.url}: is a directory, not a file")
        return info

    @property
    def size(self) -> int:
        return int(self.info.get("size") or 0)

    @property
    def fingerprint(self) -> str:
        """Size plus ETag (S3) or mtime (PFS): changes when the file does.

        Through ``aif://``, a copy the catalog has verified adds its checksum
        (``#sha256:...``): a replica made by staging holds the same version.
        """
        info = self.info
        marker = info.get("ETag") or info.get("etag") or info.get("mtime") or ""
        if hasattr(marker, "timestamp"):
            marker = marker.timestamp()
        checksum = info.get("checksum")
        own = f"{self.size}:{str(marker).strip(chr(34))}"
        return f"{own}#{checksum}" if checksum else own

    @property
    def version(self) -> str:
        """What names this version of the file for caches: its checksum when
        known (the same on every tier), else its fingerprint."""
        fingerprint = self.fingerprint
        return fingerprint.partition("#")[2] or fingerprint

    def head(self, n: int = 4096) -> bytes:
        """The first ``n`` bytes (read once, then kept)."""
        cached = getattr(self, "_head", b"")
        if len(cached) < n and len(cached) < self.size:
            cached = self._head = self.read(0, n)
        return cached[:n]

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (clipped to the file)."""
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return b""
        data: bytes = self.fs.cat_file(self.path, start=start, end=end)
        with self._count_lock:
            self.bytes_read += len(data)
            self.requests += 1
        return data

    def check(self, partition: Partition) -> None:
        """Refuse to read a partition planned on another version of the file."""
        if partition.fingerprint and not same_version(partition.fingerprint, self.fingerprint):
            current = self.fingerprint
            hint = "plan the partitions again"
            if "#" in partition.fingerprint and "#" not in current:
                hint += (  # planned on a verified copy; read where no catalog tells copies apart
                    ", or give this process the catalog ($AIFDATA_CATALOG: the catalog file or"
                    " a snapshot from aifdata export) so it can tell which copy is current"
                )
            raise FormatError(
                f"{self.url}: changed since it was partitioned (was {partition.fingerprint},"
                f" now {current}); {hint}"
            )


def same_version(planned: str, current: str) -> bool:
    """Whether two fingerprints name the same version of a file: by checksum
    when both have one (copies on two tiers), else by size and ETag or mtime."""
    planned_own, _, planned_sum = planned.partition("#")
    current_own, _, current_sum = current.partition("#")
    if planned_sum and current_sum:
        return planned_sum == current_sum
    return planned_own == current_own


class FormatPlugin(ABC):
    """A file format aifdata can partition: sniff it, plan partitions, read one."""

    #: Registry name, e.g. ``fastq``.
    name: ClassVar[str]
    #: File name endings this format usually has (lower case, with the dot).
    extensions: ClassVar[tuple[str, ...]] = ()
    #: One line for ``aifdata formats``.
    description: ClassVar[str] = ""
    #: The codecs (compressions, see :mod:`aifdata.codecs`) its files may come in.
    codecs: ClassVar[tuple[str, ...]] = ("none",)
    #: A format whose sniffing accepts much that other formats also are (delimited text):
    #: it is offered a file last, and only one whose name no other format claims.
    generic: ClassVar[bool] = False

    @abstractmethod
    def sniff(self, head: bytes, path: str) -> bool:
        """Whether ``head`` (the file's first bytes) looks like this format."""

    def explain(self, head: bytes, url: str) -> str:
        """Why ``head`` is not this format, for an error message (file and byte offset)."""
        return f"{url}: byte 0: this is not {self.name} data (it starts with {head[:16]!r})"

    def checked_head(self, source: RangeSource, n: int = 4096) -> bytes:
        """The first ``n`` bytes of ``source``; FormatError saying why when they are not
        this format."""
        head = source.head(n)
        if not self.sniff(head, source.url):
            raise FormatError(self.explain(head, source.url))
        return head

    @abstractmethod
    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        """Partitions of the file, from a few small range reads."""

    @abstractmethod
    def read(self, partition: Partition, source: RangeSource | None = None, **options: Any) -> Any:
        """The records of one partition."""

    def table(self, partition: Partition) -> str:
        """What decides the columns of :meth:`to_pandas` for ``partition`` (the same
        string: the same columns)."""
        return self.name

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """One partition as a pandas DataFrame (a row per record)."""
        import pandas as pd

        return pd.DataFrame(list(self.read(partition, **options)))

    def records(self, partition: Partition, **options: Any) -> Iterator[Any]:
        """The records of one partition, one by one (for streaming consumers)."""
        yield from self.read(partition, **options)

    def matches_name(self, path: str) -> bool:
        lower = path.lower()
        return any(lower.endswith(ext) for ext in self.extensions)

    def __repr__(self) -> str:
        return f"<format {self.name}>"


class ByteRangeFormat(FormatPlugin):
    """A format whose partitions are byte ranges ``[start, end)`` of the file.

    Reading is split in two: fetching the bytes and :meth:`decode`-ing them,
    so :func:`~aifdata.formats.read_all` can fetch neighbouring partitions in
    one larger request (object stores serve large ranges much faster per byte)
    and decode each from its slice.
    """

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        source = open_source(partition, source, config)
        data = source.read(partition["start"], partition["end"])
        return self.decode(partition, data, source, **options)

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        """The file bytes :meth:`decode` takes for ``partition``; None when the partition is
        not a plain range of the file (then only :meth:`read` reads it)."""
        return partition["start"], partition["end"]

    def reads_whole_span(self, options: Mapping[str, Any]) -> bool:
        """Whether reading with ``options`` needs all of each partition's :meth:`byte_span`
        (else :func:`~aifdata.formats.read_all` reads partitions one by one, through
        :meth:`read`, which may read less: Parquet with ``columns``)."""
        return True

    @abstractmethod
    def decode(self, partition: Partition, data: bytes, source: RangeSource, **options: Any) -> Any:
        """The records of ``partition`` from its bytes ``data`` (``source`` for anything more)."""


class TextFormat(ByteRangeFormat):
    """A record-oriented text format, read through any codec it lists (plain, gzip, BGZF).

    A subclass gives the text's rules: :meth:`boundary` (where a record
    starts), :meth:`sniff_text`, :meth:`explain_text` and :meth:`parse`. The
    codec under it (found from the file's first bytes, recorded in each
    partition's spec as ``codec``) plans boundaries with that rule and hands
    :meth:`parse` the uncompressed bytes of exactly one partition's records.
    """

    #: The codecs this format's files may come in (capability as data).
    codecs: ClassVar[tuple[str, ...]] = ("none", "gzip", "bgzf")
    #: Format names from before codecs were a layer, and the codec each meant: partitions
    #: planned then (``Partition.format`` is the old name, no ``codec`` in the spec) read on.
    formerly: ClassVar[Mapping[str, str]] = {}
    #: Bytes of the file read first, to find the codec and check the text.
    head_bytes: ClassVar[int] = 4 * 2**10
    #: Boundaries looked up at once (each is one small range read: latency, not bandwidth).
    plan_threads: ClassVar[int] = 16

    @abstractmethod
    def boundary(self, data: bytes, at_eof: bool) -> int | None:
        """The index (>= 1) of the first record start in ``data`` (``data[0]`` is context);
        None when ``data`` does not settle it."""

    @abstractmethod
    def sniff_text(self, text: bytes, path: str) -> bool:
        """Whether ``text`` (the uncompressed start of the file) looks like this format."""

    def explain_text(self, text: bytes) -> tuple[int, str]:
        """Where (an offset in ``text``) and why ``text`` is not this format."""
        return 0, f"it starts with {text[:16]!r}"

    @abstractmethod
    def parse(self, text: Text, **options: Any) -> Any:
        """The records in ``text`` (whole records; name places with ``text.where(i)``)."""

    def codec(self, head: bytes, url: str) -> Codec:
        """The codec of a file from its first bytes; FormatError when this format does not
        take it (or no codec reads it)."""
        found = codecs.detect(head, url)
        while found.name not in self.codecs and found.fallback is not None:
            found = codecs.get(found.fallback)
        if found.name not in self.codecs:
            raise FormatError(
                f"{url}: byte 0: {found.label} data; the {self.name} format reads"
                f" {', '.join(self.codecs)}"
            )
        return found

    def sniff(self, head: bytes, path: str) -> bool:
        try:
            codec = self.codec(head, path)
            text = codec.peek(head, path)
        except FormatError:
            return False
        if codec.name != "none" and not text:
            return True  # an empty stream: nothing says it is not this format
        return self.sniff_text(text, path)

    def explain(self, head: bytes, url: str) -> str:
        try:
            codec = self.codec(head, url)
            text = codec.peek(head, url)
        except FormatError as exc:
            return str(exc)
        offset, reason = self.explain_text(text)
        if codec.name == "none":
            return f"{url}: byte {offset}: this is not {self.name} data: {reason}"
        return (
            f"{url}: uncompressed byte {offset}: this is not {self.name} data inside"
            f" {codec.label}: {reason}"
        )

    def matches_name(self, path: str) -> bool:
        names = [path]
        for name in self.codecs:
            try:
                stripped = codecs.get(name).strip(path)
            except FormatError:
                continue
            if stripped is not None:
                names.append(stripped)
        return any(super(TextFormat, self).matches_name(name) for name in names)

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        """Partitions of about ``target_bytes`` each (or ``n`` of them), counted in the
        codec's offsets (uncompressed bytes for gzip), each snapped to a record start."""
        if source.size == 0:
            return []
        head = self.checked_head(source, self.head_bytes)
        codec = self.codec(head, source.url)
        stream = codec.open(source)
        extent = stream.extent
        if extent == 0:
            return []  # an empty compressed stream
        count = partition_count(extent, n, target_bytes, at_most=extent)
        nominal = stream.nominal(count)
        with ThreadPool(min(self.plan_threads, max(1, len(nominal)))) as pool:
            snapped = pool.map(lambda offset: stream.snap(offset, self.boundary), nominal)
            starts = sorted({0, *(s for s in snapped if s < extent)})
        bounds = [*starts, extent]
        fingerprint = source.fingerprint
        spans = itertools.pairwise(bounds)
        return [
            Partition.make(source.url, self.name, i, fingerprint, start=a, end=b, codec=codec.name)
            for i, (a, b) in enumerate(spans)
        ]

    def codec_of(self, partition: Partition) -> Codec:
        """The codec a partition was planned with (its spec says; older ones, their format)."""
        name = partition.options.get("codec") or self.formerly.get(partition.format, "none")
        return codecs.get(name)

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        if not self.codec_of(partition).file_offsets:
            return None
        return partition["start"], partition["end"]

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        source = open_source(partition, source, config)
        stream = self.codec_of(partition).open(source)
        return self.parse(stream.text(partition["start"], partition["end"], self.boundary),
                          **options)  # fmt: skip

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource, after: bytes = b"",
        **options: Any,
    ) -> Any:  # fmt: skip
        """The records of ``partition`` from its bytes ``data``; ``after``: file bytes that
        follow them, when the caller holds some (BGZF looks there for the next record)."""
        codec = self.codec_of(partition)
        if not codec.file_offsets:  # not a range of the file: read it through the codec
            return self.read(partition, source, **options)
        stream = codec.open(source)
        text = stream.text(partition["start"], partition["end"], self.boundary, data, after)
        return self.parse(text, **options)


class KeptMetadata:
    """Per-process memory of each file version's metadata (a TIFF's IFDs, a ROOT file's
    directories), so reading partition after partition of one file reads it once.

    An LRU of ``files`` slots keyed by URL and fingerprint: a changed file gets
    a new slot. A slot is a dict the format fills as it likes (thread-safe
    enough: single dict operations are atomic).
    """

    def __init__(self, files: int = 32) -> None:
        self.files = files
        self._slots: collections.OrderedDict[tuple[str, str], dict[Any, Any]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def slot(self, source: RangeSource) -> dict[Any, Any]:
        key = (source.url, source.version)
        with self._lock:
            found = self._slots.pop(key, None)
            found = {} if found is None else found
            self._slots[key] = found
            while len(self._slots) > self.files:
                self._slots.popitem(last=False)
            return found


def open_source(
    partition: Partition, source: RangeSource | None = None, config: Config | None = None
) -> RangeSource:
    """The source to read a partition from, checked to be the file that was planned."""
    source = source or RangeSource(partition.url, config)
    source.check(partition)
    return source


#: More partitions than this is a mistake (each costs a small read to plan, and a task).
MAX_PARTITIONS = 1_000_000


def partition_count(
    size: int, n: int | None, target_bytes: int | None, at_most: int | None = None
) -> int:
    """How many partitions to aim for: ``n``, else ``size / target_bytes`` rounded up;
    never more than ``at_most`` (a byte-range plan: one per byte)."""
    count = _requested_count(size, n, target_bytes)
    return count if at_most is None else min(count, max(1, at_most))


def _requested_count(size: int, n: int | None, target_bytes: int | None) -> int:
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        if n > MAX_PARTITIONS:
            raise ValueError(f"n must be at most {MAX_PARTITIONS:,}, not {n:,}")
        return n
    target = target_bytes or DEFAULT_TARGET_BYTES
    if target < 1:
        raise ValueError(f"target_bytes must be positive, not {target}")
    count = max(1, -(-size // target))
    if count > MAX_PARTITIONS:
        raise ValueError(
            f"target_bytes={target:,} makes {count:,} partitions of {size:,} bytes; at most"
            f" {MAX_PARTITIONS:,} (choose a larger target)"
        )
    return count

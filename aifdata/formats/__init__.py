"""Format plug-ins: split files into independent partitions on the fly, without conversion.

::

    parts = aifdata.partition("aif://genomics/run42/reads.fastq", n=256)
    records = parts[0].read()          # in any process that has the configuration

``get(name)`` and ``detect(path)`` find plug-ins; built-ins load on first use,
third-party ones come from the ``aifdata.formats`` entry-point group. A text
format (:class:`TextFormat`) reads its files through any codec it lists
(plain, gzip, BGZF: see :mod:`aifdata.codecs`), found from their first bytes.
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import aifdata.codecs as codecs

from .._config import Config
from .._errors import FormatError
from .._threads import ThreadPool
from ._base import (
    DEFAULT_TARGET_BYTES,
    MAX_PARTITIONS,
    ByteRangeFormat,
    FormatPlugin,
    Partition,
    RangeSource,
    TextFormat,
    open_source,
)
from ._registry import ENTRY_POINT_GROUP, available, detect, get, register

#: ``read_all`` fetches runs of byte-range partitions in blocks on a grid of this size: at
#: most what the S3 connector fetches in one request (a larger range is split into a first
#: request and parallel parts copied together, about twice the CPU per byte of whole blocks
#: in flight: measured on SeaweedFS, 64 MiB in 16 MiB blocks cost 102 ms of CPU, in 8 MiB
#: blocks 60 ms, fetched whole 45 ms).
BLOCK_BYTES = 8 * 2**20
#: Bytes after a partition handed to a text format's decode when already fetched (BGZF
#: finds where the next partition starts in them instead of reading them again).
LOOK_AHEAD = 256 * 2**10

__all__ = [
    "BLOCK_BYTES",
    "DEFAULT_TARGET_BYTES",
    "ENTRY_POINT_GROUP",
    "MAX_PARTITIONS",
    "ByteRangeFormat",
    "FormatPlugin",
    "Partition",
    "RangeSource",
    "TextFormat",
    "available",
    "choose",
    "detect",
    "get",
    "partition",
    "plan_source",
    "read_all",
    "register",
]


def choose(source: RangeSource, format: str | None = None) -> FormatPlugin:
    """The plug-in for a file: the one named (checked against the file), else detected."""
    head = source.head()
    if format is not None:
        plugin = get(format)
        if not plugin.sniff(head, source.url):
            raise FormatError(plugin.explain(head, source.url))
        return plugin
    found = detect(source.url, head)
    if found is not None:
        return found
    named = detect(source.url)  # the name promises a format the bytes do not hold
    if named is not None:
        raise FormatError(named.explain(head, source.url))
    codec = codecs.detect(head, source.url)
    text = codec.peek(head, source.url)  # a broken compressed stream is named as such
    if codec.name != "none":
        raise FormatError(
            f"{source.url}: uncompressed byte 0: no format recognises what this {codec.label}"
            f" file holds (it starts with {text[:16]!r}); known formats: {', '.join(available())}"
        )
    raise FormatError(
        f"{source.url}: byte 0: no format recognises it (it starts with {head[:16]!r});"
        f" known formats: {', '.join(available())}"
    )


def partition(
    url: str,
    n: int | None = None,
    target_bytes: int | None = None,
    format: str | None = None,
    config: Config | None = None,
    **options: Any,
) -> list[Partition]:
    """Partitions of one file (``aif://``, ``s3://`` or local), planned from small range reads.

    ``n`` partitions, or as many as make about ``target_bytes`` each (default
    64 MiB); a format may make fewer when records are larger than the spacing.
    ``options`` go to the format's ``plan`` (HDF5: ``variable=``; FASTA: ``by="residues"``,
    ``region=``; VCF and BAM: ``region=``).
    """
    if format is not None:
        get(format)  # a format that does not exist is an error even for an empty file
    return plan_source(RangeSource(url, config), n, target_bytes, format, **options)


def plan_source(
    source: RangeSource,
    n: int | None = None,
    target_bytes: int | None = None,
    format: str | None = None,
    **options: Any,
) -> list[Partition]:
    """:func:`partition` for a file already opened as a :class:`RangeSource`."""
    if format is not None:
        get(format)
    if source.size == 0:
        return []  # no records, whatever the format
    plugin = choose(source, format)
    _check_options(plugin, options)
    return plugin.plan(source, n=n, target_bytes=target_bytes, **options)


def plan_options(plugin: FormatPlugin) -> list[str]:
    """The options a format's ``plan`` takes beyond ``n`` and ``target_bytes``."""
    import inspect

    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(plugin.plan).parameters.values()
    return [
        p.name for p in parameters
        if p.kind in named and p.name not in ("source", "n", "target_bytes")
    ]  # fmt: skip


def _check_options(plugin: FormatPlugin, options: dict[str, Any]) -> None:
    """A ValueError naming the format's options when it does not take one of ``options``."""
    known = plan_options(plugin)
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = f"its options: {', '.join(known)}" if known else "it takes none"
        raise ValueError(
            f"the {plugin.name} format takes no option {', '.join(map(repr, unknown))} ({takes})"
        )


def read_all(
    partitions: Iterable[Partition],
    prefetch: int = 4,
    config: Config | None = None,
    block_bytes: int = BLOCK_BYTES,
    **options: Any,
) -> Iterator[tuple[Partition, Any]]:
    """``(partition, records)`` in order, reading ahead while the caller works.

    A run of neighbouring byte-range partitions of one file (FASTQ, BGZF) is
    fetched as a stream of blocks on a grid of ``block_bytes``, whatever the
    partition sizes: object stores serve a few large, aligned ranges much
    faster than many small ones (a server that stores the object in chunks
    reads each chunk once). Each partition is cut from the blocks and decoded
    in the caller's thread while up to ``prefetch`` blocks are in flight.
    Other formats read whole partitions ahead in threads (their decoders
    release the GIL). Memory holds about ``prefetch + 2`` blocks or partitions.
    """
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be positive, not {block_bytes}")
    steps = list(_steps(partitions, options))
    sources = _Sources(config)
    tasks = (task for step in steps for task in _tasks(step, sources, options, block_bytes))
    with ThreadPool(max(1, prefetch), thread_name_prefix="aifdata-prefetch") as pool:
        results = _ahead(pool, tasks, prefetch)
        for step in steps:
            if isinstance(step, Partition):
                yield step, next(results)
            else:
                yield from step.decoded(results, sources, options)


class _Sources:
    """One checked :class:`RangeSource` per file version for a whole ``read_all``
    (one look at the file's size and ETag, however many partitions it has)."""

    def __init__(self, config: Config | None) -> None:
        self.config = config
        self._opened: dict[tuple[str, str], RangeSource] = {}
        self._lock = threading.Lock()

    def of(self, p: Partition) -> RangeSource:
        with self._lock:
            source = self._opened.get((p.url, p.fingerprint))
            if source is None:
                source = self._opened[p.url, p.fingerprint] = open_source(p, None, self.config)
            return source


#: Bytes between two partitions' spans that a run reads rather than start another (Parquet
#: writers before pyarrow 18 put a copy of each column chunk's metadata after it).
RUN_GAP = 64 * 1024


class _Run:
    """Neighbouring byte-range partitions of one file, read as one stream of blocks."""

    def __init__(self, first: Partition, plugin: ByteRangeFormat, span: tuple[int, int]) -> None:
        self.partitions = [first]
        self.spans = [span]
        self.plugin = plugin

    def takes(self, p: Partition, span: tuple[int, int]) -> bool:
        last = self.partitions[-1]
        return (p.url, p.format, p.fingerprint) == (last.url, last.format, last.fingerprint) and (
            0 <= span[0] - self.spans[-1][1] <= RUN_GAP
        )

    def blocks(self, block_bytes: int) -> list[tuple[int, int]]:
        """``[a, b)`` pieces of the run's bytes, cut on the grid of ``block_bytes``."""
        start, end = self.spans[0][0], self.spans[-1][1]
        cuts = range((start // block_bytes + 1) * block_bytes, end, block_bytes)
        bounds = [start, *cuts, end]
        return list(itertools.pairwise(bounds))

    def decoded(
        self, blocks: Iterator[Any], sources: _Sources, options: dict[str, Any]
    ) -> Iterator[tuple[Partition, Any]]:
        """Each partition, cut from the next blocks in order and decoded."""
        plugin = self.plugin
        pieces: collections.deque[bytes] = collections.deque()
        at = self.spans[0][0]  # file offset of pieces[0][0]
        held = 0
        for p, (start, end) in zip(self.partitions, self.spans, strict=True):
            while at + held < end:
                block = next(blocks)
                pieces.append(block)
                held += len(block)
                if not block:
                    raise FormatError(f"{p.url}: byte {at + held}: the file ended early")
            own = _cut(pieces, start - at, end - at)
            extra = {}
            if isinstance(plugin, TextFormat):  # the bytes after it that are here already
                extra["after"] = _cut(pieces, end - at, min(held, end - at + LOOK_AHEAD))
            while pieces and at + len(pieces[0]) <= end:  # blocks used up
                at += len(pieces[0])
                held -= len(pieces.popleft())
            yield p, plugin.decode(p, own, sources.of(p), **extra, **options)


def _cut(pieces: Iterable[bytes], start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of the concatenated ``pieces``, copied once."""
    views, offset = [], 0
    for piece in pieces:
        lo, hi = max(start - offset, 0), min(end - offset, len(piece))
        if lo < hi:
            views.append(memoryview(piece)[lo:hi])
        offset += len(piece)
        if offset >= end:
            break
    return b"".join(views)


def _steps(partitions: Iterable[Partition], options: dict[str, Any]) -> Iterator[Partition | _Run]:
    """Partitions read whole, and runs of neighbouring byte-range partitions."""
    run: _Run | None = None
    for p in partitions:
        plugin = get(p.format)
        span = None
        if isinstance(plugin, ByteRangeFormat) and plugin.reads_whole_span(options):
            span = plugin.byte_span(p)
        if run is not None and span is not None and run.takes(p, span):
            run.partitions.append(p)
            run.spans.append(span)
            continue
        if run is not None:
            yield run
            run = None
        if span is not None and isinstance(plugin, ByteRangeFormat):
            run = _Run(p, plugin, span)
        else:
            yield p
    if run is not None:
        yield run


def _tasks(
    step: Partition | _Run, sources: _Sources, options: dict[str, Any], block_bytes: int
) -> Iterator[Callable[[], Any]]:
    if isinstance(step, Partition):
        yield functools.partial(_read_whole, step, sources, options)
        return
    for a, b in step.blocks(block_bytes):
        yield functools.partial(_read_block, step.partitions[0], sources, a, b)


def _read_whole(p: Partition, sources: _Sources, options: dict[str, Any]) -> Any:
    return p.read(source=sources.of(p), **options)


def _read_block(p: Partition, sources: _Sources, start: int, end: int) -> bytes:
    return sources.of(p).read(start, end)


def _ahead(
    pool: ThreadPoolExecutor, tasks: Iterator[Callable[[], Any]], prefetch: int
) -> Iterator[Any]:
    """The results of ``tasks`` in order, with up to ``prefetch`` running ahead."""
    pending: collections.deque[Future[Any]] = collections.deque()
    for task in tasks:
        pending.append(pool.submit(task))
        if len(pending) > prefetch:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()

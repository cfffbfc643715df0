"""Format plug-ins: split files into independent partitions on the fly, without conversion.

::

    parts = aifdata.partition("aif://genomics/run42/reads.fastq", n=256)
    records = parts[0].read()          # in any process that has the configuration

``get(name)`` and ``detect(path)`` find plug-ins; built-ins load on first use,
third-party ones come from the ``aifdata.formats`` entry-point group.
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .._errors import FormatError
from ._base import (
    DEFAULT_TARGET_BYTES,
    MAX_PARTITIONS,
    ByteRangeFormat,
    FormatPlugin,
    Partition,
    RangeSource,
    open_source,
)
from ._registry import ENTRY_POINT_GROUP, available, detect, get, register

#: ``read_all`` fetches runs of byte-range partitions in blocks on a grid of this size.
BLOCK_BYTES = 16 * 2**20

__all__ = [
    "BLOCK_BYTES",
    "DEFAULT_TARGET_BYTES",
    "ENTRY_POINT_GROUP",
    "MAX_PARTITIONS",
    "ByteRangeFormat",
    "FormatPlugin",
    "Partition",
    "RangeSource",
    "available",
    "choose",
    "detect",
    "get",
    "partition",
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
    raise FormatError(
        f"{source.url}: byte 0: no format recognises it (it starts with {head[:16]!r});"
        f" known formats: {', '.join(available())}"
    )


def partition(
    url: str,
    n: int | None = None,
    target_bytes: int | None = None,
    format: str | None = None,
    config: Any = None,
) -> list[Partition]:
    """Partitions of one file (``aif://``, ``s3://`` or local), planned from small range reads.

    ``n`` partitions, or as many as make about ``target_bytes`` each (default
    64 MiB); a format may make fewer when records are larger than the spacing.
    """
    if format is not None:
        get(format)  # a format that does not exist is an error even for an empty file
    source = RangeSource(url, config)
    if source.size == 0:
        return []  # no records, whatever the format
    return choose(source, format).plan(source, n=n, target_bytes=target_bytes)


def read_all(
    partitions: Iterable[Partition],
    prefetch: int = 4,
    config: Any = None,
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
    steps = list(_steps(partitions))
    sources = _Sources(config)
    tasks = (task for step in steps for task in _tasks(step, sources, options, block_bytes))
    with ThreadPoolExecutor(max(1, prefetch), thread_name_prefix="aifdata-prefetch") as pool:
        results = _ahead(pool, tasks, prefetch)
        for step in steps:
            if isinstance(step, Partition):
                yield step, next(results)
            else:
                yield from step.decoded(results, sources, options)


class _Sources:
    """One checked :class:`RangeSource` per file version for a whole ``read_all``
    (one look at the file's size and ETag, however many partitions it has)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._opened: dict[tuple[str, str], RangeSource] = {}
        self._lock = threading.Lock()

    def of(self, p: Partition) -> RangeSource:
        with self._lock:
            source = self._opened.get((p.url, p.fingerprint))
            if source is None:
                source = self._opened[p.url, p.fingerprint] = open_source(p, None, self.config)
            return source


class _Run:
    """Neighbouring byte-range partitions of one file, read as one stream of blocks."""

    def __init__(self, first: Partition) -> None:
        self.partitions = [first]
        self.plugin = get(first.format)

    def takes(self, p: Partition) -> bool:
        last = self.partitions[-1]
        return (p.url, p.format, p.fingerprint) == (last.url, last.format, last.fingerprint) and (
            p["start"] == last["end"]
        )

    def blocks(self, block_bytes: int) -> list[tuple[int, int]]:
        """``[a, b)`` pieces of the run's bytes, cut on the grid of ``block_bytes``."""
        start, end = self.partitions[0]["start"], self.partitions[-1]["end"]
        cuts = range((start // block_bytes + 1) * block_bytes, end, block_bytes)
        bounds = [start, *cuts, end]
        return list(itertools.pairwise(bounds))

    def decoded(
        self, blocks: Iterator[Any], sources: _Sources, options: dict[str, Any]
    ) -> Iterator[tuple[Partition, Any]]:
        """Each partition, cut from the next blocks in order and decoded."""
        plugin = self.plugin
        assert isinstance(plugin, ByteRangeFormat)
        pieces: collections.deque[bytes] = collections.deque()
        at = self.partitions[0]["start"]  # file offset of pieces[0][0]
        held = 0
        for p in self.partitions:
            while at + held < p["end"]:
                block = next(blocks)
                pieces.append(block)
                held += len(block)
                if not block:
                    raise FormatError(f"{p.url}: byte {at + held}: the file ended early")
            own = _cut(pieces, p["start"] - at, p["end"] - at)
            while pieces and at + len(pieces[0]) <= p["end"]:  # blocks used up
                at += len(pieces[0])
                held -= len(pieces.popleft())
            yield p, plugin.decode(p, own, sources.of(p), **options)


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


def _steps(partitions: Iterable[Partition]) -> Iterator[Partition | _Run]:
    """Partitions read whole, and runs of neighbouring byte-range partitions."""
    run: _Run | None = None
    for p in partitions:
        if run is not None and run.takes(p):
            run.partitions.append(p)
            continue
        if run is not None:
            yield run
            run = None
        if isinstance(get(p.format), ByteRangeFormat):
            run = _Run(p)
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

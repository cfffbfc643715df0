"""Format plug-ins: split files into independent partitions on the fly, without conversion.

::

    parts = aifdata.partition("aif://genomics/run42/reads.fastq", n=256)
    records = parts[0].read()          # in any process that has the configuration

``get(name)`` and ``detect(path)`` find plug-ins; built-ins load on first use,
third-party ones come from the ``aifdata.formats`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .._errors import FormatError
from ._base import DEFAULT_TARGET_BYTES, FormatPlugin, Partition, RangeSource
from ._registry import ENTRY_POINT_GROUP, available, detect, get, register

__all__ = [
    "DEFAULT_TARGET_BYTES",
    "ENTRY_POINT_GROUP",
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
    source = RangeSource(url, config)
    if source.size == 0:
        return []  # no records, whatever the format
    return choose(source, format).plan(source, n=n, target_bytes=target_bytes)


def read_all(
    partitions: Iterable[Partition], prefetch: int = 4, config: Any = None, **options: Any
) -> Iterator[tuple[Partition, Any]]:
    """``(partition, records)`` in order, reading up to ``prefetch`` partitions ahead.

    Storage latency (an S3 GET, a PFS seek) overlaps with the caller's work on
    the partition before; memory holds at most ``prefetch + 1`` partitions.
    """
    if prefetch < 1:
        for p in partitions:
            yield p, p.read(config=config, **options)
        return
    with ThreadPoolExecutor(prefetch, thread_name_prefix="aifdata-prefetch") as pool:
        pending: list[tuple[Partition, Future[Any]]] = []
        for p in partitions:
            pending.append((p, pool.submit(p.read, config=config, **options)))
            if len(pending) > prefetch:
                done, future = pending.pop(0)
                yield done, future.result()
        for done, future in pending:
            yield done, future.result()

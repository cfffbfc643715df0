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
from ._base import (
    DEFAULT_TARGET_BYTES,
    ByteRangeFormat,
    FormatPlugin,
    Partition,
    RangeSource,
    open_source,
)
from ._registry import ENTRY_POINT_GROUP, available, detect, get, register

#: ``read_all`` fetches neighbouring byte-range partitions in requests up to this size.
COALESCE_BYTES = 16 * 2**20

__all__ = [
    "COALESCE_BYTES",
    "DEFAULT_TARGET_BYTES",
    "ENTRY_POINT_GROUP",
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
    source = RangeSource(url, config)
    if source.size == 0:
        return []  # no records, whatever the format
    return choose(source, format).plan(source, n=n, target_bytes=target_bytes)


def read_all(
    partitions: Iterable[Partition],
    prefetch: int = 4,
    config: Any = None,
    coalesce_bytes: int = COALESCE_BYTES,
    **options: Any,
) -> Iterator[tuple[Partition, Any]]:
    """``(partition, records)`` in order, reading ahead while the caller works.

    Neighbouring byte-range partitions of one file (FASTQ, BGZF) are fetched
    together, in requests of up to ``coalesce_bytes``, then decoded one by
    one: object stores serve a few large ranges much faster than many small
    ones. Up to ``prefetch`` such requests run ahead of the caller, so storage
    latency overlaps with the caller's work; memory holds at most
    ``prefetch + 1`` of them.
    """
    groups = _coalesced(partitions, coalesce_bytes)
    if prefetch < 1:
        for group in groups:
            yield from zip(group, _read_group(group, config, options), strict=True)
        return
    with ThreadPoolExecutor(prefetch, thread_name_prefix="aifdata-prefetch") as pool:
        pending: list[tuple[list[Partition], Future[list[Any]]]] = []
        for group in groups:
            pending.append((group, pool.submit(_read_group, group, config, options)))
            if len(pending) > prefetch:
                done, future = pending.pop(0)
                yield from zip(done, future.result(), strict=True)
        for done, future in pending:
            yield from zip(done, future.result(), strict=True)


def _coalesced(partitions: Iterable[Partition], limit: int) -> Iterator[list[Partition]]:
    """Runs of partitions that one request can fetch: adjacent byte ranges of one file."""
    group: list[Partition] = []
    for p in partitions:
        if group and not _continues(group, p, limit):
            yield group
            group = []
        group.append(p)
    if group:
        yield group


def _continues(group: list[Partition], p: Partition, limit: int) -> bool:
    first, last = group[0], group[-1]
    return (
        (p.url, p.format, p.fingerprint) == (first.url, first.format, first.fingerprint)
        and isinstance(get(p.format), ByteRangeFormat)
        and p["start"] == last["end"]
        and p["end"] - first["start"] <= limit
    )


def _read_group(group: list[Partition], config: Any, options: dict[str, Any]) -> list[Any]:
    """The records of each partition of ``group`` (one request when they are adjacent ranges)."""
    if len(group) == 1:
        return [group[0].read(config=config, **options)]
    plugin = get(group[0].format)
    assert isinstance(plugin, ByteRangeFormat)
    source = open_source(group[0], None, config)
    base = group[0]["start"]
    data = source.read(base, group[-1]["end"])
    return [
        plugin.decode(p, data[p["start"] - base : p["end"] - base], source, **options)
        for p in group
    ]

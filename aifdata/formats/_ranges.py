"""Byte ranges read in few requests, and items cut into runs of about equal size.

Two things that several format plug-ins need, written once:

* :func:`fetch` reads many byte ranges of one file (an HDF5 partition's chunks,
  the arrays of an imzML partition's pixels, COPC octree nodes) in few requests.
  Ranges whose gap is at most ``gap`` bytes are merged into one span
  (:func:`coalesce`): on an object store one request more costs more than the
  bytes between two ranges. The spans are read in parallel, and
  :meth:`Fetched.get` slices each range back out: the same bytes as reading it
  alone, short where the file ends. :func:`read_ranges` does both at once.
* :func:`balanced_bounds` cuts a list of item sizes (spectra, pixels, LAZ chunks,
  octree nodes, clusters of entries) into runs of consecutive items of about equal
  total size: ``min(n, items)`` runs, none empty, every item in exactly one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Protocol

from .._threads import ThreadPool

__all__ = ["FETCH_THREADS", "Fetched", "balanced_bounds", "coalesce", "fetch", "read_ranges"]

#: Spans read at once by :func:`fetch`.
FETCH_THREADS = 8


class Readable(Protocol):
    """What :func:`fetch` reads from: a :class:`~aifdata.formats.RangeSource`, or anything
    whose ``read(start, end)`` gives bytes ``[start, end)`` clipped to the file."""

    def read(self, start: int, end: int) -> bytes: ...


def coalesce(ranges: Iterable[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """The spans to read for ``ranges``: sorted, and joined where one starts at most
    ``gap`` bytes after the end of the one before (overlapping ranges always). Empty
    ranges need no bytes and are left out."""
    if gap < 0:
        raise ValueError(f"gap must be 0 or more, not {gap}")
    spans: list[tuple[int, int]] = []
    for start, end in sorted(_checked(ranges)):
        if start == end:
            continue
        if spans and start - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _checked(ranges: Iterable[tuple[int, int]]) -> Iterable[tuple[int, int]]:
    for start, end in ranges:
        if not 0 <= start <= end:
            raise ValueError(f"a byte range [{start}, {end}) must have 0 <= start <= end")
        yield start, end


class Fetched:
    """Spans of a file, each read once; any range inside one sliced back out.

    ``spans`` holds ``(start, end, data)``: the span asked for and the bytes read,
    which are fewer than ``end - start`` where the file ended first.
    """

    __slots__ = ("_starts", "spans")

    def __init__(self, spans: Sequence[tuple[int, int, bytes]]) -> None:
        self.spans = sorted(spans, key=lambda span: span[0])
        self._starts = [start for start, _, _ in self.spans]

    def _span(self, start: int, end: int) -> tuple[int, int, bytes] | None:
        i = bisect.bisect_right(self._starts, start) - 1
        if i < 0 or self.spans[i][1] < end:
            return None
        return self.spans[i]

    def get(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a range that was fetched, as reading it alone gives
        them (short where the file ends); KeyError for a range no span covers."""
        if start == end:
            return b""
        span = self._span(start, end)
        if span is None:
            raise KeyError(f"bytes {start}..{end} were not fetched")
        return span[2][start - span[0] : end - span[0]]

    def find(self, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` when a span holds all of them, else None."""
        span = self._span(start, end)
        if span is None or end > span[0] + len(span[2]):
            return None
        return span[2][start - span[0] : end - span[0]]

    def short(self) -> tuple[int, int] | None:
        """``(where the bytes stopped, where they should have)`` of the first span that the
        file ended inside, or None when every span was read whole."""
        for start, end, data in self.spans:
            if len(data) < end - start:
                return start + len(data), end
        return None


def fetch(
    source: Readable,
    ranges: Iterable[tuple[int, int]],
    gap: int,
    threads: int = FETCH_THREADS,
) -> Fetched:
    """Read ``ranges`` of ``source`` as the spans :func:`coalesce` makes of them, up to
    ``threads`` requests at a time."""
    spans = coalesce(ranges, gap)
    if len(spans) <= 1 or threads <= 1:
        datas = [source.read(start, end) for start, end in spans]
    else:
        with ThreadPool(min(threads, len(spans))) as pool:
            datas = list(pool.map(lambda span: source.read(*span), spans))
    return Fetched([(a, b, data) for (a, b), data in zip(spans, datas, strict=True)])


def read_ranges(
    source: Readable,
    ranges: Sequence[tuple[int, int]],
    gap: int,
    threads: int = FETCH_THREADS,
) -> list[bytes]:
    """The bytes of each of ``ranges``, in their order, read as :func:`fetch` reads them."""
    fetched = fetch(source, ranges, gap, threads)
    return [fetched.get(start, end) for start, end in ranges]


def balanced_bounds(sizes: Sequence[int], n: int) -> list[int]:
    """Where runs of consecutive items of about equal total size start, plus ``len(sizes)``.

    ``min(n, len(sizes))`` runs, none empty: the bounds ``[0, b1, ..., len(sizes)]``
    increase strictly. Inner bound ``i`` is the item edge nearest to ``i / count`` of
    the total size (the earlier edge on a tie), moved just enough to leave every run an
    item. Items of size 0 are allowed; when all are 0, every item counts as 1. ``[0]``
    when there are no items.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    if any(size < 0 for size in sizes):
        raise ValueError("item sizes must be 0 or more")
    items = len(sizes)
    count = min(n, items)
    edges = [0]  # edges[j]: the size of items [0, j)
    for size in sizes:
        edges.append(edges[-1] + size)
    if items and edges[-1] == 0:
        edges = list(range(items + 1))
    total = edges[-1]
    bounds = [0]
    for i in range(1, count):
        share = total * i  # the target edge is share / count: compared times count
        j = bisect.bisect_left(edges, -(-share // count))
        if j > 0 and share - edges[j - 1] * count <= edges[j] * count - share:
            j -= 1
        bounds.append(min(max(j, bounds[-1] + 1), items - (count - i)))
    return [*bounds, items] if items else bounds

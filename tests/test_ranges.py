"""The shared range helpers of the format plug-ins: merged range reads that give the same
bytes as direct reads, and balanced runs that hold every item once, in order."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifdata.formats import RangeSource
from aifdata.formats._ranges import (
    Fetched,
    balanced_bounds,
    coalesce,
    fetch,
    read_ranges,
)


class Bytes:
    """A file in memory that counts its reads (thread-safe, as fetch reads in parallel)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def read(self, start: int, end: int) -> bytes:
        with self._lock:
            self.reads.append((start, end))
        return self.data[start:end]


ranges_strategy = st.lists(
    st.tuples(st.integers(0, 600), st.integers(0, 120)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=25,
)


@given(
    size=st.integers(0, 700),
    ranges=ranges_strategy,
    gap=st.integers(0, 1000),
    threads=st.integers(1, 4),
)
def test_merged_reads_give_what_direct_reads_give(size, ranges, gap, threads):
    data = bytes(i % 251 for i in range(size))
    source = Bytes(data)
    got = read_ranges(source, ranges, gap, threads)
    assert got == [data[a:b] for a, b in ranges]  # past the end: short, as a direct read
    spans = coalesce(ranges, gap)
    assert sorted(source.reads) == spans
    assert len(spans) <= len([r for r in ranges if r[0] < r[1]])
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start - end > gap  # spans that close would have been one


@given(ranges=ranges_strategy, gap=st.integers(0, 1000))
def test_spans_cover_every_range_and_only_what_the_gaps_allow(ranges, gap):
    spans = coalesce(ranges, gap)
    assert spans == sorted(spans)
    wanted = [r for r in ranges if r[0] < r[1]]
    for a, b in wanted:
        assert any(s <= a and b <= e for s, e in spans)
    for s, e in spans:  # every span starts and ends at a wanted range's edge
        assert any(a == s for a, _ in wanted) and any(b == e for _, b in wanted)


def test_nearby_ranges_are_one_request_and_far_ones_two():
    source = Bytes(bytes(range(200)))
    assert read_ranges(source, [(50, 60), (10, 20), (25, 30), (150, 160)], gap=4) == [
        bytes(range(50, 60)), bytes(range(10, 20)), bytes(range(25, 30)), bytes(range(150, 160))
    ]  # fmt: skip
    assert sorted(source.reads) == [(10, 20), (25, 30), (50, 60), (150, 160)]
    source.reads.clear()
    read_ranges(source, [(50, 60), (10, 20), (25, 30), (150, 160)], gap=5)  # 20 -> 25: 5
    assert sorted(source.reads) == [(10, 30), (50, 60), (150, 160)]
    source.reads.clear()
    read_ranges(source, [(50, 60), (10, 20), (25, 30), (150, 160)], gap=30)
    assert sorted(source.reads) == [(10, 60), (150, 160)]


def test_overlapping_and_repeated_ranges_are_read_once():
    source = Bytes(bytes(range(100)))
    got = read_ranges(source, [(10, 40), (20, 30), (10, 40), (35, 50)], gap=0)
    assert got == [bytes(range(10, 40)), bytes(range(20, 30)), bytes(range(10, 40)),
                   bytes(range(35, 50))]  # fmt: skip
    assert source.reads == [(10, 50)]


def test_empty_ranges_read_nothing_and_give_empty_bytes():
    source = Bytes(b"abc")
    assert read_ranges(source, [(1, 1), (2, 2)], gap=10) == [b"", b""]
    assert source.reads == []


def test_a_span_the_file_ends_inside_is_reported_short():
    fetched = fetch(Bytes(b"x" * 100), [(10, 20), (90, 130)], gap=0)
    assert fetched.short() == (100, 130)
    assert fetched.get(90, 130) == b"x" * 10  # as a direct read: clipped
    assert fetched.find(90, 130) is None  # not all of it is held
    assert fetched.find(90, 95) == b"x" * 5
    assert fetch(Bytes(b"x" * 100), [(10, 20)], gap=0).short() is None


def test_a_range_not_fetched_is_a_key_error_or_none():
    fetched = Fetched([(10, 20, b"a" * 10)])
    with pytest.raises(KeyError, match=r"bytes 15\.\.25 were not fetched"):
        fetched.get(15, 25)
    assert fetched.find(0, 5) is None and fetched.find(15, 25) is None
    assert fetched.get(12, 14) == b"aa"


def test_bad_ranges_and_gaps_are_refused():
    with pytest.raises(ValueError, match="start <= end"):
        coalesce([(5, 4)], 0)
    with pytest.raises(ValueError, match="start <= end"):
        coalesce([(-1, 4)], 0)
    with pytest.raises(ValueError, match="gap must be 0 or more"):
        coalesce([(0, 4)], -1)


def test_reads_through_a_range_source_are_counted(tmp_path):
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    source = RangeSource(str(path))
    ranges = [(0, 100), (200, 300), (9000, 9100)]
    assert read_ranges(source, ranges, gap=1000) == [data[a:b] for a, b in ranges]
    assert source.requests == 2 and source.bytes_read == 300 + 100


# -- balanced runs ------------------------------------------------------------------


@given(
    sizes=st.lists(st.integers(0, 10_000), max_size=80),
    n=st.integers(1, 100),
)
def test_runs_hold_every_item_once_in_order_none_empty(sizes, n):
    bounds = balanced_bounds(sizes, n)
    runs = list(itertools.pairwise(bounds))
    assert len(runs) == min(n, len(sizes))
    assert [i for a, b in runs for i in range(a, b)] == list(range(len(sizes)))
    assert all(a < b for a, b in runs)


@given(items=st.integers(1, 300), size=st.integers(1, 50), n=st.integers(1, 40))
def test_equal_items_make_runs_that_differ_by_one_item_at_most(items, size, n):
    lengths = [b - a for a, b in itertools.pairwise(balanced_bounds([size] * items, n))]
    assert max(lengths) - min(lengths) <= 1


@given(sizes=st.lists(st.integers(1, 1000), min_size=1, max_size=60), n=st.integers(1, 60))
def test_no_run_is_heavier_than_its_share_and_two_items(sizes, n):
    """Each inner bound is the edge nearest its target, so a run exceeds an even share
    by at most the items at its two ends (unless forced to leave later runs an item)."""
    bounds = balanced_bounds(sizes, n)
    count = len(bounds) - 1
    if count < n:  # one item per run: nothing to balance
        assert bounds == list(range(len(sizes) + 1))
        return
    share = sum(sizes) / count
    for a, b in itertools.pairwise(bounds):
        assert sum(sizes[a:b]) <= share + 2 * max(sizes) or b - a == 1


def test_balanced_bounds_examples():
    assert balanced_bounds([10] * 100, 4) == [0, 25, 50, 75, 100]
    assert balanced_bounds([1, 1, 998], 2) == [0, 2, 3]  # the edge nearest to 500
    assert balanced_bounds([1000, 1, 1], 2) == [0, 1, 3]
    assert balanced_bounds([5, 5], 2) == [0, 1, 2]
    assert balanced_bounds([0, 0, 0, 0], 2) == [0, 2, 4]  # all empty: counted as one each
    assert balanced_bounds([7], 5) == [0, 1]
    assert balanced_bounds([], 3) == [0]
    assert balanced_bounds([3, 0, 0, 3], 2) == [0, 1, 4]  # a tie: the earlier edge


def test_balanced_bounds_refuses_bad_input():
    with pytest.raises(ValueError, match="n must be at least 1"):
        balanced_bounds([1, 2], 0)
    with pytest.raises(ValueError, match="sizes must be 0 or more"):
        balanced_bounds([1, -2], 2)

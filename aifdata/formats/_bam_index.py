"""Planning a BAM with its ``.bai``: split points from the linear index, each checked, and
samtools regions parsed and cut into partitions."""

from __future__ import annotations

import bisect

from .._errors import FormatError
from .._threads import ThreadPool
from ..codecs import bgzf
from . import _bai
from ._bam_blocks import MAX_BLOCK, Blocks
from ._bam_guess import PLAN_THREADS, chain_holds
from ._bam_header import KEPT, BamHeader
from ._base import RangeSource, partition_count
from ._region import split_region


def load_index(source: RangeSource, header: BamHeader) -> tuple[_bai.Bai, str] | None:
    """The ``.bai`` beside ``source`` (``X.bam.bai``, then ``X.bai``) parsed and checked, and
    its URL; None when there is none. Kept per version of both files."""
    for suffix, cut in ((".bai", 0), (".bai", 4)):
        if cut and not source.url.lower().endswith(".bam"):
            continue
        sibling = _sibling(source, suffix, cut)
        try:
            fingerprint = sibling.fingerprint
        except FileNotFoundError:
            continue
        finally:
            source.count(sibling.requests + 1, 0)  # the look at its size and date
        slot = KEPT.slot(source)
        key = ("bai", sibling.url, fingerprint)
        found: _bai.Bai | None = slot.get(key)
        if found is None:
            data = sibling.read(0, sibling.size)
            source.count(1, len(data))
            found = _bai.parse(data, sibling.url, len(header.names), source.size, source.url)
            _bai.check_end(source, found, sibling.url)  # one read: the reads end where it says
            slot[key] = found
        return found, sibling.url
    return None


def _sibling(source: RangeSource, suffix: str, cut: int) -> RangeSource:
    """A source for the file beside ``source`` named like it, less ``cut`` characters, plus
    ``suffix`` (on the same filesystem)."""
    base_url = source.url[: len(source.url) - cut]
    base_path = source.path[: len(source.path) - cut]
    return source.beside(base_url + suffix, base_path + suffix)


def indexed_starts(
    source: RangeSource, header: BamHeader, bai: _bai.Bai, n: int | None,
    target_bytes: int | None,
) -> list[int]:  # fmt: skip
    """Record starts to split the whole file at, from the index's linear index, each checked
    (FormatError when one does not hold a record: the index is not this file's)."""
    low = header.first >> 16
    count = partition_count(source.size - low, n, target_bytes, at_most=source.size - low)
    candidates = sorted({v for ref in range(len(bai.refs)) for v in bai.starts(ref)})
    candidates = [v for v in candidates if v > header.first]
    nominal = [(low + (source.size - low) * i // count) << 16 for i in range(1, count)]
    chosen = pick(candidates, nominal)
    problem = check_starts(source, header, chosen)
    if problem is not None:
        raise FormatError(problem)
    return chosen


def pick(candidates: list[int], nominal: list[int]) -> list[int]:
    """For each nominal virtual offset, the first candidate at or after it (each once)."""
    chosen = set()
    for v in nominal:
        k = bisect.bisect_left(candidates, v)
        if k < len(candidates):
            chosen.add(candidates[k])
    return sorted(chosen)


def nominal_points(chunks: list[tuple[int, int]], count: int) -> list[int]:
    """``count - 1`` virtual offsets spread evenly (by compressed bytes) over ``chunks``."""
    sizes = [max(1, (b >> 16) - (a >> 16)) for a, b in chunks]
    total = sum(sizes)
    points, before = [], 0
    targets = [total * i // count for i in range(1, count)]
    for (a, _), size in zip(chunks, sizes, strict=True):
        while targets and targets[0] < before + size:
            points.append(((a >> 16) + targets.pop(0) - before) << 16)
        before += size
    return points


def cut_chunks(chunks: list[tuple[int, int]], cuts: list[int]) -> list[tuple[tuple[int, int], ...]]:
    """``chunks`` split at the virtual offsets ``cuts`` (each inside a chunk): one tuple of
    chunks per piece."""
    pieces: list[tuple[tuple[int, int], ...]] = []
    current: list[tuple[int, int]] = []
    pending = sorted(cuts)
    for a, b in chunks:
        while pending and a < pending[0] < b:
            current.append((a, pending[0]))
            pieces.append(tuple(current))
            current, a = [], pending.pop(0)
        current.append((a, b))
    pieces.append(tuple(current))
    return pieces


def check_starts(source: RangeSource, header: BamHeader, starts: list[int]) -> str | None:
    """What is wrong with the first of ``starts`` (virtual offsets an index gave) that is not
    a BGZF block holding a record that passes the rule; None when all hold. One read each."""
    if not starts:
        return None

    def problem(v: int) -> str | None:
        block = v >> 16
        if block >= source.size:
            return f"virtual offset {v:#x} points past the end of the file"
        raw = source.read(block, block + 2 * MAX_BLOCK)
        if bgzf.block_size_at(raw, 0) is None:
            return f"virtual offset {v:#x}: no BGZF block starts at byte {block}"
        blocks = Blocks(source, block, raw)
        try:
            at = blocks.position(v)
        except FormatError as exc:
            return str(exc).partition(": ")[2]
        if not chain_holds(blocks, at, len(header.names), grow=False):
            return (
                f"virtual offset {v:#x} (byte {block}, uncompressed byte {v & 0xFFFF}) does not"
                " hold a BAM record: the index does not match this file"
            )
        return None

    with ThreadPool(min(PLAN_THREADS, len(starts))) as pool:
        return next((found for found in pool.map(problem, starts) if found), None)


def parse_region(region: str, header: BamHeader, url: str = "") -> tuple[int, int, int]:
    """``(ref id, beg, end)``, 0-based half open, of a samtools region (``chr1``,
    ``chr1:100``, ``chr1:100-200``: 1-based, inclusive). A whole reference name wins over
    a reading with a colon (``HLA-A*01:01``). FormatError (a ValueError) naming ``url``
    when the region does not parse or names no reference of the header."""
    try:
        return _region(region, header)
    except ValueError as exc:
        raise FormatError(f"{url or 'BAM'}: {exc}") from None


def _region(region: str, header: BamHeader) -> tuple[int, int, int]:
    name, first, last = split_region(region, header.names)
    ref = header.ref_id(name)
    beg = 0 if first is None else first - 1
    end = max(header.lengths[ref], 1 << 29) if last is None else last
    if beg < 0 or end <= beg:
        raise ValueError(f"region {region!r}: an empty or negative interval")
    return ref, beg, end

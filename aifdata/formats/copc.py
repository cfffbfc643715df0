"""COPC point clouds: runs of octree nodes, each a compact piece of space, from the hierarchy.

A COPC file is a LAZ 1.4 file whose first VLR is the COPC info VLR, with one
chunk per octree node. Planning reads the header and the VLRs (:mod:`._lidar`)
and walks the hierarchy pages from the root page, only into pages whose node
can hold a point wanted (``bounds=``, a ``(xmin, ymin, xmax, ymax[, zmin,
zmax])`` box, and ``max_level=``, as laspy's ``CopcReader.query`` selects
nodes); neighbouring pages of one level are read in one request. The nodes are
put in depth-first order (a node before its children, children in octant
order) and cut into runs of about equal point counts, so a partition is a
compact piece of space: its spec has its ``extent`` (the union of its nodes'
cubes, from the COPC info's center and half-size) and, for up to 16 nodes
(while the pickled partition stays within 900 bytes), the nodes' hierarchy
entries themselves; a larger run is named by its first and last node key, and
reading it walks the hierarchy again (kept per process).

:meth:`CopcFormat.read` fetches the partition's nodes (nodes close in the
file in one request, :data:`MERGE_GAP`) and returns laspy's
``ScaleAwarePointRecord``; with ``bounds=``, only the points inside the box
(laspy's rule: the box's coordinates rounded to the file's integer grid). A
hierarchy page that is not whole entries, or an entry whose points lie outside
the file, raises :class:`~aifdata.FormatError` naming the file and the byte
offset before laszip sees it.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._config import Config
from .._errors import FormatError
from ._base import ByteRangeFormat, Partition, RangeSource, open_source, partition_count
from ._lidar import (
    MAGIC,
    VLR_HEADER,
    Header,
    decompress,
    is_copc,
    kept,
    not_las,
    read_header,
    to_frame,
    within_budget,
)
from ._ranges import balanced_bounds, read_ranges

#: A COPC hierarchy entry: key (level, x, y, z), offset, byte size, point count.
ENTRY = struct.Struct("<iiiiQii")
#: COPC nodes listed in a partition's spec at most (beyond, its first and last key).
SPEC_NODES = 16
#: COPC node ranges closer than this are read as one request (object stores: fewer, larger reads).
MERGE_GAP = 512 * 2**10

Key = tuple[int, int, int, int]


@dataclass(frozen=True)
class Info:
    """The COPC info VLR: the octree's cube and its root hierarchy page."""

    center: tuple[float, float, float]
    halfsize: float
    spacing: float
    root_offset: int
    root_size: int

    @classmethod
    def parse(cls, data: bytes) -> Info:
        cx, cy, cz, half, spacing, offset, size = struct.unpack_from("<5dQQ", data)
        return cls((cx, cy, cz), half, spacing, offset, size)

    def cube(self, key: Key) -> tuple[float, ...]:
        """``(xmin, ymin, zmin, xmax, ymax, zmax)`` of a node."""
        level, x, y, z = key
        side = 2 * self.halfsize / 2**level
        mins = [c - self.halfsize + i * side for c, i in zip(self.center, (x, y, z), strict=True)]
        return (*mins, *(m + side for m in mins))


@dataclass(frozen=True)
class Node:
    key: Key
    offset: int
    size: int
    points: int


def dfs_order(key: Key) -> tuple[int, ...]:
    """A node's octants from the root: sorting by this puts a node before its children."""
    level, x, y, z = key
    shifts = range(level - 1, -1, -1)
    return tuple(((x >> s) & 1) | ((y >> s) & 1) << 1 | ((z >> s) & 1) << 2 for s in shifts)


class Query:
    """Which nodes (and points) to keep: laspy's ``CopcReader.query(bounds, level)`` rule."""

    def __init__(
        self, bounds: Sequence[float] | None, max_level: int | None, header: Header
    ) -> None:
        self.max_level = max_level
        self.box: tuple[float, ...] | None = None
        if bounds is not None:
            if len(bounds) not in (4, 6):
                raise ValueError(
                    f"bounds must be (xmin, ymin, xmax, ymax[, zmin, zmax]), not {bounds!r}"
                )
            zmin, zmax = (bounds[4], bounds[5]) if len(bounds) == 6 else (
                header.las.mins[2], header.las.maxs[2])  # fmt: skip
            self.box = (bounds[0], bounds[1], float(zmin), bounds[2], bounds[3], float(zmax))
        if max_level is not None and max_level < 0:
            raise ValueError(f"max_level must be 0 or more, not {max_level}")

    @property
    def bounds(self) -> tuple[float, ...] | None:
        """The box as ``bounds=`` takes it, with its z range: ``(xmin, ymin, xmax, ymax,
        zmin, zmax)``."""
        b = self.box
        return None if b is None else (b[0], b[1], b[3], b[4], b[2], b[5])

    def wants(self, key: Key, info: Info) -> bool:
        if self.max_level is not None and key[0] > self.max_level:
            return False
        if self.box is None:
            return True
        cube = info.cube(key)
        return all(cube[i] <= self.box[i + 3] and cube[i + 3] >= self.box[i] for i in range(3))

    def clip(self, points: Any, header: Header) -> Any:
        """The points inside the box (on the file's integer grid, as laspy rounds it)."""
        if self.box is None:
            return points
        import numpy as np

        scales, offsets = header.las.scales, header.las.offsets
        low = np.round((np.array(self.box[:3]) - offsets) / scales).astype(np.int64)
        high = np.round((np.array(self.box[3:]) - offsets) / scales).astype(np.int64)
        keep = np.ones(len(points), bool)
        for i, name in enumerate("XYZ"):
            values = np.asarray(points[name])
            keep &= (low[i] <= values) & (values <= high[i])
        points.array = points.array[keep].copy()
        return points


def copc_info(source: RangeSource, header: Header) -> Info:
    at = header.header_size
    if header.copc is None:
        raise FormatError(f"{source.url}: byte {at}: the first VLR is not the COPC info VLR")
    info = Info.parse(header.copc)
    end = info.root_offset + info.root_size
    if end > source.size or info.root_size % ENTRY.size or not info.halfsize > 0:
        raise FormatError(
            f"{source.url}: byte {at + VLR_HEADER}: the COPC info VLR's root hierarchy page"
            f" (bytes {info.root_offset}..{end}) is not whole entries inside the file"
            f" ({source.size} bytes), or its cube (half-size {info.halfsize}) is empty"
        )
    return info


def walk(source: RangeSource, header: Header, info: Info, query: Query) -> list[Node]:
    """The nodes with points that ``query`` wants, in depth-first order: pages read level by
    level (neighbouring pages of one level in one request), each once per process and file
    version; the answer kept too."""
    slot = kept(source)
    walks: dict[Any, list[Node]] = slot.setdefault("walks", {})
    found = walks.get((query.box, query.max_level))
    if found is None:
        found = walks[query.box, query.max_level] = _walk(source, header, info, query, slot)
    return found


def _walk(
    source: RangeSource, header: Header, info: Info, query: Query, slot: dict[Any, Any]
) -> list[Node]:
    pages: dict[int, bytes] = slot.setdefault("pages", {})
    entries: dict[Key, tuple[int, int, int]] = {}
    todo, seen = [(info.root_offset, info.root_size)], set()
    while todo:
        missing = [(o, o + s) for o, s in sorted(todo) if o not in pages]
        pieces = read_ranges(source, missing, MERGE_GAP)
        pages.update((start, piece) for (start, _), piece in zip(missing, pieces, strict=True))
        found = []
        for offset, size in todo:
            seen.add(offset)
            for key, entry in _page_entries(source, header, offset, size, pages[offset]):
                entries[key] = entry
                if entry[2] == -1 and entry[0] not in seen and query.wants(key, info):
                    found.append((entry[0], entry[1]))
        todo = list(dict.fromkeys(found))
    return _reachable(entries, info, query)


def _reachable(entries: dict[Key, tuple[int, int, int]], info: Info, query: Query) -> list[Node]:
    """Nodes reached from the root through present entries (as laspy walks the octree)."""
    out, stack = [], [(0, 0, 0, 0)]
    while stack:
        key = stack.pop()
        entry = entries.get(key)
        if entry is None or not query.wants(key, info) or entry[2] < 0:
            continue
        if entry[2] > 0:
            out.append(Node(key, *entry))
        level, x, y, z = key
        stack.extend(
            (level + 1, 2 * x + (d & 1), 2 * y + (d >> 1 & 1), 2 * z + (d >> 2 & 1))
            for d in range(8)
        )
    return sorted(out, key=lambda node: dfs_order(node.key))


def _page_entries(
    source: RangeSource, header: Header, offset: int, size: int, data: bytes
) -> Iterator[tuple[Key, tuple[int, int, int]]]:
    url = source.url
    if len(data) != size or size % ENTRY.size:
        raise FormatError(
            f"{url}: byte {offset}: a COPC hierarchy page of {size} bytes ({len(data)} read) is"
            f" not whole {ENTRY.size}-byte entries"
        )
    for i in range(0, size, ENTRY.size):
        level, x, y, z, at, nbytes, points = ENTRY.unpack_from(data, i)
        key = (level, x, y, z)
        bad = not 0 <= level < 32 or not all(0 <= c < 2**level for c in key[1:])
        if points > 0:
            bad |= nbytes <= 0 or at < header.offset or at + nbytes > source.size
            bad |= points > header.points  # a node holds some of the file's points
        elif points == -1:
            bad |= nbytes % ENTRY.size != 0 or at + nbytes > source.size
        else:
            bad |= points != 0
        if bad:
            raise FormatError(
                f"{url}: byte {offset + i}: corrupt COPC hierarchy entry: key {key}, bytes"
                f" {at}..{at + nbytes}, {points} points (the file is {source.size} bytes)"
            )
        yield key, (at, nbytes, points)


class CopcFormat(ByteRangeFormat):
    """COPC (cloud-optimized point cloud): partitions are runs of octree nodes."""

    name = "copc"
    extensions = (".copc.laz",)
    description = "COPC point clouds; octree nodes grouped in space, planned from the hierarchy"

    def sniff(self, head: bytes, path: str) -> bool:
        return is_copc(head)

    def explain(self, head: bytes, url: str) -> str:
        if not head.startswith(MAGIC):
            return not_las(head, url)
        at = struct.unpack_from("<H", head, 94)[0] if len(head) >= 96 else 0
        return f"{url}: byte {at}: a LAS file, but its first VLR is not the COPC info VLR"

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        bounds: Sequence[float] | None = None,
        max_level: int | None = None,
    ) -> list[Partition]:
        """Runs of octree nodes of about equal point counts (``n`` of them, or about
        ``target_bytes`` of compressed points each); only nodes ``bounds`` and
        ``max_level`` want (see :class:`Query`)."""
        partition_count(0, n, target_bytes)
        header = read_header(source)
        info = copc_info(source, header)
        query = Query(bounds, max_level, header)
        nodes = walk(source, header, info, query)
        if not nodes:
            return []
        size = sum(node.size for node in nodes)
        count = partition_count(size, n, target_bytes, at_most=len(nodes))
        cuts = balanced_bounds([node.points for node in nodes], count)
        box = query.bounds
        out = []
        for ordinal, (first, stop) in enumerate(itertools.pairwise(cuts)):
            run = nodes[first:stop]
            cubes = [info.cube(node.key) for node in run]
            extent = (*(min(c[i] for c in cubes) for i in range(3)),
                      *(max(c[i] for c in cubes) for i in range(3, 6)))  # fmt: skip
            points = sum(node.points for node in run)
            spec: dict[str, Any] = {"points": points, "extent": extent, "bounds": box,
                                    "max_level": max_level, "layout": header.layout}  # fmt: skip
            made = None
            if len(run) <= SPEC_NODES:
                packed = b"".join(ENTRY.pack(*n.key, n.offset, n.size, n.points) for n in run)
                made = Partition.make(source.url, self.name, ordinal, source.fingerprint,
                                      **spec, nodes=packed)  # fmt: skip
            if made is None or not within_budget(made):
                made = Partition.make(source.url, self.name, ordinal, source.fingerprint,
                                      **spec, span=(run[0].key, run[-1].key))  # fmt: skip
            out.append(made)
        return out

    def nodes(self, partition: Partition, source: RangeSource | None = None) -> list[Node]:
        """The octree nodes of ``partition``, in depth-first order."""
        spec = partition.options
        if "nodes" in spec:
            packed = spec["nodes"]
            rows = (ENTRY.unpack_from(packed, i) for i in range(0, len(packed), ENTRY.size))
            return [Node(tuple(r[:4]), r[4], r[5], r[6]) for r in rows]
        source = open_source(partition, source)
        header = read_header(source)
        info = copc_info(source, header)
        everything = walk(source, header, info, Query(spec["bounds"], spec["max_level"], header))
        first, last = (dfs_order(tuple(k)) for k in spec["span"])
        return [n for n in everything if first <= dfs_order(n.key) <= last]

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        return None  # nodes lie anywhere in the file: read() fetches them

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        """The points of the partition's nodes (laspy's ScaleAwarePointRecord), inside its
        ``bounds`` when it was planned with some; in file order of the nodes."""
        source = open_source(partition, source, config)
        header = read_header(source)
        nodes = sorted(self.nodes(partition, source), key=lambda node: node.offset)
        expected = sum(node.points for node in nodes)
        if expected != partition["points"]:
            raise FormatError(
                f"{source.url}: byte {header.offset}: the COPC hierarchy gives this partition"
                f" {expected:,} points, not the {partition['points']:,} planned"
            )
        data = b"".join(read_ranges(source, [(n.offset, n.offset + n.size) for n in nodes],
                                    MERGE_GAP))  # fmt: skip
        table = [(node.points, node.size) for node in nodes]
        points = decompress(header, data, table, source.url, nodes[0].offset if nodes else 0)
        query = Query(partition["bounds"], partition["max_level"], header)
        return query.clip(points, header)

    def decode(self, partition: Partition, data: bytes, source: RangeSource, **options: Any) -> Any:
        return self.read(partition, source, **options)

    def table(self, partition: Partition) -> str:
        return f"{self.name} point format {partition['layout']}"

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        return to_frame(self.read(partition, **options))

    def records(self, partition: Partition, **options: Any) -> Iterator[Any]:
        yield from self.read(partition, **options).array

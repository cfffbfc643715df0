"""LAS, LAZ and COPC point clouds: point ranges on LAZ chunks, COPC octree nodes, from metadata.

A LAS file is a header, variable-length records (VLRs), the point records
and, in LAS 1.4, extended VLRs (EVLRs) after them. Planning reads the header
and the VLRs (one request, a second one when the VLRs run past the first
16 KiB) and never a point:

* **LAS** (uncompressed): every record has the same length, so a partition is
  a point range ``[first, first + count)`` and the byte range it occupies.
* **LAZ**: the points are compressed in chunks that decompress alone. The 8
  bytes at the start of the point data give the offset of the chunk table
  (at the end of the points, before any EVLR; or, when a streaming writer
  wrote -1 there, in the file's last 8 bytes); one more request reads it,
  two in all. A partition is a run of whole chunks: its byte range, first
  point and point count. Its spec carries the byte (and, for variable-size
  chunks, point) sizes of its chunks when they are few (up to 32, and while
  the pickled partition stays within 900 bytes: a long URL or a checksum
  fingerprint takes room too); otherwise reading it re-reads the chunk table,
  once per process and file version.
* **COPC** (a LAZ 1.4 file whose first VLR is the COPC info VLR, with one
  chunk per octree node): planning walks the hierarchy pages from the root
  page, only into pages whose node can hold a point wanted (``bounds=``, a
  ``(xmin, ymin, xmax, ymax[, zmin, zmax])`` box, and ``max_level=``, as
  laspy's ``CopcReader.query`` selects nodes). The nodes are put in
  depth-first order (a node before its children, children in octant order)
  and cut into runs of about equal point counts, so a partition is a compact
  piece of space: its spec has its ``extent`` (the union of its nodes' cubes,
  from the COPC info's center and half-size) and, for up to 16 nodes (while
  the pickled partition stays within 900 bytes), the nodes' hierarchy entries
  themselves; a larger run is named by its first and last node key, and
  reading it walks the hierarchy again (kept per process).
  With ``bounds=``, reading keeps only the points inside the box (laspy's
  rule: the box's coordinates rounded to the file's integer grid).

:meth:`LasFormat.read` returns laspy's ``ScaleAwarePointRecord`` (``.x``,
``.X``, ``.intensity``, ...; the header's scales and offsets), and
:meth:`LasFormat.to_pandas` a row per point with scaled ``x, y, z`` and every
other dimension. Anything that does not add up (not ``LASF``, a point count
the file is too short for, a chunk table past the end or not matching the
data, a hierarchy page that is not whole entries or points outside the file)
raises :class:`~aifdata.FormatError` naming the file and the byte offset
before laszip sees it: lazrs aborts the process on some inconsistent input.
"""

from __future__ import annotations

import io
import itertools
import pickle
import struct
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .._config import Config
from .._errors import FormatError
from ._base import (
    ByteRangeFormat,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)
from .root import group_clusters

MAGIC = b"LASF"
#: Bytes read first: the header and, nearly always, every VLR (projections can be a few KiB)
#: and the LAZ chunk table offset after them.
HEAD_BYTES = 16 * 2**10
#: The public header block is at least this long (LAS 1.0-1.2); 1.4's is 375 bytes.
MIN_HEADER = 227
#: A VLR's header: reserved u16, user id 16 bytes, record id u16, length u16, description.
VLR_HEADER = 54
LASZIP_USER, LASZIP_RECORD = b"laszip encoded", 22204
COPC_USER, COPC_INFO_RECORD, COPC_INFO_BYTES = b"copc", 1, 160
#: A COPC hierarchy entry: key (level, x, y, z), offset, byte size, point count.
ENTRY = struct.Struct("<iiiiQii")
#: Chunk sizes carried in a LAZ partition's spec at most (beyond, the chunk table is re-read).
SPEC_CHUNKS = 32
#: COPC nodes listed in a partition's spec at most (beyond, its first and last key).
SPEC_NODES = 16
#: A partition keeps its chunk sizes or node entries only while it pickles to at most this
#: many bytes (a long URL and a checksum fingerprint take room too; the limit is 1 KB).
SPEC_BUDGET = 900
#: COPC node ranges closer than this are read as one request (object stores: fewer, larger reads).
MERGE_GAP = 512 * 2**10
#: Each file version's header, chunk table and hierarchy pages, kept per process.
_KEPT = KeptMetadata()

Key = tuple[int, int, int, int]


def _laspy() -> Any:
    try:
        import laspy
    except ImportError as exc:  # pragma: no cover - the lidar extra is missing
        raise ImportError(f"{exc.name or 'laspy'}: pip install 'aifdata[lidar]'") from exc
    return laspy


def _lazrs() -> Any:
    try:
        import lazrs
    except ImportError as exc:  # pragma: no cover
        raise ImportError("lazrs (LAZ decompression): pip install 'aifdata[lidar]'") from exc
    return lazrs


# -- the header -------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """What partitions need of a LAS header: where the points are and how they decode."""

    las: Any  # laspy.LasHeader (its VLRs too)
    offset: int  # offset to point data
    record_length: int
    points: int
    compressed: bool
    laszip: bytes | None  # the laszip VLR's record data
    copc: bytes | None  # the COPC info VLR's record data, when it is the first VLR
    evlr_start: int  # 0: no EVLRs
    header_size: int
    chunk_size: int = 0  # LAZ: points per chunk (laszip's VLR), 0 when chunks vary

    @property
    def layout(self) -> str:
        return f"{self.las.point_format.id}:{self.record_length}"


def within_budget(partition: Partition) -> bool:
    """Whether ``partition`` pickles to at most :data:`SPEC_BUDGET` bytes."""
    return len(pickle.dumps(partition)) <= SPEC_BUDGET


def not_las(head: bytes, url: str) -> str:
    return f"{url}: byte 0: not a LAS/LAZ file: expected the magic 'LASF', found {head[:16]!r}"


def read_header(source: RangeSource) -> Header:
    """The header and VLRs of ``source``, parsed once per process and file version."""
    slot = _KEPT.slot(source)
    found: Header | None = slot.get("header")
    if found is None:
        head = source.head(HEAD_BYTES)
        if not head.startswith(MAGIC):
            raise FormatError(not_las(head, source.url))
        found = slot["header"] = parse_header(head, source)
    return found


def parse_header(head: bytes, source: RangeSource) -> Header:
    url = source.url
    if len(head) < MIN_HEADER:
        raise FormatError(f"{url}: byte {len(head)}: the file ends inside its LAS header")
    (header_size,) = struct.unpack_from("<H", head, 94)
    offset, vlrs = struct.unpack_from("<II", head, 96)
    if header_size < MIN_HEADER or offset < header_size:
        raise FormatError(
            f"{url}: byte 94: a header size of {header_size} bytes and points at byte {offset}"
            " do not make a LAS header"
        )
    if vlrs * VLR_HEADER > offset - header_size:  # laspy would loop over them one by one
        raise FormatError(
            f"{url}: byte 100: {vlrs:,} VLRs cannot fit between the header (byte {header_size})"
            f" and the points (byte {offset})"
        )
    if offset > source.size:
        raise FormatError(
            f"{url}: byte {source.size}: the file ends before its points start (byte {offset};"
            " truncated?)"
        )
    if len(head) < offset:  # VLRs past the first read: one more request
        head = source.read(0, offset)
    laspy = _laspy()
    try:
        las = laspy.LasHeader.read_from(io.BytesIO(head[:offset]))
    except Exception as exc:
        raise FormatError(
            f"{url}: bytes 0..{offset}: cannot read the LAS header and its {vlrs} VLR(s):"
            f" {type(exc).__name__}: {exc}"
        ) from None
    (record_length,) = struct.unpack_from("<H", head, 105)
    try:
        itemsize = las.point_format.dtype().itemsize
    except Exception as exc:  # an extra bytes VLR laspy cannot make a type of
        raise FormatError(
            f"{url}: bytes 0..{offset}: the point format the header and VLRs describe is"
            f" broken: {type(exc).__name__}: {exc}"
        ) from None
    if itemsize != record_length:
        raise FormatError(
            f"{url}: byte 105: point records of {record_length} bytes, but their format"
            f" ({las.point_format.id}, extra bytes included) makes {itemsize}"
        )
    evlr_start = int(getattr(las, "start_of_first_evlr", 0) or 0)
    laszip = _vlr_data(head, header_size, offset, LASZIP_USER, LASZIP_RECORD)
    compressed = bool(head[104] & 0x80) or bool(las.are_points_compressed)
    return Header(
        las=las,
        offset=offset,
        record_length=record_length,
        points=int(las.point_count),
        compressed=compressed,
        laszip=laszip,
        copc=_first_copc_vlr(head, header_size, offset),
        evlr_start=evlr_start if getattr(las, "number_of_evlrs", 0) else 0,
        header_size=header_size,
        chunk_size=_chunk_size(laszip, record_length, url) if compressed and laszip else 0,
    )


def _chunk_size(laszip: bytes, record_length: int, url: str) -> int:
    """Points per LAZ chunk (0: variable), after checking that lazrs takes the laszip VLR
    and that its items make the header's record length (lazrs panics on a mismatch)."""
    try:
        vlr = _lazrs().LazVlr(laszip)
        size, items = int(vlr.chunk_size()), int(vlr.item_size())
        varies = bool(vlr.uses_variable_size_chunks())
    except Exception as exc:
        raise FormatError(f"{url}: the laszip VLR cannot be read: {exc}") from None
    if items != record_length or (size == 0 and not varies):
        raise FormatError(
            f"{url}: byte 105: the laszip VLR describes {items}-byte points in chunks of"
            f" {size}, the header {record_length}-byte points"
        )
    return 0 if varies else size


def _vlrs(head: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, bytes]]:
    """``(user id, record id, record data)`` of the VLRs in ``head[start:end]``."""
    at = start
    while at + VLR_HEADER <= end:
        user = head[at + 2 : at + 18].rstrip(b"\0")
        record, length = struct.unpack_from("<HH", head, at + 18)
        yield user, record, head[at + VLR_HEADER : at + VLR_HEADER + length]
        at += VLR_HEADER + length


def _vlr_data(head: bytes, start: int, end: int, user: bytes, record: int) -> bytes | None:
    for u, r, data in _vlrs(head, start, end):
        if (u, r) == (user, record):
            return data
    return None


def _first_copc_vlr(head: bytes, start: int, end: int) -> bytes | None:
    first = next(_vlrs(head, start, end), None)
    if first is None or first[:2] != (COPC_USER, COPC_INFO_RECORD):
        return None
    return first[2] if len(first[2]) >= COPC_INFO_BYTES else None


def is_copc(head: bytes) -> bool:
    """Whether ``head`` starts a LAS file whose first VLR is the COPC info VLR."""
    if not head.startswith(MAGIC) or len(head) < 96:
        return False
    (size,) = struct.unpack_from("<H", head, 94)
    vlr = head[size : size + VLR_HEADER]
    return (
        len(vlr) == VLR_HEADER
        and vlr[2:18].rstrip(b"\0") == COPC_USER
        and (struct.unpack_from("<H", vlr, 18)[0] == COPC_INFO_RECORD)
    )


# -- decoding -----------------------------------------------------------------------


def points_of(header: Header, raw: Any, count: int) -> Any:
    """laspy's ScaleAwarePointRecord of ``count`` packed records in ``raw``."""
    laspy = _laspy()
    packed = laspy.PackedPointRecord.from_buffer(raw, header.las.point_format, count)
    return laspy.ScaleAwarePointRecord(
        packed.array, packed.point_format, header.las.scales, header.las.offsets
    )


def decompress(
    header: Header, data: bytes, table: Sequence[tuple[int, int]], url: str, at: int
) -> Any:
    """The points of whole LAZ chunks ``data`` (``table``: points and bytes of each)."""
    import numpy as np

    lazrs = _lazrs()
    count = sum(points for points, _ in table)
    size = sum(nbytes for _, nbytes in table)
    if len(data) != size:  # lazrs panics on a short buffer: check first
        raise FormatError(
            f"{url}: byte {at + len(data)}: {len(data)} bytes of LAZ chunks where their table"
            f" says {size} (the file ended early?)"
        )
    out = np.zeros(count * header.record_length, np.uint8)
    if header.laszip is None:
        raise FormatError(f"{url}: the points are compressed but no laszip VLR says how")
    try:
        lazrs.decompress_points_with_chunk_table(data, header.laszip, out, list(table), None)
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise FormatError(
            f"{url}: bytes {at}..{at + size}: cannot decompress {len(table)} LAZ chunk(s):"
            f" {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return points_of(header, out, count)


def to_frame(points: Any, start: int = 0) -> Any:
    """A DataFrame: a row per point, scaled ``x, y, z`` then every other dimension."""
    import numpy as np
    import pandas as pd

    columns: dict[str, Any] = {
        "x": np.asarray(points.x),
        "y": np.asarray(points.y),
        "z": np.asarray(points.z),
    }
    for name in points.point_format.dimension_names:
        if name in ("X", "Y", "Z"):
            continue
        values = np.asarray(points[name])
        if values.ndim == 1:
            columns[name] = values
        else:
            columns.update({f"{name}_{i}": values[:, i] for i in range(values.shape[1])})
    index = pd.RangeIndex(start, start + len(points))
    return pd.DataFrame(columns, index=index)


# -- LAS and LAZ --------------------------------------------------------------------


class LasFormat(ByteRangeFormat):
    """LAS and LAZ point clouds: point ranges (on whole chunks for LAZ), read with laspy."""

    name = "las"
    extensions = (".las", ".laz")
    description = "LAS / LAZ point clouds; point ranges on LAZ chunks, planned from the header"

    def sniff(self, head: bytes, path: str) -> bool:
        return head.startswith(MAGIC)

    def explain(self, head: bytes, url: str) -> str:
        return not_las(head, url)

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        header = read_header(source)
        if header.compressed:
            return self._plan_laz(source, header, n, target_bytes)
        partition_count(0, n, target_bytes)
        total = header.points
        end = header.offset + total * header.record_length
        if end > source.size:
            raise FormatError(
                f"{source.url}: byte {source.size}: the file ends there, but its header says"
                f" {total:,} points of {header.record_length} bytes run to byte {end}"
                " (truncated?)"
            )
        if total == 0:
            return []
        count = partition_count(end - header.offset, n, target_bytes, at_most=total)
        bounds = [total * i // count for i in range(count + 1)]
        return [
            self._make(source, header, i, a, b - a, header.offset + a * header.record_length,
                       header.offset + b * header.record_length)
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
        ]  # fmt: skip

    def _plan_laz(
        self, source: RangeSource, header: Header, n: int | None, target_bytes: int | None
    ) -> list[Partition]:
        partition_count(0, n, target_bytes)
        chunks = chunk_table(source, header)
        if not chunks:
            return []
        starts = [0, *itertools.accumulate(points for points, _ in chunks)]
        compressed = sum(nbytes for _, nbytes in chunks)
        count = partition_count(compressed, n, target_bytes, at_most=len(chunks))
        cuts = group_clusters(starts, count)
        index = {point: i for i, point in enumerate(starts)}
        byte_starts = [header.offset + 8, *(header.offset + 8 + b for b in
                       itertools.accumulate(nbytes for _, nbytes in chunks))]  # fmt: skip
        out = []
        for ordinal, (a, b) in enumerate(itertools.pairwise(cuts)):
            c0, c1 = index[a], index[b]
            run = chunks[c0:c1]
            place = (source, header, ordinal, a, b - a, byte_starts[c0], byte_starts[c1])
            made = None
            if len(run) <= SPEC_CHUNKS:
                made = self._make(*place, chunks=(c0, c1),
                                  sizes=_pack_sizes(run, variable(header)))  # fmt: skip
            if made is None or not within_budget(made):
                made = self._make(*place, chunks=(c0, c1))  # the chunk table is read again
            out.append(made)
        return out

    def _make(
        self, source: RangeSource, header: Header, ordinal: int, first: int, count: int,
        start: int, end: int, **spec: Any,
    ) -> Partition:  # fmt: skip
        return Partition.make(
            source.url, self.name, ordinal, source.fingerprint, start=start, end=end,
            first=first, count=count, head=header.offset, layout=header.layout, **spec,
        )  # fmt: skip

    def decode(self, partition: Partition, data: bytes, source: RangeSource, **options: Any) -> Any:
        """The points of ``partition`` (laspy's ScaleAwarePointRecord) from its bytes."""
        header = read_header(source)
        start, count = partition["start"], partition["count"]
        if "chunks" not in partition.options:
            if len(data) != count * header.record_length:
                raise FormatError(
                    f"{source.url}: byte {start + len(data)}: the file ends inside point"
                    f" {partition['first'] + len(data) // max(header.record_length, 1):,}"
                )
            return points_of(header, data, count)
        table = self._run_table(partition, source, header)
        return decompress(header, data, table, source.url, start)

    def _run_table(
        self, partition: Partition, source: RangeSource, header: Header
    ) -> list[tuple[int, int]]:
        """Points and bytes of each chunk of a LAZ partition: from its spec, or the table."""
        c0, c1 = partition["chunks"]
        packed = partition.options.get("sizes")
        if packed is None:
            return chunk_table(source, header)[c0:c1]
        sizes = _unpack_sizes(packed, variable(header))
        if variable(header):
            return sizes
        points = [header_chunk_size(header)] * len(sizes)
        points[-1] = partition["count"] - header_chunk_size(header) * (len(sizes) - 1)
        return [(p, b) for p, (_, b) in zip(points, sizes, strict=True)]

    def table(self, partition: Partition) -> str:
        return f"{self.name} point format {partition['layout']}"

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        return to_frame(self.read(partition, **options), partition["first"])

    def records(self, partition: Partition, **options: Any) -> Iterator[Any]:
        """The points one by one (numpy records of the raw, unscaled fields)."""
        yield from self.read(partition, **options).array


def header_chunk_size(header: Header) -> int:
    return header.chunk_size


def variable(header: Header) -> bool:
    return header.compressed and header.chunk_size == 0


def _pack_sizes(run: Sequence[tuple[int, int]], with_points: bool) -> bytes:
    if with_points:
        return struct.pack(f"<{2 * len(run)}Q", *itertools.chain.from_iterable(run))
    return struct.pack(f"<{len(run)}Q", *(nbytes for _, nbytes in run))


def _unpack_sizes(packed: bytes, with_points: bool) -> list[tuple[int, int]]:
    values = struct.unpack(f"<{len(packed) // 8}Q", packed)
    if with_points:
        return list(zip(values[::2], values[1::2], strict=True))
    return [(0, nbytes) for nbytes in values]


def chunk_table(source: RangeSource, header: Header) -> list[tuple[int, int]]:
    """``(points, bytes)`` of each LAZ chunk, checked against the header and the file."""
    slot = _KEPT.slot(source)
    found: list[tuple[int, int]] | None = slot.get("chunks")
    if found is None:
        found = slot["chunks"] = _read_chunk_table(source, header)
    return found


def _read_chunk_table(source: RangeSource, header: Header) -> list[tuple[int, int]]:
    url, data_start = source.url, header.offset + 8
    if header.laszip is None:
        raise FormatError(
            f"{url}: byte {header.offset}: the points are compressed (LAZ) but no laszip VLR"
            " describes them"
        )
    if header.points == 0 and source.size <= data_start:
        return []
    head = source.head(HEAD_BYTES)  # kept by the source: the pointer is often in it
    pointer = head[header.offset : data_start]
    if len(pointer) < 8:
        pointer = source.read(header.offset, data_start)
    if len(pointer) < 8:
        raise FormatError(
            f"{url}: byte {header.offset + len(pointer)}: the file ends before the LAZ chunk"
            " table offset (truncated?)"
        )
    (table_at,) = struct.unpack("<q", pointer)
    where = header.offset
    if table_at == -1:  # a streaming writer: the offset is in the last 8 bytes of the file
        where = source.size - 8
        (table_at,) = struct.unpack("<q", source.read(where, source.size).rjust(8, b"\0"))
    end = header.evlr_start if data_start <= header.evlr_start <= source.size else source.size
    if not data_start <= table_at <= end - 8:
        raise FormatError(
            f"{url}: byte {where}: the LAZ chunk table offset {table_at} is outside the point"
            f" data (bytes {data_start}..{end}; the file is {source.size} bytes: truncated?)"
        )
    raw = source.read(table_at, end)
    version, count = struct.unpack_from("<II", raw)
    if version != 0 or count > header.points + 1 or count > table_at - data_start + 1:
        raise FormatError(
            f"{url}: byte {table_at}: not a LAZ chunk table (version {version}, {count:,}"
            f" chunks for {header.points:,} points in {table_at - data_start:,} bytes)"
        )
    vlr = _lazrs().LazVlr(header.laszip)  # checked by parse_header
    try:
        entries = _lazrs().read_chunk_table_only(io.BytesIO(raw), vlr)
    except Exception as exc:
        raise FormatError(
            f"{url}: byte {table_at}: cannot read the LAZ chunk table: {exc}"
        ) from None
    return _checked_chunks(url, header, entries, table_at, vlr)


def _checked_chunks(
    url: str, header: Header, entries: list[tuple[int, int]], table_at: int, vlr: Any
) -> list[tuple[int, int]]:
    """The chunk table with each chunk's point count, if it adds up to the header's."""
    variable_size = bool(vlr.uses_variable_size_chunks())
    chunks = [(int(p), int(b)) for p, b in entries if b or p]  # writers may end with (0, 0)
    size = int(vlr.chunk_size())
    if not variable_size:  # every chunk holds chunk_size points, the last one the rest
        expected = -(-header.points // size) if size else -1
        counts = [size] * len(chunks)
        if chunks:
            counts[-1] = header.points - size * (len(chunks) - 1)
        if len(chunks) != expected:
            counts = [0] * len(chunks)  # refused below
        chunks = [(c, b) for c, (_, b) in zip(counts, chunks, strict=True)]
    data = sum(b for _, b in chunks)
    points = sum(p for p, _ in chunks)
    if (
        points != header.points
        or any(p <= 0 or b <= 0 for p, b in chunks)
        or header.offset + 8 + data != table_at
    ):
        raise FormatError(
            f"{url}: byte {table_at}: the LAZ chunk table ({len(chunks)} chunks, {data:,}"
            f" bytes) does not match the header ({header.points:,} points"
            f"{'' if variable_size else f' in chunks of {size:,}'}) and the point data"
            f" (bytes {header.offset + 8}..{table_at})"
        )
    return chunks


# -- COPC -------------------------------------------------------------------------


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
    slot = _KEPT.slot(source)
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
        missing = [Node((0, 0, 0, 0), o, s, 0) for o, s in sorted(todo) if o not in pages]
        pieces = _fetch(source, missing)
        pages.update((node.offset, piece) for node, piece in zip(missing, pieces, strict=True))
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
        starts = [0, *itertools.accumulate(node.points for node in nodes)]
        size = sum(node.size for node in nodes)
        count = partition_count(size, n, target_bytes, at_most=len(nodes))
        cuts = group_clusters(starts, count)
        index = {point: i for i, point in enumerate(starts)}
        box = query.bounds
        out = []
        for ordinal, (a, b) in enumerate(itertools.pairwise(cuts)):
            run = nodes[index[a] : index[b]]
            cubes = [info.cube(node.key) for node in run]
            extent = (*(min(c[i] for c in cubes) for i in range(3)),
                      *(max(c[i] for c in cubes) for i in range(3, 6)))  # fmt: skip
            spec: dict[str, Any] = {"points": b - a, "extent": extent, "bounds": box,
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
        data = b"".join(_fetch(source, nodes))
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


def _fetch(source: RangeSource, nodes: Sequence[Node]) -> list[bytes]:
    """Each node's bytes, in order; nodes within ``MERGE_GAP`` of each other in one request."""
    groups: list[list[Node]] = []
    for node in nodes:
        if groups and node.offset - (groups[-1][-1].offset + groups[-1][-1].size) <= MERGE_GAP:
            groups[-1].append(node)
        else:
            groups.append([node])

    def get(group: list[Node]) -> list[bytes]:
        start = group[0].offset
        data = source.read(start, group[-1].offset + group[-1].size)
        return [data[n.offset - start : n.offset - start + n.size] for n in group]

    if len(groups) <= 1:
        return [piece for group in groups for piece in get(group)]
    with ThreadPoolExecutor(min(8, len(groups))) as pool:
        return [piece for pieces in pool.map(get, groups) for piece in pieces]

"""LAS and LAZ point clouds: point ranges, on whole chunks for LAZ, planned from metadata.

Planning reads the header and the VLRs (:mod:`._lidar`: one request, a second
one when the VLRs run past the first 16 KiB) and never a point:

* **LAS** (uncompressed): every record has the same length, so a partition is
  a point range ``[first, first + count)`` and the byte range it occupies.
* **LAZ**: the points are compressed in chunks that decompress alone. The 8
  bytes at the start of the point data give the offset of the chunk table
  (at the end of the points, before any EVLR; or, when a streaming writer
  wrote -1 there, in the file's last 8 bytes); one more request reads it,
  two in all. A partition is a run of whole chunks (runs of about equal point
  counts): its byte range, first point and point count. Its spec carries the
  byte (and, for variable-size chunks, point) sizes of its chunks when they
  are few (up to 32, and while the pickled partition stays within 900 bytes:
  a long URL or a checksum fingerprint takes room too); otherwise reading it
  re-reads the chunk table, once per process and file version.

COPC files (LAZ with an octree) are planned by :mod:`.copc`.
:meth:`LasFormat.read` returns laspy's ``ScaleAwarePointRecord`` (``.x``,
``.X``, ``.intensity``, ...; the header's scales and offsets), and
:meth:`LasFormat.to_pandas` a row per point with scaled ``x, y, z`` and every
other dimension. Anything that does not add up (not ``LASF``, a point count
the file is too short for, a chunk table past the end or not matching the
data) raises :class:`~aifdata.FormatError` naming the file and the byte offset
before laszip sees it: lazrs aborts the process on some inconsistent input.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from .._errors import FormatError
from ._base import ByteRangeFormat, Partition, RangeSource, partition_count
from ._lidar import (
    HEAD_BYTES,
    MAGIC,
    Header,
    decompress,
    kept,
    lazrs_module,
    not_las,
    points_of,
    read_header,
    to_frame,
    within_budget,
)
from ._ranges import balanced_bounds

#: Chunk sizes carried in a LAZ partition's spec at most (beyond, the chunk table is re-read).
SPEC_CHUNKS = 32


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
        bounds = balanced_bounds([points for points, _ in chunks], count)
        byte_starts = [header.offset + 8, *(header.offset + 8 + b for b in
                       itertools.accumulate(nbytes for _, nbytes in chunks))]  # fmt: skip
        out = []
        for ordinal, (c0, c1) in enumerate(itertools.pairwise(bounds)):
            run = chunks[c0:c1]
            a, b = starts[c0], starts[c1]
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
    slot = kept(source)
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
    vlr = lazrs_module().LazVlr(header.laszip)  # checked by parse_header
    try:
        entries = lazrs_module().read_chunk_table_only(io.BytesIO(raw), vlr)
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

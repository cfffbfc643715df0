"""Parquet: partitions are runs of whole row groups, planned from the footer alone.

A Parquet file ends with its metadata (the *footer*), its length in 4 bytes
and the magic ``PAR1``. Planning reads the last 64 KiB (one request; a second
when the footer is larger) and the first 4 bytes (kept from sniffing), checks
the magic at both ends, and parses the footer with ``pyarrow.parquet``. A row
group is never split: ``n=`` groups neighbouring row groups into about ``n``
partitions of similar compressed size, ``target_bytes`` merges neighbours until
the next would pass it (one row group larger than that is a partition alone).
A file of no row groups is one partition holding no rows (and the schema).

A partition's spec holds its row groups ``[first, stop)``, their row count and
where the footer starts: reading fetches the footer (one request, once per
file version and process, see :class:`~aifdata.formats._base.KeptMetadata`)
and then only the column chunks of its row groups, and of the ``columns=``
asked for (``pyarrow.parquet`` coalesces neighbouring chunks into one
request). It gives an Arrow table; the union of all partitions is
``pyarrow.parquet.read_table`` of the file. A wrong magic, a footer length
past the start of the file, a footer that does not parse or a row group that
does not decode raises FormatError naming the file and the byte offset.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Mapping
from typing import Any

from .._errors import FormatError
from ..codecs import SeekableSource
from ._base import (
    DEFAULT_TARGET_BYTES,
    ByteRangeFormat,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
)
from ._ranges import balanced_bounds

MAGIC = b"PAR1"
#: Bytes read from the end of the file at first (most footers fit: one request).
TAIL_BYTES = 64 * 2**10
_KEPT = KeptMetadata()

__all__ = ["MAGIC", "ParquetFormat", "group_row_groups"]


class ParquetFormat(ByteRangeFormat):
    """Apache Parquet files, split on row groups.

    A partition's spec also holds the bytes its row groups' column chunks span
    (``span``): :func:`~aifdata.formats.read_all` fetches neighbouring partitions'
    spans as one stream of large blocks and decodes each from its bytes
    (:meth:`decode`), instead of one request per partition; reading one partition,
    or asking for some ``columns``, reads only the column chunks it needs."""

    name = "parquet"
    extensions = (".parquet", ".parq")
    description = "Parquet row groups; neighbours merged to n or target_bytes, columns chosen"

    def sniff(self, head: bytes, path: str) -> bool:
        return head[:4] == MAGIC

    def explain(self, head: bytes, url: str) -> str:
        return (
            f"{url}: byte 0: this is not Parquet data (expected the magic {MAGIC!r}, found"
            f" {head[:4]!r})"
        )

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        """Partitions of whole row groups, from the footer (1-2 range reads at the end)."""
        if n is not None and n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        if target_bytes is not None and target_bytes < 1:
            raise ValueError(f"target_bytes must be positive, not {target_bytes}")
        metadata, footer = read_footer(source)
        sizes = [_compressed(metadata.row_group(i)) for i in range(metadata.num_row_groups)]
        groups = group_row_groups(sizes, n, target_bytes)
        rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        spans = [_group_span(metadata, i) for i in range(metadata.num_row_groups)]
        fingerprint = source.fingerprint
        return [
            Partition.make(
                source.url,
                self.name,
                i,
                fingerprint,
                first=a,
                stop=b,
                rows=sum(rows[a:b]),
                footer=footer,
                **_span_spec(spans[a:b], footer),
            )
            for i, (a, b) in enumerate(groups)
        ]

    def read(
        self, partition: Partition, source: RangeSource | None = None, config: Any = None,
        columns: list[str] | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        """The partition's rows as a ``pyarrow.Table`` (only ``columns`` when given)."""
        source = open_source(partition, source, config)
        return self._groups(partition, RangeFile(source), source, columns, **options)

    def byte_span(self, partition: Partition) -> tuple[int, int] | None:
        """The bytes of the partition's column chunks (None for partitions planned before
        plans recorded them: those are read by themselves)."""
        span = partition.options.get("span")
        return None if span is None else (span[0], span[1])

    def reads_whole_span(self, options: Mapping[str, Any]) -> bool:
        return not options.get("columns")  # some columns: only their chunks are read

    def decode(
        self, partition: Partition, data: bytes, source: RangeSource,
        columns: list[str] | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        """The partition's rows from ``data``, the bytes of its :meth:`byte_span`."""
        start, _ = partition["span"]
        return self._groups(partition, HeldFile(source, start, data), source, columns, **options)

    def _groups(
        self, partition: Partition, file: RangeFile, source: RangeSource,
        columns: list[str] | None, **options: Any,
    ) -> Any:  # fmt: skip
        import pyarrow as pa
        import pyarrow.parquet as pq

        if options:
            raise TypeError(f"unexpected options for parquet: {', '.join(sorted(options))}")
        metadata = _metadata(source, partition["footer"])
        first, stop = partition["first"], partition["stop"]
        handle = pq.ParquetFile(file, metadata=metadata, pre_buffer=True)
        try:
            return handle.read_row_groups(range(first, stop), columns=columns, use_threads=False)
        except (OSError, pa.ArrowException) as exc:
            where = _group_start(metadata, first) if first < stop else partition["footer"]
            raise FormatError(
                f"{source.url}: byte {where}: row groups {first}..{stop - 1} do not decode ({exc})"
            ) from None

    def table(self, partition: Partition) -> str:
        return f"parquet:{partition.url}"

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """The partition as a pandas DataFrame (pandas' own index restored when stored)."""
        return self.read(partition, **options).to_pandas()

    def to_arrow(self, partition: Partition, **options: Any) -> Any:
        """The partition as a ``pyarrow.Table`` (what :meth:`read` returns)."""
        return self.read(partition, **options)

    def records(self, partition: Partition, **options: Any) -> Any:
        """The rows as dicts, column name -> value."""
        yield from self.read(partition, **options).to_pylist()


def read_footer(source: RangeSource) -> tuple[Any, int]:
    """The file's ``FileMetaData`` and the offset where its footer starts, from 1-2 reads
    at the end (and the first 4 bytes, usually kept from sniffing)."""
    url, size = source.url, source.size
    if size < 12:
        raise FormatError(f"{url}: byte 0: {size} bytes is too short for Parquet (at least 12)")
    tail = source.read(max(0, size - TAIL_BYTES), size)
    head = tail[:4] if len(tail) == size else source.head(4)
    if head[:4] != MAGIC:
        raise FormatError(
            f"{url}: byte 0: this is not Parquet data (expected {MAGIC!r}, found {head[:4]!r})"
        )
    if tail[-4:] != MAGIC:
        what = "an encrypted footer (PARE)" if tail[-4:] == b"PARE" else f"{tail[-4:]!r}"
        raise FormatError(
            f"{url}: byte {size - 4}: expected the closing magic {MAGIC!r}, found {what}"
            " (truncated or not Parquet?)"
        )
    (length,) = struct.unpack("<I", tail[-8:-4])
    start = size - 8 - length
    if start < 4:
        raise FormatError(
            f"{url}: byte {size - 8}: the footer length says {length} bytes, more than the"
            f" {size - 12} between the magics (truncated or corrupt)"
        )
    if length + 8 > len(tail):
        tail = source.read(start, size - len(tail)) + tail
    footer = tail[len(tail) - 8 - length :]
    return _parse_footer(footer, url, start), start


def _parse_footer(footer: bytes, url: str, start: int) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(io.BytesIO(MAGIC + footer))
    except (OSError, pa.ArrowException) as exc:
        raise FormatError(
            f"{url}: byte {start}: the Parquet footer does not parse ({exc})"
        ) from None


def _metadata(source: RangeSource, footer: int) -> Any:
    """The footer of a partition's file: one read of ``[footer, size)``, kept per version."""
    slot = _KEPT.slot(source)
    metadata = slot.get("metadata")
    if metadata is None:
        data = source.read(footer, source.size)
        if data[-4:] != MAGIC or len(data) < 8:
            raise FormatError(f"{source.url}: byte {source.size - 4}: expected {MAGIC!r}")
        metadata = slot["metadata"] = _parse_footer(data, source.url, footer)
    return metadata


def _group_span(metadata: Any, index: int) -> tuple[int, int]:
    """The bytes ``[start, end)`` the column chunks of row group ``index`` lie in."""
    group = metadata.row_group(index)
    ends = []
    for i in range(group.num_columns):
        column = group.column(i)
        ends.append(_chunk_start(column) + column.total_compressed_size)
    return _group_start(metadata, index), max(ends, default=4)


def _span_spec(spans: list[tuple[int, int]], footer: int) -> dict[str, Any]:
    """``span``: the bytes the row groups of a partition lie in, when they are sound (in
    the file, before the footer); else nothing, and the partition is read by itself."""
    if not spans:
        return {}
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    return {"span": (start, end)} if 4 <= start < end <= footer else {}


def _compressed(group: Any) -> int:
    return sum(group.column(i).total_compressed_size for i in range(group.num_columns))


def _group_start(metadata: Any, index: int) -> int:
    group = metadata.row_group(index)
    return min((_chunk_start(group.column(i)) for i in range(group.num_columns)), default=4)


def _chunk_start(column: Any) -> int:
    """Where a column chunk's first page starts (its dictionary page, when it has one)."""
    dictionary = column.dictionary_page_offset if column.has_dictionary_page else None
    return int(dictionary or column.data_page_offset)


def group_row_groups(
    sizes: list[int], n: int | None = None, target_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Runs ``[first, stop)`` of row groups: about ``n`` of similar total size, else each
    up to ``target_bytes`` (default 64 MiB) unless one group alone is larger. No row
    groups: one empty run."""
    if not sizes:
        return [(0, 0)]
    if n is not None:
        return list(itertools.pairwise(balanced_bounds(sizes, n)))
    target = target_bytes or DEFAULT_TARGET_BYTES
    runs, first, held = [], 0, 0
    for i, size in enumerate(sizes):
        if i > first and held + size > target:
            runs.append((first, i))
            first, held = i, 0
        held += size
    runs.append((first, len(sizes)))
    return runs


class RangeFile(SeekableSource):
    """A read-only, seekable file over a :class:`RangeSource` (each read one range request)."""

    source: RangeSource

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        end = self.source.size if size is None or size < 0 else self.position + size
        data = self.source.read(self.position, end)
        self.position += len(data)
        return data

    def size(self) -> int:
        return self.source.size


class HeldFile(RangeFile):
    """A :class:`RangeFile` that serves ``[start, start + len(data))`` from ``data``,
    bytes already fetched (the rest, from the source)."""

    def __init__(self, source: RangeSource, start: int, data: bytes) -> None:
        super().__init__(source)
        self.start, self.data = start, data

    def read(self, size: int = -1) -> bytes:
        end = self.source.size if size is None or size < 0 else self.position + size
        lo, hi = self.position - self.start, end - self.start
        if lo >= 0 and hi <= len(self.data):
            self.position = min(end, self.source.size)
            return self.data[lo:hi]
        return super().read(size)

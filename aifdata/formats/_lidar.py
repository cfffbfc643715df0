"""What LAS/LAZ (:mod:`.las`) and COPC (:mod:`.copc`) share: the header, the VLRs, decoding.

A LAS file is a header, variable-length records (VLRs), the point records
and, in LAS 1.4, extended VLRs (EVLRs) after them. Planning reads the header
and the VLRs (one request, a second one when the VLRs run past the first
16 KiB) and never a point; :func:`read_header` parses them once per process
and file version, and :func:`kept` holds what else the two formats keep per
file version (a LAZ chunk table, COPC hierarchy pages).

:func:`points_of` makes laspy's ``ScaleAwarePointRecord`` of packed records,
:func:`decompress` of whole LAZ chunks (after checking that their sizes add up:
lazrs aborts the process on some inconsistent input), and :func:`to_frame` a
DataFrame of either. A header that does not add up (not ``LASF``, a header
size or point offset that make no header, VLRs that cannot fit, a point format
that does not make the record length) raises :class:`~aifdata.FormatError`
naming the file and the byte offset before laspy or laszip sees it.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import FormatError
from ._base import KeptMetadata, Partition, RangeSource

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
#: A partition keeps its chunk sizes or node entries only while it pickles to at most this
#: many bytes (a long URL and a checksum fingerprint take room too; the limit is 1 KB).
SPEC_BUDGET = 900
#: Each file version's header, chunk table and hierarchy pages, kept per process.
_KEPT = KeptMetadata()


def kept(source: RangeSource) -> dict[Any, Any]:
    """What is kept of this file version in this process: its header (``"header"``), LAZ
    chunk table (``"chunks"``), COPC hierarchy pages and walks."""
    return _KEPT.slot(source)


def laspy_module() -> Any:
    try:
        import laspy
    except ImportError as exc:  # pragma: no cover - the lidar extra is missing
        raise ImportError(f"{exc.name or 'laspy'}: pip install 'aifdata[lidar]'") from exc
    return laspy


def lazrs_module() -> Any:
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
    slot = kept(source)
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
    laspy = laspy_module()
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
        vlr = lazrs_module().LazVlr(laszip)
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
    laspy = laspy_module()
    packed = laspy.PackedPointRecord.from_buffer(raw, header.las.point_format, count)
    return laspy.ScaleAwarePointRecord(
        packed.array, packed.point_format, header.las.scales, header.las.offsets
    )


def decompress(
    header: Header, data: bytes, table: Sequence[tuple[int, int]], url: str, at: int
) -> Any:
    """The points of whole LAZ chunks ``data`` (``table``: points and bytes of each)."""
    import numpy as np

    lazrs = lazrs_module()
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

"""Random access into one gzip file: an index built once, kept where every worker finds it.

A gzip stream decompresses only from its start, unless one keeps checkpoints:
every ``SPACING`` uncompressed bytes, the bit position in the compressed data
and the 32 KiB of output before it (deflate's window). indexed_gzip builds
them in one sequential pass. With them, any uncompressed range costs one range
read of the compressed bytes from the checkpoint before it.

Reads inflate with ISA-L (through ``isal``, which dnaio installs; else with
zlib): a checkpoint's bit offset is undone by shifting the compressed bytes,
and its window is the dictionary; a range that runs into the next gzip member
goes on from that member's checkpoint. Anything that path does not cover (a
damaged stream, an index without member starts) is read again through
indexed_gzip, which also words the errors.

What a read checks: a gzip member's trailer holds the CRC32 and the size
(ISIZE) of *all* its uncompressed bytes, so a read checks them for each member
it inflates from the member's start to its end (a multi-member file, or a range
from the start of a file) and raises FormatError naming the member. A read
that enters a member at a checkpoint cannot check that CRC (it does not inflate
the bytes before the checkpoint), so the index stores its own: the running
CRC32 of the uncompressed stream at every checkpoint, taken when the index is
built (while zlib inflates the whole stream and checks every member's
trailer). A read checks every checkpoint-to-checkpoint span it inflates whole
(it always inflates from the checkpoint before its start, so a span is whole
when the read's end reaches the next checkpoint) and raises FormatError naming
the span. A span a read covers only in part (a short read, the boundary
lookups of planning, the last span of a partition that ends before the next
checkpoint) cannot be checked: there the checks are deflate's own (a code or a
distance that does not decode is an error). Partitions of a big file (n >= 2)
start and end next to checkpoints, so together they cover most spans whole.

The index serves only the version of the file it was built from: size plus
ETag or mtime and, for a local file, its inode and ctime (which ``os.utime``
cannot set back), so a file rewritten in place is indexed again, and that
build checks every member's trailer.

The index is a file under ``$AIFDATA_HOME/gzindex/`` named by a hash of the
file's URL and of its version (size plus ETag or mtime, or its checksum): a
changed file gets a new name, and writing the new one removes the old. The
index also records the whole version key (:func:`version_key`, with the inode
and ctime of a local file) and is used only while it matches, so an index is
never used for another version. It is written to a temporary name and renamed
into place (atomic on a PFS too; no locks: two builders write the same bytes).
Its first line names the layout's version: an index of another version (one
without the span CRCs) is built again, never misread.
"""

from __future__ import annotations

import array
import bisect
import functools
import hashlib
import io
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .._config import aifdata_home
from .._errors import FormatError
from ._base import SeekableSource, Source

#: Uncompressed bytes between checkpoints (each checkpoint keeps a 32 KiB window).
SPACING = 4 * 2**20
#: Compressed bytes fetched per request while building (one sequential pass).
BUILD_BLOCK = 16 * 2**20
#: Compressed bytes the inflater asks for at a time when reading a range.
READ_BUFFER = 32 * 2**10
#: Compressed bytes fetched past the checkpoint after a range (the inflater reads ahead).
READ_MARGIN = 2 * READ_BUFFER
_MAGIC = b"aifdata-gzip-index 2\n"
#: Uncompressed bytes between the running CRC32s the build keeps (one checkpoint window).
CRC_GRID = 32 * 2**10


@dataclass(frozen=True)
class GzipIndex:
    """Checkpoints of one version of one gzip file."""

    url: str
    fingerprint: str
    size: int  # uncompressed
    points: tuple[tuple[int, int], ...]  # (uncompressed offset, compressed offset)
    path: Path  # where the index (with the windows) is stored
    #: running CRC32 of the uncompressed bytes before each checkpoint, then before the
    #: end (None where the build could not know it): what spans are checked against
    crcs: tuple[int | None, ...] = ()

    @functools.cached_property
    def offsets(self) -> list[int]:
        """The checkpoints' uncompressed offsets, ascending."""
        return [u for u, _ in self.points]

    def span(self, start: int, end: int, compressed_size: int) -> tuple[int, int]:
        """The compressed bytes ``[a, b)`` to fetch to decompress ``[start, end)``: from the
        checkpoint before ``start`` to the one after ``end``, or less when the range is
        short (as many bytes as the file's compression ratio says, and a quarter more;
        the inflater asks for any more it needs)."""
        offsets = self.offsets
        before = bisect.bisect_right(offsets, start) - 1
        u_first, c_first = self.points[before]
        first = c_first - 1 if before > 0 else 0  # the byte holding its first bit
        after = bisect.bisect_left(offsets, end)
        last = self.points[after][1] if after < len(self.points) else compressed_size
        ratio = compressed_size / max(1, self.size)
        estimate = first + int((end - u_first) * ratio * 1.25)
        return first, min(last, estimate) + READ_MARGIN


def index_dir() -> Path:
    return aifdata_home() / "gzindex"


def index_path(url: str, fingerprint: str) -> Path:
    """Where the index of this version of ``url`` lives."""
    return index_dir() / f"{_digest(url)}-{_digest(fingerprint)[:16]}.gzi"


def version_key(source: Source) -> str:
    """What names this version of ``source`` for its index: its version (checksum, or
    size plus ETag or mtime) and, for a local file, its inode and ctime, which change
    when the file is rewritten even if its mtime is set back."""
    from fsspec.implementations.local import LocalFileSystem

    key = source.version
    if isinstance(getattr(source, "fs", None), LocalFileSystem):
        try:
            st = os.stat(str(getattr(source, "path", "")))
        except OSError:
            return key
        key += f"|ino={st.st_ino}|ctime_ns={st.st_ctime_ns}"
    return key


def load_or_build(source: Source) -> GzipIndex:
    """The index of ``source`` as it is now: loaded if stored, else built and stored."""
    path = index_path(source.url, source.version)
    if path.exists():
        try:
            if _parts(path)[0].get("key") == version_key(source):
                return _load(path)
        except (OSError, ValueError):
            pass  # unreadable (cut short by a crash?), or another layout: build it again
    return build(source)


def build(source: Source) -> GzipIndex:
    """Read the whole compressed file once, make the checkpoints, store them."""
    indexed_gzip = _indexed_gzip()

    check = StreamCheck(source.url)
    raw = SourceFile(source, block=BUILD_BLOCK, on_fetch=check.feed)
    try:
        with indexed_gzip.IndexedGzipFile(
            fileobj=raw, spacing=SPACING, readbuf_size=2**20, buffer_size=2**16
        ) as gz:
            gz.build_full_index()
            points = tuple((int(u), int(c)) for u, c in gz.seek_points())
            size = _uncompressed_size(gz, check)
            windows = io.BytesIO()
            gz.export_index(fileobj=windows)
    except FormatError:
        raise  # the stream check's own, which names the place
    except (indexed_gzip.ZranError, OSError, ValueError) as exc:
        raise FormatError(
            f"{source.url}: near byte {raw.position}: not a readable gzip stream ({exc})"
        ) from None
    check.finish(source.size, size)
    crcs = check.span_crcs(_parse_blob(windows.getvalue()), size)
    header = {"url": source.url, "fingerprint": source.fingerprint, "size": size}
    header["points"], header["crcs"], header["key"] = points, crcs, version_key(source)
    path = index_path(source.url, source.version)
    _store(path, json.dumps(header).encode() + b"\n" + windows.getvalue())
    return GzipIndex(source.url, source.fingerprint, size, points, path, tuple(crcs))


def _uncompressed_size(gz: Any, check: StreamCheck) -> int:
    """The stream's uncompressed size (indexed_gzip cannot seek to the end of an empty one)."""
    try:
        return int(gz.seek(0, os.SEEK_END))
    except ValueError:
        if check.ended and check.produced == 0:
            return 0
        raise


def read_range(source: Source, index: GzipIndex, start: int, end: int) -> bytes:
    """Uncompressed bytes ``[start, end)``, from one range read of the compressed file."""
    end = min(end, index.size)
    if start >= end:
        return b""
    data = _inflate_from_checkpoint(source, index, start, end)
    return data if data is not None else _read_with_zran(source, index, start, end)


def _inflate_from_checkpoint(
    source: Source, index: GzipIndex, start: int, end: int
) -> bytes | None:
    """``[start, end)`` inflated from the checkpoint before ``start`` (and on from the
    start of each later gzip member), each member inflated whole checked against its
    trailer; None when that cannot give it (an index without member starts, a damaged
    stream)."""
    inflater = _inflater()
    points = _checkpoints(index.path)
    at = bisect.bisect_right(index.offsets, start) - 1
    if points is None or not 0 <= at < len(points) or points[at][0] != index.offsets[at]:
        return None  # not the checkpoints the plan was made with
    first = points[at][0]
    stop = index.span(start, end, source.size)[1]
    ratio = source.size / max(1, index.size)  # compressed bytes per byte, on average
    pieces, got = [], 0
    while True:
        inflated = _inflate_member(inflater, source, points[at], end - first - got, stop)
        if inflated is None:
            return None
        piece, ended, trailer = inflated
        if trailer is not None:
            _check_member(source.url, points[at][1], piece, trailer)
        pieces.append(piece)
        got += len(piece)
        if first + got >= end:
            break
        # the member ended: go on from the checkpoint at the next member's deflate data
        at = next((j for j in range(at + 1, len(points)) if points[j][3] is None), len(points))
        if not ended or at == len(points) or points[at][0] != first + got:
            return None
        stop = points[at][1] + int((end - first - got) * ratio * 1.25) + READ_MARGIN
    data = b"".join(pieces)
    _check_spans(source.url, index, first, data)
    return data[start - first :] if start > first else data


def _check_spans(url: str, index: GzipIndex, first: int, data: bytes) -> None:
    """Check each checkpoint-to-checkpoint span that ``data`` (the uncompressed bytes
    from checkpoint offset ``first`` on) holds whole against the running CRC32s the
    index stored; FormatError naming the span if one differs. A span ``data`` holds
    only in part is not checked (its CRC covers bytes this read did not inflate)."""
    crcs, offsets = index.crcs, index.offsets
    if len(crcs) != len(offsets) + 1:
        return
    bounds = [*offsets, index.size]
    crc32, view, end = _inflater().crc32, memoryview(data), first + len(data)
    k = bisect.bisect_left(offsets, first)
    while k + 1 < len(bounds) and bounds[k + 1] <= end:
        a, b, before, after = bounds[k], bounds[k + 1], crcs[k], crcs[k + 1]
        if before is not None and after is not None and b > a:
            got = int(crc32(view[a - first : b - first], before))
            if got != after:
                raise FormatError(
                    f"{url}: uncompressed bytes {a}-{b} (from the checkpoint at compressed"
                    f" byte {index.points[k][1]}): CRC32 expected {after:#010x} (stored in its"
                    f" gzip index), got {got:#010x}: the file is damaged or was changed in place"
                )
        k += 1


def _inflate_member(
    zlib_like: Any,
    source: Source,
    point: tuple[int, int, int, bytes | None],
    want: int,
    stop: int,
) -> tuple[bytes, bool, bytes | None] | None:
    """Up to ``want`` bytes inflated from ``point`` to the end of its gzip member, whether
    the member ended, and its trailer when the bytes are the whole member (``point`` is
    the start of its deflate data and the member ended); the first read runs to ``stop``."""
    _, compressed, bits, window = point
    damaged: Any = zlib_like.error  # typed as an instance in isal's stubs
    if window:
        inflater = zlib_like.decompressobj(wbits=-15, zdict=window)
    else:  # the start of a member's deflate data
        inflater = zlib_like.decompressobj(wbits=-15)
    begin = compressed - 1 if bits else compressed  # the byte holding the first bit
    stop = max(stop, begin + READ_MARGIN)
    pieces, got = [], 0
    held = b""  # the last compressed byte: its high bits start the next shifted byte
    while got < want and not inflater.eof and begin < source.size:
        raw = source.read(begin, min(stop, source.size))
        if not raw:
            return None  # the object is shorter than it was
        begin, stop = begin + len(raw), begin + len(raw) + max(READ_MARGIN, 2 * len(raw))
        shifted = _shift(held + raw, bits)
        held = raw[-1:] if bits else b""
        try:
            piece = inflater.decompress(shifted, want - got)
        except damaged:
            return None
        pieces.append(piece)
        got += len(piece)
    trailer = None
    if inflater.eof and window is None and not bits:  # unshifted: the trailer's bytes are known
        trailer = inflater.unused_data[:8]
        if len(trailer) < 8:
            at = begin - len(inflater.unused_data)  # where the trailer starts
            trailer += source.read(at + len(trailer), at + 8)
    return b"".join(pieces), bool(inflater.eof), trailer


def _check_member(url: str, deflate_at: int, data: bytes, trailer: bytes) -> None:
    """A whole gzip member, inflated from the start of its deflate data (at compressed
    byte ``deflate_at``), against its trailer's CRC32 and ISIZE; FormatError if not."""
    got = int(_inflater().crc32(data)) if len(trailer) == 8 else 0
    where = f"{url}: byte {deflate_at} (a gzip member's deflate data)"
    _check_trailer(where, got, len(data), trailer)


def _check_trailer(where: str, got: int, size: int, trailer: bytes) -> None:
    """A gzip member (at ``where``) that inflated to ``size`` bytes of CRC32 ``got``,
    against its trailer; FormatError if they differ."""
    if len(trailer) < 8:
        raise FormatError(f"{where}: the member has no trailer: truncated?")
    crc, isize = struct.unpack("<II", trailer)
    if size & 0xFFFFFFFF != isize:
        raise FormatError(
            f"{where}: ISIZE expected {isize} (its trailer), got {size} inflated bytes"
        )
    if got != crc:
        raise FormatError(
            f"{where}: CRC32 expected {crc:#010x} (its trailer), got {got:#010x} from its"
            f" {size} inflated bytes"
        )


def _header_length(data: bytes, url: str, at: int) -> int | None:
    """The length of the gzip member header at the start of ``data`` (compressed byte
    ``at``), None when ``data`` ends inside it; FormatError if it is not one (RFC 1952)."""
    if len(data) < 10:
        return None if b"\x1f\x8b\x08".startswith(data[:3]) else _not_a_header(url, at)
    if data[:3] != b"\x1f\x8b\x08":
        _not_a_header(url, at)
    flags, end = data[3], 10
    if flags & 4:  # FEXTRA: a length, then that many bytes
        if len(data) < end + 2:
            return None
        end += 2 + int.from_bytes(data[end : end + 2], "little")
    for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            zero = data.find(b"\0", end)
            if zero < 0:
                return None
            end = zero + 1
    end += 2 if flags & 2 else 0  # FHCRC
    return end if len(data) >= end else None


def _not_a_header(url: str, at: int) -> NoReturn:
    raise FormatError(f"{url}: byte {at}: not a gzip member header (1f 8b 08 expected)")


def _inflater() -> Any:
    """ISA-L's zlib-compatible module where it is installed (about twice as fast), else zlib."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib
    return isal_zlib


def _shift(raw: bytes, bits: int) -> bytes:
    """Compressed bytes re-cut to start ``8 - bits`` bits into ``raw`` (the last byte's
    leftover bits wait for the next call)."""
    if not bits or not raw:
        return raw
    import numpy as np

    octets = np.frombuffer(raw, dtype=np.uint8)
    shifted = octets[:-1] >> (8 - bits)
    shifted |= octets[1:] << bits  # deflate packs bits from the low end of each byte
    return shifted.tobytes()


def _read_with_zran(source: Source, index: GzipIndex, start: int, end: int) -> bytes:
    indexed_gzip = _indexed_gzip()

    first, last = index.span(start, end, source.size)
    origin = index.offsets[bisect.bisect_right(index.offsets, start) - 1]
    raw = SourceFile(source, block=READ_MARGIN)
    raw.prefetch(first, min(last, source.size))
    try:
        with indexed_gzip.IndexedGzipFile(
            fileobj=raw, auto_build=False, readbuf_size=READ_BUFFER, buffer_size=2**16
        ) as gz:
            gz.import_index(fileobj=io.BytesIO(_windows(index.path)))
            gz.seek(origin)  # from the checkpoint: the spans the read covers are checked
            data: bytes = gz.read(end - origin)
    except (indexed_gzip.ZranError, OSError, ValueError) as exc:
        raise FormatError(
            f"{source.url}: near byte {raw.position}: the gzip stream does not decompress ({exc})"
        ) from None
    if len(data) != end - origin:
        raise FormatError(
            f"{source.url}: uncompressed byte {origin + len(data)}: the gzip stream ends early"
        )
    _check_spans(source.url, index, origin, data)
    return data[start - origin :]


class SourceFile(SeekableSource):
    """A seekable, read-only file over a :class:`Source` (what indexed_gzip reads).

    It keeps one range fetched up front (:meth:`prefetch`) and, apart from it,
    the last ``block`` fetched on demand (the gzip header, a read past the end).
    """

    source: Source

    def __init__(
        self, source: Source, block: int, on_fetch: Callable[[int, bytes], None] | None = None
    ) -> None:
        super().__init__(source)
        self.block = block
        self.on_fetch = on_fetch
        self._buffers: list[tuple[int, bytes]] = []  # (start, data): prefetched, on demand

    def prefetch(self, start: int, end: int) -> None:
        """Fetch ``[start, end)`` in one request now and keep it."""
        self._buffers = [(start, self.source.read(start, end))]

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.source.size:
            return 0
        view = memoryview(buffer).cast("B")
        for start, data in self._buffers:
            at = self.position - start
            if 0 <= at < len(data):
                break
        else:
            want = max(len(view), self.block)
            start, data = self.position, self.source.read(self.position, self.position + want)
            if self.on_fetch is not None:
                self.on_fetch(start, data)
            self._buffers = [*self._buffers[:1], (start, data)]
            at = 0
        n = min(len(view), len(data) - at)
        view[:n] = data[at : at + n]
        self.position += n
        return n


class StreamCheck:
    """Decompress the bytes once more, in order, to prove the gzip stream is complete.

    indexed_gzip takes a file cut inside its deflate data for a shorter file;
    zlib knows whether each member reached its end. Each member's header is
    read here (held until whole: it may be split over two reads), its deflate
    data inflated raw, and its trailer checked here, so a mismatch names the
    member and both CRC32s. Only the build pays this.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.fed = 0  # compressed bytes checked so far
        self.produced = 0  # uncompressed bytes seen
        self.member: Any = None  # the current member's raw inflater (None: in a header)
        self.ended = False  # the last member reached its trailer
        self.held = b""  # bytes of a header or trailer not yet whole
        self.deflate_at = 0  # compressed offset of the current member's deflate data
        self.member_crc = self.member_size = 0
        self.crc = 0  # running CRC32 of the uncompressed bytes so far
        self.grid = array.array("L", [0])  # running CRC32 at each multiple of CRC_GRID
        self.starts = {0: 0}  # uncompressed offset of each member's start: running CRC32
        self.whole = False  # fed every byte in order, to the last trailer

    def feed(self, start: int, data: bytes) -> None:
        if start != self.fed:
            return  # a re-read of bytes already checked (or a look ahead)
        self.fed += len(data)
        data, self.held = self.held + data, b""
        while data:
            at = self.fed - len(data)  # the compressed offset of data[0]
            if self.member is None:  # a member's header, or zero padding after the last
                if self.ended and not data.strip(b"\0"):
                    return
                length = _header_length(data, self.url, at)
                if length is None:
                    self.held = data
                    return
                data = data[length:]
                self.member, self.ended, self.deflate_at = (
                    zlib.decompressobj(wbits=-15),
                    False,
                    at + length,
                )
                self.member_crc = self.member_size = 0
                self.starts.setdefault(self.produced, self.crc)
            elif not self.member.eof:
                try:
                    self._count(self.member.decompress(data))
                except zlib.error as exc:
                    raise FormatError(
                        f"{self.url}: near byte {at}: not a readable gzip stream ({exc})"
                    ) from None
                data = self.member.unused_data if self.member.eof else b""
            elif len(data) < 8:
                self.held = data
                return
            else:
                where = (f"{self.url}: near byte {at} (the trailer of the gzip member whose"
                         f" deflate data starts at byte {self.deflate_at})")  # fmt: skip
                _check_trailer(where, self.member_crc, self.member_size, data[:8])
                data, self.member, self.ended = data[8:], None, True

    def _count(self, out: bytes) -> None:
        """Add ``out`` to the running CRC32, noting it at each multiple of CRC_GRID."""
        view, at = memoryview(out), 0
        while at < len(out):
            piece = view[at : at + CRC_GRID - self.produced % CRC_GRID]
            self.crc = zlib.crc32(piece, self.crc)
            self.member_crc = zlib.crc32(piece, self.member_crc)
            self.member_size += len(piece)
            self.produced += len(piece)
            at += len(piece)
            if self.produced % CRC_GRID == 0:
                self.grid.append(self.crc)

    def span_crcs(
        self, points: list[tuple[int, int, int, bytes | None]] | None, size: int
    ) -> list[int | None]:
        """The running CRC32 at each checkpoint, then at the end (None where unknown): from
        the CRC at the grid point or member start before the checkpoint, continued over the
        last bytes of the checkpoint's window (the uncompressed bytes just before it)."""
        if points is None or not self.whole or self.produced != size:
            return [None] * ((len(points) if points else 0) + 1)
        starts = sorted(self.starts)
        crcs: list[int | None] = []
        for offset, _, _, window in points:
            member = starts[bisect.bisect_right(starts, offset) - 1]
            grid = offset - offset % CRC_GRID
            base, crc = (member, self.starts[member]) if member >= grid else (
                grid, self.grid[grid // CRC_GRID])  # fmt: skip
            gap = offset - base
            if not gap:
                crcs.append(crc)
            elif window is None or len(window) < gap:
                crcs.append(None)
            else:
                crcs.append(zlib.crc32(window[len(window) - gap :], crc))
        return [*crcs, self.crc]

    def finish(self, size: int, uncompressed: int) -> None:
        if self.fed < size:
            return  # indexed_gzip read out of order: it checked the trailers itself
        if not self.ended:
            raise FormatError(
                f"{self.url}: byte {size}: the gzip stream ends early (after {self.produced}"
                " uncompressed bytes, with no gzip trailer): truncated?"
            )
        if self.produced != uncompressed:
            raise FormatError(
                f"{self.url}: the gzip index saw {uncompressed} uncompressed bytes, zlib"
                f" {self.produced}"
            )
        self.whole = True


def _indexed_gzip() -> Any:
    """The indexed_gzip module, or a FormatError that says how to install it."""
    try:
        import indexed_gzip
    except ImportError:
        raise FormatError(
            "the gzip codec needs indexed_gzip to index a gzip file:"
            " pip install 'aifdata[formats]' (or bgzip the file: BGZF needs no index)"
        ) from None
    return indexed_gzip


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=8)
def _read_file(path: Path, mtime_ns: int) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError(f"{path}: not an aifdata gzip index")
    newline = data.index(b"\n", len(_MAGIC))
    return json.loads(data[len(_MAGIC) : newline]), data[newline + 1 :]


def _parts(path: Path) -> tuple[dict[str, Any], bytes]:
    return _read_file(path, path.stat().st_mtime_ns)


def _load(path: Path) -> GzipIndex:
    header, _ = _parts(path)
    points = tuple((int(u), int(c)) for u, c in header["points"])
    crcs = tuple(None if c is None else int(c) for c in header.get("crcs", ()))
    return GzipIndex(header["url"], header["fingerprint"], int(header["size"]), points, path, crcs)


def _windows(path: Path) -> bytes:
    return _parts(path)[1]


#: indexed_gzip's export: magic, version, flags, sizes, spacing, window size, points.
_ZRAN_HEADER = struct.Struct("<5sBBQQIII")
_ZRAN_POINT = struct.Struct("<QQBB")  # compressed, uncompressed, bits, has a window


def _checkpoints(path: Path) -> list[tuple[int, int, int, bytes | None]] | None:
    """(uncompressed, compressed, bits, window) of each checkpoint in the stored index."""
    return _parse_checkpoints(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _parse_checkpoints(
    path: Path, mtime_ns: int
) -> list[tuple[int, int, int, bytes | None]] | None:
    return _parse_blob(_parts(path)[1])


def _parse_blob(blob: bytes) -> list[tuple[int, int, int, bytes | None]] | None:
    """(uncompressed, compressed, bits, window) of each checkpoint in indexed_gzip's export."""
    try:
        magic, version, _, _, _, _, window, count = _ZRAN_HEADER.unpack_from(blob)
        if magic != b"GZIDX" or version != 1:
            return None  # a layout this reader does not know: indexed_gzip reads it
        heads = [_ZRAN_POINT.unpack_from(blob, _ZRAN_HEADER.size + i * _ZRAN_POINT.size)
                 for i in range(count)]  # fmt: skip
    except struct.error:
        return None
    at = _ZRAN_HEADER.size + count * _ZRAN_POINT.size
    points = []
    for compressed, uncompressed, bits, has_window in heads:
        data = None
        if has_window:
            data, at = blob[at : at + window], at + window
        points.append((uncompressed, compressed, bits, data))
    return points if at == len(blob) else None


def _store(path: Path, payload: bytes) -> None:
    """Write atomically (temporary name, then rename) and drop older versions' indexes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".building-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_MAGIC + payload)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    prefix = path.name.split("-")[0]
    for old in path.parent.glob(f"{prefix}-*.gzi"):
        if old != path:
            old.unlink(missing_ok=True)

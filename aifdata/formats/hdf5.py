"""HDF5 and NetCDF4: one variable split into row ranges on its chunk boundaries.

A partition is a range of rows ``[row_start, row_stop)`` along the first
dimension of one dataset (a NetCDF4 variable is an HDF5 dataset; a path such
as ``/group/var`` names one in a group). For a chunked dataset every inner
boundary is a multiple of the chunk's first extent, so no chunk is read (or
decompressed) by two partitions; a contiguous or compact dataset is cut into
even row ranges. A file with several candidate datasets needs
``variable=``; the error lists them. Candidates are the datasets of one or
more dimensions, NetCDF4 dimension scales (coordinate variables) left out
when there is anything else.

Everything goes through h5py on a file object over
:class:`~aifdata.formats.RangeSource`, so ``aif://``, ``s3://`` and local
files behave the same and every byte read is counted. The file object reads
in aligned pages of :data:`PAGE_BYTES` (HDF5 makes many small metadata
reads). Planning reads only metadata: the superblock, the groups, the
variable's object header and, for a chunked variable, the top of its chunk
index, which HDF5 reads when it opens the dataset (each in its page, which may
also hold bytes of a neighbouring chunk: never decoded). A 57 MiB file of 128
chunks takes 3 requests (192 KiB) however many partitions. Those pages are
kept per process and file version, so reading partitions after planning (or
after a first partition, in a worker) fetches only data.
:meth:`Hdf5Format.read` looks up the byte ranges of the partition's chunks in
the chunk index, fetches them in a few merged requests (:data:`MERGE_GAP`),
and lets h5py decode them (gzip, shuffle, any filter h5py has): a numpy array
exactly as ``h5py`` or ``netCDF4`` (without masking) give for those rows,
unwritten chunks read as the fill value. :meth:`Hdf5Format.to_pandas` gives
1-D, compound and 2-D variables as DataFrames; :meth:`Hdf5Format.to_xarray`
a DataArray with the NetCDF4 dimension names and coordinates.

Options reach :meth:`Hdf5Format.plan` through
``aifdata.partition(url, variable="/group/var", n=...)``.

The HDF5 signature must be at byte 0 or, after a user block, at a power of
two from 512 (sniffing sees 512, 1024 and 2048; a file named ``.h5``, ``.nc``,
... is also looked at further: 4096, 8192, ...); a classic netCDF-3 file
(``CDF\\x01``, ``CDF\\x02``, ``CDF\\x05``) is refused with what to do instead.
A file shorter than its superblock's end-of-file address (user block
included) is refused as truncated; anything h5py cannot parse is a
:class:`~aifdata.FormatError` naming the file, the object and the byte range
read last.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._config import Config
from .._errors import AifDataError, FormatError
from ..codecs import SeekableSource
from ._base import (
    FormatPlugin,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)
from ._ranges import Fetched, fetch

SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Magic numbers of the classic netCDF formats (CDF-1, CDF-2 64-bit offset, CDF-5).
NETCDF3 = {b"CDF\x01": "CDF-1", b"CDF\x02": "CDF-2", b"CDF\x05": "CDF-5"}
#: Where sniffing looks for the superblock: HDF5 puts it at 0 or at a power of two >= 512.
SNIFF_OFFSETS = (0, 512, 1024, 2048)
#: First bytes with no signature at :data:`SNIFF_OFFSETS` may be a user block of 4 KiB or
#: more when there are this many: planning looks further (at 4096, 8192, ...).
USER_BLOCK_SNIFF = 4096
#: The file object reads in aligned pages of this size (metadata reads are small).
PAGE_BYTES = 64 * 2**10
#: Chunks closer than this in the file are fetched in one request.
MERGE_GAP = 256 * 2**10
#: What NetCDF4 writes in the NAME attribute of a dimension that has no variable.
_NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable"

#: Attributes HDF5 dimension scales and NetCDF4 keep for themselves (not the variable's).
_BOOKKEEPING = frozenset(
    {"CLASS", "NAME", "DIMENSION_LIST", "REFERENCE_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates",
     "_nc3_strict"}
)  # fmt: skip


def _plain(value: Any) -> Any:
    """An attribute value as xarray shows NetCDF attributes: text as str, one number as
    a scalar."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if getattr(value, "shape", None) == (1,):
        return value[0]
    return value


#: Metadata pages per file version (start -> bytes), and what planning learnt of the file.
_KEPT = KeptMetadata()


class Hdf5Format(FormatPlugin):
    """HDF5 files (and NetCDF4, which is HDF5 inside): row ranges of one dataset, via h5py."""

    name = "hdf5"
    extensions = (".h5", ".hdf5", ".he5", ".nc", ".nc4")
    description = "HDF5 and NetCDF4 variables; row ranges on chunk boundaries, via h5py"

    def sniff(self, head: bytes, path: str) -> bool:
        """The signature in ``head``; or, for a file named as HDF5 whose first bytes are all
        user block (4 KiB or more of it), the chance of one further on (planning looks)."""
        if superblock_in(head) is not None:
            return True
        return self.matches_name(path) and len(head) >= USER_BLOCK_SNIFF and head[:4] not in NETCDF3

    def explain(self, head: bytes, url: str) -> str:
        kind = NETCDF3.get(head[:4])
        if kind is not None:
            return (
                f"{url}: byte 0: a classic netCDF-3 file ({kind}, magic {head[:4]!r}), not"
                " HDF5; the hdf5 format reads NetCDF4 files (HDF5 inside): open this one with"
                " xarray (engine 'scipy' or 'netcdf4'), or convert it with 'nccopy -k nc4'"
            )
        return (
            f"{url}: byte 0: this is not an HDF5 file: expected the signature {SIGNATURE!r}"
            f" at byte 0, 512, 1024, 2048 or a larger power of two (after a user block),"
            f" found {head[:16]!r} at byte 0"
        )

    def plan(
        self,
        source: RangeSource,
        n: int | None = None,
        target_bytes: int | None = None,
        variable: str | None = None,
    ) -> list[Partition]:
        """Row ranges of ``variable`` (the only candidate dataset when None): ``n`` of them,
        or as many as hold about ``target_bytes`` of array data each (uncompressed: what a
        partition takes in memory), never splitting a chunk."""
        partition_count(0, n, target_bytes)  # refuse a bad n or target_bytes first
        check_complete(source)
        layout = self._layout(source, variable)
        count = partition_count(layout.nbytes if n is None else 0, n, target_bytes)
        bounds = row_bounds(layout.rows, layout.step, count)
        fingerprint = source.fingerprint
        return [
            Partition.make(
                source.url, self.name, i, fingerprint, variable=layout.path, row_start=a, row_stop=b
            )
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
        ]

    def _layout(self, source: RangeSource, variable: str | None) -> Layout:
        """The chosen dataset's shape and chunking, kept per file version."""
        slot = _KEPT.slot(source)
        key = ("layout", variable)
        layout: Layout | None = slot.get(key)
        if layout is None:
            with open_file(source, slot) as (f, reader):
                path = choose_variable(f, variable, reader)
                with translated(reader, f"the header of {path!r}"):
                    layout = Layout.of(f[path], path)
            slot[key] = slot["layout", path] = layout
        return layout

    def read(
        self,
        partition: Partition,
        source: RangeSource | None = None,
        config: Config | None = None,
        **options: Any,
    ) -> Any:
        """Rows ``[row_start, row_stop)`` of the partition's dataset, a numpy array
        (``h5py``'s ``dataset[row_start:row_stop]``)."""
        if options:
            raise TypeError(f"the hdf5 format's read() takes no option {', '.join(options)}")
        source = open_source(partition, source, config)
        path, start, stop = partition["variable"], partition["row_start"], partition["row_stop"]
        with open_file(source, _KEPT.slot(source)) as (f, reader):
            with translated(reader, f"the header of {path!r}"):
                dataset = f.get(path)
            if dataset is None:
                raise FormatError(f"{source.url}: has no variable {path!r} (any more)")
            with translated(reader, f"the chunk index of {path!r}"):
                ranges = chunk_ranges(dataset, start, stop)
            reader.prefetch(ranges)
            reader.keep = None  # what follows is data: not kept
            with translated(reader, f"rows {start}..{stop} of {path!r}"):
                return dataset[start:stop]

    def table(self, partition: Partition) -> str:
        return f"hdf5 {partition['variable']!r}"

    def to_xarray(
        self, partition: Partition, source: RangeSource | None = None, config: Config | None = None
    ) -> Any:
        """The partition as an ``xarray.DataArray``: the rows of :meth:`read`, dimensions
        named by the variable's dimension scales (NetCDF4 dimensions; ``dim_N`` where
        none), their coordinate variables (sliced to the rows along the first), and the
        variable's attributes (without HDF5's and NetCDF4's bookkeeping ones)."""
        import xarray as xr

        source = open_source(partition, source, config)
        data = self.read(partition, source)
        path, start, stop = partition["variable"], partition["row_start"], partition["row_stop"]
        what = f"the dimensions and attributes of {path!r}"
        with open_file(source, _KEPT.slot(source)) as (f, reader), translated(reader, what):
            dims, coords = labels(f, f[path], start, stop)
            attrs = {k: _plain(v) for k, v in f[path].attrs.items() if k not in _BOOKKEEPING}
        name = path.rsplit("/", 1)[-1]
        return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name=name)

    def to_pandas(self, partition: Partition, **options: Any) -> Any:
        """A row per row of the variable, indexed by row number: one column named after
        the variable (1-D), a column per field (1-D compound), or a column per index of
        the second dimension (2-D). Refused for more dimensions: use :meth:`read`."""
        import pandas as pd

        data = self.read(partition, **options)
        start = partition["row_start"]
        index = pd.RangeIndex(start, start + len(data))
        name = partition["variable"].rsplit("/", 1)[-1]
        if data.ndim == 1 and data.dtype.names:
            return pd.DataFrame({f: data[f] for f in data.dtype.names}, index=index)
        if data.ndim == 1:
            return pd.DataFrame({name: data}, index=index)
        if data.ndim == 2 and not data.dtype.names:
            return pd.DataFrame(data, index=index)
        raise FormatError(
            f"{partition.url}: variable {partition['variable']!r} has {data.ndim} dimensions"
            f" (shape {data.shape} in this partition): a DataFrame takes 1 or 2; use read()"
        )


class Layout:
    """What planning needs of one dataset: rows, the chunk's row count, bytes."""

    __slots__ = ("nbytes", "path", "rows", "step")

    def __init__(self, path: str, rows: int, step: int, nbytes: int) -> None:
        self.path, self.rows, self.step, self.nbytes = path, rows, step, nbytes

    @classmethod
    def of(cls, dataset: Any, path: str) -> Layout:
        shape = dataset.shape or ()
        rows = int(shape[0]) if shape else 0
        step = int(dataset.chunks[0]) if dataset.chunks else 1
        nbytes = math.prod(shape) * dataset.dtype.itemsize
        return cls(path, rows, max(1, step), nbytes)


def labels(f: Any, dataset: Any, start: int, stop: int) -> tuple[list[str], dict[str, Any]]:
    """A dataset's dimension names (its dimension scales', else ``dim_N``) and coordinate
    variables, the first dimension's cut to rows ``[start, stop)``. A dimension scale (a
    NetCDF4 coordinate variable such as ``time``) is its own first dimension; only a 1-D
    scale is a coordinate (a 2-D character one, NetCDF4's ``z(z, strlen)``, is not)."""
    dims, coords = [], {}
    for axis, dim in enumerate(dataset.dims):
        scale = dim[0] if len(dim) else None
        if axis == 0 and dataset.is_scale:  # nothing is attached to a scale: it names itself
            scale = dataset
        name = scale.name.rsplit("/", 1)[-1] if scale is not None else ""
        dims.append(name or f"dim_{axis}")
        if scale is not None and name and len(scale.shape) == 1 and _is_variable(f, scale.name):
            coords[name] = (name, scale[start:stop] if axis == 0 else scale[:])
    return dims, coords


def superblock_in(head: bytes) -> int | None:
    """Where ``head`` holds the HDF5 signature (one of :data:`SNIFF_OFFSETS`), else None."""
    for offset in SNIFF_OFFSETS:
        if head[offset : offset + len(SIGNATURE)] == SIGNATURE:
            return offset
    return None


def find_superblock(source: RangeSource) -> int | None:
    """The superblock's offset: in the first bytes, else at a power of two up to the end."""
    found = superblock_in(source.head())
    offset = 4096
    while found is None and offset + len(SIGNATURE) <= source.size:
        if source.read(offset, offset + len(SIGNATURE)) == SIGNATURE:
            found = offset
        offset *= 2
    return found


def end_of_file(superblock: bytes, offset: int = 0) -> int | None:
    """Where the file should end (its end-of-file address, user block included), from the
    first bytes of a superblock found at byte ``offset``; None when they do not say.

    Versions 0 and 1 keep the base address (where the HDF5 data start) and the
    end-of-file address after the B-tree parameters, versions 2 and 3 right after
    the flags (with the extension or free-space address between them). Writers put
    the superblock at its base address, after any user block, and the end-of-file
    address counts from the file's start; a file whose user block was put in front
    later (its base address still 0) counts from the base, and HDF5 moves both by
    the difference when it opens it: so does this.
    """
    version = superblock[8] if len(superblock) > 13 else -1  # a cut superblock does not say
    if version in (0, 1):
        width, at = superblock[13], 24 if version == 0 else 28
    elif version in (2, 3):
        width, at = superblock[9], 12
    else:
        return None
    if width not in (2, 4, 8) or len(superblock) < at + 3 * width:
        return None
    base = int.from_bytes(superblock[at : at + width], "little")
    eof = int.from_bytes(superblock[at + 2 * width : at + 3 * width], "little")
    if eof == 2 ** (8 * width) - 1:
        return None
    return eof + offset - base


def check_complete(source: RangeSource) -> None:
    """Refuse a file that is not HDF5, or shorter than its superblock says (truncated)."""
    head = source.head(PAGE_BYTES)  # also the first page h5py reads
    offset = find_superblock(source)
    if offset is None:
        raise FormatError(Hdf5Format().explain(head, source.url))
    superblock = head[offset : offset + 64]
    if len(superblock) < 64:  # past the first bytes (a large user block)
        superblock = source.read(offset, offset + 64)
    eof = end_of_file(superblock, offset)
    if eof is not None and eof > source.size:
        raise FormatError(
            f"{source.url}: byte {source.size}: the file ends at byte {source.size}, but its"
            f" HDF5 superblock (at byte {offset}) says it runs to byte {eof} (truncated?)"
        )


def candidates(f: Any) -> list[str]:
    """Paths of the datasets with one or more dimensions; NetCDF4 dimension scales
    (coordinate variables, bare dimensions) only when there is nothing else."""
    import h5py

    found: list[tuple[str, bool]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape:
            found.append((f"/{name}", _is_scale(obj)))

    f.visititems(visit)
    data = [path for path, scale in found if not scale]
    return data or [path for path, scale in found if _is_variable(f, path)]


def _is_scale(dataset: Any) -> bool:
    kind = dataset.attrs.get("CLASS")
    return bool(kind is not None and bytes(kind).rstrip(b"\x00") == b"DIMENSION_SCALE")


def _is_variable(f: Any, path: str) -> bool:
    """Whether a dimension scale is a variable (a NetCDF4 bare dimension is not)."""
    name = f[path].attrs.get("NAME")
    return not (isinstance(name, bytes) and name.startswith(_NOT_A_VARIABLE))


def choose_variable(f: Any, variable: str | None, reader: _Reader) -> str:
    """The absolute path of the dataset to plan; FormatError listing the candidates."""
    import h5py

    url = reader.source.url
    with translated(reader, "the groups"):
        if variable is not None:
            path = "/" + variable.strip("/")
            obj = f.get(path)
            if isinstance(obj, h5py.Dataset) and obj.shape:
                return path
            found = candidates(f)
        else:
            found = candidates(f)
            if len(found) == 1:
                return found[0]
    listed = ", ".join(found[:30]) + (" ..." if len(found) > 30 else "") if found else "none"
    if variable is None:
        what = "has no dataset to partition" if not found else "has several datasets"
        raise FormatError(f"{url}: {what}; choose one with variable=: {listed}")
    reason = {
        type(None): "no such variable",
        h5py.Group: "a group, not a variable",
        h5py.Dataset: "a scalar (0 dimensions): nothing to split",
    }.get(type(obj), "not a variable")
    raise FormatError(f"{url}: {path!r}: {reason}; its variables: {listed}")


def row_bounds(rows: int, step: int, count: int) -> list[int]:
    """Bounds of up to ``count`` row ranges covering ``[0, rows)``: inner bounds on
    multiples of ``step`` (a chunk's rows), balanced by chunks; ``[]`` when no rows."""
    if rows <= 0:
        return []
    blocks = -(-rows // step)
    count = min(count, blocks)
    inner = [min(rows, (blocks * i // count) * step) for i in range(1, count)]
    return [0, *inner, rows]


def chunk_base(file: Any) -> int:
    """What to add to the chunk addresses the HDF5 library reports for ``file`` (an h5py
    File): its user block's size when the library is older than 1.14.4, whose chunk
    queries leave the user block out (HDF5 issue 3003; contiguous data's is right)."""
    import h5py

    if h5py.version.hdf5_version_tuple >= (1, 14, 4):
        return 0
    return int(file.id.get_create_plist().get_userblock())


def chunk_ranges(dataset: Any, start: int, stop: int) -> list[tuple[int, int]]:
    """The file byte ranges ``[a, b)`` holding rows ``[start, stop)`` of ``dataset``:
    its chunks there (from the chunk index), or the rows of a contiguous dataset."""
    if start >= stop or not dataset.shape:
        return []
    dsid = dataset.id
    if dataset.chunks is None:
        offset = dsid.get_offset()
        if offset is None:  # never written (all fill value) or compact (in the header)
            return []
        row = math.prod(dataset.shape[1:]) * dataset.dtype.itemsize
        return [(offset + start * row, offset + stop * row)]
    chunks = dataset.chunks
    low = start // chunks[0] * chunks[0]
    first = [range(low, stop, chunks[0])]
    others = [
        range(0, extent, size) for extent, size in zip(dataset.shape[1:], chunks[1:], strict=True)
    ]
    corners = math.prod(len(r) for r in (*first, *others))
    stored = dsid.get_num_chunks()
    base = chunk_base(dataset.file)
    if corners > 4 * stored + 1024:  # sparse (or a damaged shape): walk what is stored instead
        return _stored_ranges(dsid, stored, low, stop, base)
    ranges = []
    for corner in itertools.product(*first, *others):
        info = dsid.get_chunk_info_by_coord(corner)
        if info.byte_offset is not None and info.size:
            ranges.append((base + info.byte_offset, base + info.byte_offset + info.size))
    return ranges


def _stored_ranges(dsid: Any, stored: int, low: int, stop: int, base: int) -> list[tuple[int, int]]:
    """The byte ranges of the stored chunks whose first row lies in ``[low, stop)``: one
    look at each chunk the index holds, however large the dataset's shape claims to be."""
    ranges = []
    for i in range(stored):
        info = dsid.get_chunk_info(i)
        if low <= info.chunk_offset[0] < stop and info.byte_offset is not None and info.size:
            ranges.append((base + info.byte_offset, base + info.byte_offset + info.size))
    return ranges


class _Reader(SeekableSource):
    """A read-only file over a :class:`RangeSource`, as h5py wants one (seek, readinto).

    Small reads go through aligned pages of :data:`PAGE_BYTES`, kept in
    ``keep`` (the file version's metadata pages) while it is set, else for this
    file object only; ranges fetched ahead (a partition's chunks) serve the reads
    inside them; other large reads are one request each. ``last`` is the range
    read last and ``failure`` what a read raised (h5py reports it as its own
    error), for messages.
    """

    source: RangeSource

    def __init__(self, source: RangeSource, keep: dict[int, bytes] | None) -> None:
        super().__init__(source)
        self.keep = keep
        self.pages: dict[int, bytes] = {}
        self.ahead = Fetched([])  # a partition's chunks, fetched together
        self.last = (0, 0)
        self.failure: BaseException | None = None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.position + len(view), self.source.size)
        if end <= self.position:
            return 0
        try:
            data = self.range(self.position, end)
        except BaseException as exc:
            self.failure = exc
            raise
        view[: len(data)] = data
        self.position += len(data)
        return len(data)

    def range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the file, from what is held when possible."""
        self.last = (start, end)
        held = self.ahead.find(start, end)
        if held is not None:
            return held
        if end - start >= PAGE_BYTES:
            return self.source.read(start, end)
        first, last = start // PAGE_BYTES, (end - 1) // PAGE_BYTES
        pages = [self._page(p) for p in range(first, last + 1)]
        joined = pages[0] if len(pages) == 1 else b"".join(pages)
        offset = start - first * PAGE_BYTES
        return joined[offset : offset + end - start]

    def _page(self, number: int) -> bytes:
        for held in (self.keep, self.pages):
            if held is not None and number in held:
                return held[number]
        start = number * PAGE_BYTES
        if number == 0:  # the superblock's page: planning has it already
            data = self.source.head(PAGE_BYTES)
        else:
            data = self.source.read(start, start + PAGE_BYTES)
        (self.keep if self.keep is not None else self.pages)[number] = data
        return data

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch ``ranges`` (merged when close) now, in parallel, to serve later reads."""
        self.ahead = fetch(self.source, ranges, MERGE_GAP)


def file_object(source: RangeSource) -> _Reader:
    """A read-only file object over ``source`` that reads aligned pages (for h5py, or
    kerchunk's ``SingleHdf5ToZarr``); use it with :func:`translated` for clear errors."""
    return _Reader(source, None)


@contextmanager
def open_file(source: RangeSource, slot: dict[Any, Any]) -> Iterator[tuple[Any, _Reader]]:
    """The file opened by h5py, reading through ``source`` and the pages kept in ``slot``."""
    import h5py

    keep: dict[int, bytes] = slot.setdefault("pages", {})
    reader = _Reader(source, keep)
    with translated(reader, "the superblock and root group"):
        f = h5py.File(reader, "r")
    try:
        yield f, reader
    finally:
        f.close()


@contextmanager
def translated(reader: _Reader, what: str) -> Iterator[None]:
    """Turn what h5py raises while reading ``what`` into a FormatError naming the file, the
    object and the byte range read last (HDF5's errors name no offset); a storage error
    raised under h5py (which reports it as its own) is raised as it was."""
    try:
        yield
    except (FormatError, MemoryError):
        raise
    except ImportError as exc:  # a filter's library is missing: not the file's fault
        raise ImportError(f"{reader.source.url}: reading {what} needs {exc}") from exc
    except (AttributeError, NameError, AssertionError):
        raise  # a mistake in the code, not in the file: never blamed on a byte of it
    except Exception as exc:
        failure, reader.failure = reader.failure, None
        if isinstance(failure, AifDataError | OSError) and failure is not exc:
            raise failure from exc
        detail = " ".join(str(exc).split())[:300]
        start, stop = reader.last
        raise FormatError(
            f"{reader.source.url}: byte {start}: cannot read {what} (from bytes"
            f" {start}..{stop}): {type(exc).__name__}: {detail}"
        ) from None

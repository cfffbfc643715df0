"""ROOT: each TTree and RNTuple split into entry ranges on cluster boundaries, from metadata.

A TTree stores each branch as compressed *baskets*; ROOT starts new baskets
in every branch at each cluster boundary, so an entry range that begins and
ends where all branches start a basket together can be read alone, and
reading it decompresses no basket another partition also needs. uproot's
``common_entry_offsets()`` gives exactly those entries (the cluster
boundaries, and finer ones where baskets happen to line up, e.g. in a file
written as a single cluster). An RNTuple groups its pages into clusters
whose first entries its footer lists (``cluster_summaries``).

Planning opens the file with uproot through a source that reads by
:class:`~aifdata.formats.RangeSource`, so ``aif://``, ``s3://`` and local
files behave the same and every byte is counted: it reads the file header,
the directories and each tree's metadata, never a basket or a page. Every
TTree (in subdirectories too; the highest cycle of each name) and RNTuple
is planned: consecutive clusters are grouped into about ``n`` partitions *per
tree* (or about ``target_bytes`` of compressed data each), balanced by
entries. A cluster is never split, so a tree with fewer clusters than ``n``
gets one partition per cluster, and a tree with no entries gets none.

:meth:`RootFormat.read` opens the file again (its metadata ranges are kept
per process, so later partitions of a file read only their baskets) and
returns the partition's entries as an awkward Array (``library="np"`` or
``"pd"`` as uproot allows); ``branches`` picks some of them. A file that
does not start with ``root`` is refused at byte 0, and one shorter than its
header says (``fEND``) as truncated, at its last byte. Anything uproot cannot
parse becomes a :class:`~aifdata.FormatError` naming the file, the tree and
the byte range read last (uproot's exceptions seldom carry an offset, and the
bytes that failed are in that range). Pre-release ``ROOT::Experimental::RNTuple``
objects, which uproot cannot read, are not planned.
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import itertools
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .._config import Config
from .._errors import FormatError
from ._base import (
    FormatPlugin,
    KeptMetadata,
    Partition,
    RangeSource,
    open_source,
    partition_count,
)
from ._ranges import balanced_bounds

MAGIC = b"root"
#: Bytes read from the start of the file: the TFile header, which ROOT gives the first 100
#: bytes (``kBEGIN``); uproot's first read is made this size too, so that it reads no data.
HEAD_BYTES = 100
#: Class names planned, by the ``kind`` that goes in the partition spec.
TTREE_CLASSES = frozenset({"TTree", "TNtuple", "TNtupleD"})
RNTUPLE_CLASSES = frozenset({"ROOT::RNTuple"})
_GLOB = frozenset("*?[")


class RootFormat(FormatPlugin):
    """CERN ROOT files: TTrees and RNTuples, read with uproot."""

    name = "root"
    extensions = (".root",)
    description = "ROOT TTrees and RNTuples; entry ranges on cluster boundaries, from metadata"

    def sniff(self, head: bytes, path: str) -> bool:
        return head.startswith(MAGIC)

    def explain(self, head: bytes, url: str) -> str:
        return (
            f"{url}: byte 0: this is not a ROOT file: expected the magic 'root',"
            f" found {head[:16]!r}"
        )

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        partition_count(0, n, target_bytes)  # refuse a bad n or target_bytes even with no trees
        head = self.checked_head(source, HEAD_BYTES)
        check_complete(head, source)
        pieces: list[tuple[str, str, int, int]] = []
        for path, kind, offsets, size in self._layout(source, head):
            count = partition_count(size if n is None else 0, n, target_bytes)
            bounds = group_clusters(offsets, count)
            pieces.extend((path, kind, a, b) for a, b in itertools.pairwise(bounds))
        fingerprint = source.fingerprint
        return [
            Partition.make(
                source.url,
                self.name,
                i,
                fingerprint,
                tree=path,
                kind=kind,
                entry_start=a,
                entry_stop=b,
            )
            for i, (path, kind, a, b) in enumerate(pieces)
        ]

    @staticmethod
    def _layout(source: RangeSource, head: bytes) -> list[tuple[str, str, list[int], int]]:
        """``(path, kind, cluster offsets, compressed bytes)`` of every tree of this version
        of the file: read from its metadata once per process, then kept (planning a file
        again, for another ``n``, reads nothing more)."""
        slot = _LAYOUTS.slot(source)
        layout: list[tuple[str, str, list[int], int]] | None = slot.get("tables")
        if layout is None:
            layout = []
            with open_root(source, head) as (root, reader):
                for path, kind in tables(root, reader):
                    with translated(reader, f"the metadata of {kind} {path!r}"):
                        table = root[path]
                        offsets = cluster_offsets(table, kind)
                        layout.append((path, kind, offsets, compressed_bytes(table, kind)))
            slot["tables"] = layout
        return layout

    def read(
        self,
        partition: Partition,
        source: RangeSource | None = None,
        branches: str | Sequence[str] | None = None,
        config: Config | None = None,
        library: str = "ak",
        **options: Any,
    ) -> Any:
        """Entries ``[entry_start, entry_stop)`` of the partition's tree, as uproot's ``arrays()``.

        ``branches``: names (or uproot ``filter_name`` patterns) of the
        branches or fields to read, all when None; other ``options`` go to
        ``arrays()``.
        """
        source = open_source(partition, source, config)
        path, kind = partition["tree"], partition["kind"]
        start, stop = partition["entry_start"], partition["entry_stop"]
        with open_root(source, metadata=_KEPT.slot(source)) as (root, reader):
            with translated(reader, f"the metadata of {kind} {path!r}"):
                table = root[path]
            reader.metadata = None  # what follows is data: not kept
            names = selected(table, branches, f"{source.url}: {kind} {path!r}")
            unknown = sorted(set(options) - set(inspect.signature(table.arrays).parameters))
            if unknown:  # a TypeError of the caller's, before anything is read
                raise TypeError(f"uproot's {kind} arrays() takes no option {', '.join(unknown)}")
            with translated(reader, f"entries {start}..{stop} of {kind} {path!r}"):
                return table.arrays(
                    filter_name=names,
                    entry_start=start,
                    entry_stop=stop,
                    library=library,
                    **options,
                )

    def table(self, partition: Partition) -> str:
        return f"root {partition['tree']!r}"

    def to_pandas(
        self, partition: Partition, branches: str | Sequence[str] | None = None, **options: Any
    ) -> Any:
        """A row per entry: a column per branch (or record field), lists where jagged."""
        import awkward as ak
        import pandas as pd

        entries = self.read(partition, branches=branches, **options)
        columns = {}
        for name in ak.fields(entries):
            column = entries[name]
            flat = column.ndim == 1 and not ak.fields(column)
            columns[name] = ak.to_numpy(column) if flat else ak.to_list(column)
        start = partition["entry_start"]
        return pd.DataFrame(columns, index=pd.RangeIndex(start, start + len(entries)))


def check_complete(head: bytes, source: RangeSource) -> None:
    """Refuse a file shorter than its TFile header says (``fEND``): it was cut short."""
    version = struct.unpack(">i", head[4:8])[0] if len(head) >= 8 else 0
    width = 8 if version >= 1_000_000 else 4  # 64-bit seek pointers from ROOT's version + 1e6
    if len(head) < 12 + width:
        raise FormatError(
            f"{source.url}: byte {len(head)}: the file ends inside its ROOT header (truncated?)"
        )
    end = int.from_bytes(head[12 : 12 + width], "big")
    if end > source.size:
        raise FormatError(
            f"{source.url}: byte {source.size}: the file ends at byte {source.size}, but its"
            f" ROOT header says it runs to byte {end} (truncated?)"
        )


def tables(root: Any, reader: _Reader) -> list[tuple[str, str]]:
    """``(path, kind)`` of every TTree and RNTuple in the file: the highest cycle of each name."""
    with translated(reader, "the directories"):
        classnames = root.classnames()
    best: dict[str, tuple[int, str]] = {}
    for key, classname in classnames.items():
        path, _, cycle = key.rpartition(";")
        number = int(cycle) if cycle.lstrip("-").isdigit() else 0
        if path not in best or abs(number) > abs(best[path][0]):
            best[path] = (number, classname)
    found = []
    for path, (_, classname) in best.items():
        if classname in TTREE_CLASSES:
            found.append((path, "ttree"))
        elif classname in RNTUPLE_CLASSES:
            found.append((path, "rntuple"))
    return found


def cluster_offsets(table: Any, kind: str) -> list[int]:
    """Entries where a partition may start, from 0 to the number of entries (``[0]`` if none)."""
    total = int(table.num_entries)
    if total == 0:
        return [0]
    if kind == "ttree":
        starts = table.common_entry_offsets()
    else:  # one cluster for all when this uproot lists none
        starts = [s.num_first_entry for s in getattr(table, "cluster_summaries", None) or ()]
    return sorted({0, total, *(int(s) for s in starts if 0 < s < total)})


def compressed_bytes(table: Any, kind: str) -> int:
    """The compressed size of a tree's data (baskets or pages), from its metadata."""
    if kind == "ttree":
        return int(table.compressed_bytes)
    pages = {
        (page.locator.offset, page.locator.num_bytes)
        for cluster in table.page_link_list
        for column in cluster
        for page in column.pages
    }
    return sum(size for _, size in pages)


def group_clusters(offsets: Sequence[int], count: int) -> list[int]:
    """Bounds of ``count`` groups of consecutive clusters (fewer if there are fewer clusters),
    balanced by entries (:func:`~aifdata.formats._ranges.balanced_bounds`).

    ``offsets`` are increasing cluster starts plus the end; each inner bound is
    the cluster start nearest to an even share of the entries, kept so that
    every group holds at least one cluster. ``[]`` when there is no cluster.
    """
    if len(offsets) < 2 or count < 1:
        return []
    sizes = [b - a for a, b in itertools.pairwise(offsets)]
    return [offsets[j] for j in balanced_bounds(sizes, count)]


def selected(table: Any, branches: str | Sequence[str] | None, where: str) -> list[str] | None:
    """``branches`` as a ``filter_name`` list, after checking that plain names exist."""
    if branches is None:
        return None
    names = [branches] if isinstance(branches, str) else list(branches)
    known = set(table.keys())
    missing = [
        name
        for name in names
        if name not in known and not _GLOB & set(name) and not name.startswith("/")
    ]
    if missing:
        raise KeyError(
            f"{where} has no branch {', '.join(map(repr, missing))};"
            f" it has {', '.join(sorted(known)[:20])}{' ...' if len(known) > 20 else ''}"
        )
    return names


class _Reader:
    """Range reads of one source, remembering the last one (for error messages).

    ``head``, the file's first bytes if already read, serves reads that fall inside it.
    """

    def __init__(
        self, source: RangeSource, head: bytes = b"", metadata: dict[int, bytes] | None = None
    ) -> None:
        self.source = source
        self.head = head
        self.last = (0, 0)
        self.metadata = metadata  # ranges kept for this file version: start -> bytes

    def read(self, start: int, stop: int) -> bytes:
        self.last = (start, min(stop, self.source.size))
        if self.last[1] <= len(self.head):
            return self.head[start:stop]
        kept = self.metadata.get(start) if self.metadata is not None else None
        if kept is not None and len(kept) >= self.last[1] - start:
            return kept[: stop - start]
        data = self.source.read(start, stop)
        if self.metadata is not None:
            self.metadata[start] = data
        return data


#: Metadata ranges (header, directories, tree metadata) kept per file version:
#: later partitions of a file fetch only their baskets.
_KEPT = KeptMetadata()
#: Each file version's trees and their clusters, as planning found them.
_LAYOUTS = KeptMetadata()


@contextmanager
def translated(reader: _Reader, what: str) -> Iterator[None]:
    """Turn what uproot raises while reading ``what`` into a FormatError naming file and bytes.

    uproot's exceptions rarely carry a file offset, so the one named is the
    start of the last range read, which holds the bytes that failed to parse.
    A missing library (a decompressor) stays an ImportError, naming the file.
    """
    try:
        yield
    except (FormatError, MemoryError):
        raise
    except ImportError as exc:  # not the file's fault: a decompressor or library is missing
        raise ImportError(f"{reader.source.url}: reading {what} needs {exc}") from exc
    except Exception as exc:
        message = str(getattr(exc, "message", None) or exc)
        lines = [s.strip() for s in message.splitlines() if s.strip()]
        detail = " ".join(s for s in lines[:2] if not s.startswith("in file "))[:300]
        start, stop = reader.last
        raise FormatError(
            f"{reader.source.url}: byte {start}: cannot read {what} (from bytes"
            f" {start}..{stop}): {type(exc).__name__}: {detail}"
        ) from None


@contextmanager
def open_root(
    source: RangeSource, head: bytes = b"", metadata: dict[int, bytes] | None = None
) -> Iterator[tuple[Any, _Reader]]:
    """The file's root directory, opened by uproot reading through ``source``
    (and through ``metadata``, ranges kept from an earlier opening, while it is set)."""
    import uproot

    reader = _Reader(source, head, metadata)
    with translated(reader, "the file header and root directory"):
        root = uproot.open(
            {source.url: None},  # a dict: no "file.root:object" splitting of the URL
            handler=_handler(),
            aifdata_reader=reader,
            begin_chunk_size=HEAD_BYTES,
            object_cache=None,
            array_cache=None,
        )
    try:
        yield root, reader
    finally:
        root.close()


@functools.cache
def _handler() -> type:
    """uproot's ``Source`` over a :class:`_Reader` (built on first use: uproot is optional)."""
    import uproot.source.chunk
    from uproot.source.coalesce import coalesce_requests
    from uproot.source.futures import TrivialFuture

    class RangeSourceHandler(uproot.source.chunk.Source):
        """Reads synchronously through a ``_Reader``; nearby ranges are merged into one read."""

        def __init__(self, file_path: str, *, aifdata_reader: _Reader, **options: Any) -> None:
            super().__init__()
            self._file_path = file_path
            self._reader = aifdata_reader
            self._num_bytes = aifdata_reader.source.size
            self._closed = False

        def chunk(self, start: int, stop: int) -> Any:
            self._count(1, stop - start)
            data = self._reader.read(start, stop)
            return uproot.source.chunk.Chunk(self, start, stop, TrivialFuture(data))

        def chunks(self, ranges: list[tuple[int, int]], notifications: Any) -> list[Any]:
            self._count(len(ranges), sum(stop - start for start, stop in ranges))

            def submit(merged: list[tuple[int, int]]) -> concurrent.futures.Future[list[bytes]]:
                future: concurrent.futures.Future[list[bytes]] = concurrent.futures.Future()
                future.set_result([self._reader.read(a, b) for a, b in merged])
                return future

            return list(coalesce_requests(ranges, submit, self, notifications))

        def _count(self, chunks: int, nbytes: int) -> None:
            self._num_requests += 1
            self._num_requested_chunks += chunks
            self._num_requested_bytes += nbytes

        @property
        def closed(self) -> bool:
            return self._closed

        def __enter__(self) -> RangeSourceHandler:
            return self

        def __exit__(self, *exc: object) -> None:
            self._closed = True

    return RangeSourceHandler

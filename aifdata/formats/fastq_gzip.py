"""gzip-compressed FASTQ (plain ``gzip``, not BGZF): split through a stored index.

Planning builds the file's index once (one sequential pass; see
:mod:`~aifdata.formats._gzip_index`) and keeps it under ``$AIFDATA_HOME``, keyed
by URL and fingerprint, so later plans and every worker reuse it and a changed
file gets a new one. Partitions are ranges of the *uncompressed* bytes, put on
the index's checkpoints where one is near (reading then decompresses nothing
twice) and snapped to record headers by the plain-FASTQ rule, so each record
lands in exactly one partition. Reading one costs one range read of the
compressed bytes. Error offsets count uncompressed bytes.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._errors import FormatError
from ._base import FormatPlugin, Partition, RangeSource, open_source, partition_count
from ._gzip_index import GzipIndex, load_or_build, read_range
from .bgzf import block_size_at
from .fastq import PLAN_THREADS, FastqColumns, parse, record_start, to_arrow


class FastqGzipFormat(FastqColumns, FormatPlugin):
    """FASTQ in one gzip stream (or several concatenated), split through an index."""

    name = "fastq-gzip"
    extensions = (".fastq.gz", ".fq.gz")
    description = "gzip-compressed FASTQ; split through an index built once and stored"

    def sniff(self, head: bytes, path: str) -> bool:
        if head[:3] != b"\x1f\x8b\x08" or block_size_at(head, 0) is not None:
            return False  # not gzip, or BGZF (which needs no index)
        try:
            start = zlib.decompressobj(wbits=31).decompress(head, 1)
        except zlib.error:
            return False
        return start in (b"@", b"")

    def explain(self, head: bytes, url: str) -> str:
        if head[:3] != b"\x1f\x8b\x08":
            return f"{url}: byte 0: this is not gzip data (it starts with {head[:16]!r})"
        if block_size_at(head, 0) is not None:
            return f"{url}: byte 12: BGZF, not plain gzip: use the fastq-bgzf format"
        return f"{url}: uncompressed byte 0: this is not fastq data (expected '@')"

    def plan(
        self, source: RangeSource, n: int | None = None, target_bytes: int | None = None
    ) -> list[Partition]:
        """Partitions of about ``target_bytes`` *uncompressed* bytes each (or ``n`` of them)."""
        head = source.head()
        if not self.sniff(head, source.url):
            raise FormatError(self.explain(head, source.url))
        index = load_or_build(source)
        if index.size == 0:
            return []
        view = Uncompressed(source, index)
        count = partition_count(index.size, n, target_bytes, at_most=index.size)
        nominal = sorted(
            {_near_checkpoint(index, index.size * i // count, count) for i in range(1, count)} - {0}
        )
        with ThreadPoolExecutor(min(PLAN_THREADS, max(1, len(nominal)))) as pool:
            snapped = pool.map(lambda offset: record_start(view, offset), nominal)
            starts = sorted({0, *(s for s in snapped if s < index.size)})
        bounds = [*starts, index.size]
        return [
            Partition.make(source.url, self.name, i, source.fingerprint, start=a, end=b)
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
        ]

    def read(
        self,
        partition: Partition,
        source: RangeSource | None = None,
        as_arrow: bool = False,
        config: Any = None,
        **options: Any,
    ) -> Any:
        source = open_source(partition, source, config)
        index = load_or_build(source)
        start, end = partition["start"], partition["end"]
        data = read_range(source, index, start, end)
        label = f"{source.url} (uncompressed)"
        records = parse(data, label, start, last=end >= index.size)
        return to_arrow(records) if as_arrow else records


class Uncompressed:
    """The uncompressed bytes of a gzip file, as ``record_start`` reads them."""

    def __init__(self, source: RangeSource, index: GzipIndex) -> None:
        self.source, self.index, self.size = source, index, index.size

    def read(self, start: int, end: int) -> bytes:
        return read_range(self.source, self.index, max(0, start), end)


def _near_checkpoint(index: GzipIndex, offset: int, count: int) -> int:
    """The checkpoint nearest ``offset`` if within half a partition, else ``offset``.

    A partition that starts on a checkpoint decompresses nothing another one does.
    """
    offsets = index.offsets
    at = bisect.bisect_left(offsets, offset)
    near = [offsets[i] for i in (at - 1, at) if 0 < i < len(offsets)]
    best = min(near, key=lambda u: abs(u - offset), default=None)
    if best is not None and abs(best - offset) <= index.size // count // 2:
        return best + 1  # the boundary lookup reads from one byte before: from ``best``
    return offset

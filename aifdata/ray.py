"""Partitions as a Ray Data ``Dataset``: one read task per partition, or per run of neighbours.

::

    ds = aifdata.ray.read(aifdata.open_dataset("genomics/run42"), n=256)
    ds.map_batches(count_bases, batch_format="pyarrow").sum("bases")

``read`` takes partitions, a dataset from :func:`aifdata.open_dataset` or a
URL (``n`` and ``target_bytes`` plan the partitions then). Only the small
partition descriptors travel to the Ray workers; each read task reads its
partitions where it runs, through ``aif://``, and refuses a file that changed
since it was planned. A format with a table (FASTQ: ``name``, ``sequence``,
``quality``; ROOT: a column per branch) gives one Arrow block per partition;
any other gives a row per record (a GeoTIFF window: ``data``, ``transform``,
``crs``, ...). When Ray asks for fewer read tasks than there are partitions,
each task reads a run of consecutive ones (neighbouring byte ranges of a file).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ray.data.block import BlockAccessor, BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from ._config import Config
from .formats import ByteRangeFormat, FormatPlugin, Partition, get, partition

if TYPE_CHECKING:
    import pyarrow
    import ray.data
    from ray.data.context import DataContext

__all__ = ["PartitionDatasource", "read"]


def read(
    source: Any,
    *,
    n: int | None = None,
    target_bytes: int | None = None,
    config: Config | None = None,
    **read_args: Any,
) -> ray.data.Dataset:
    """A Ray ``Dataset`` of ``source``: partitions, a dataset (``aifdata.open_dataset``) or
    a URL, the last two planned into ``n`` partitions or ones of about ``target_bytes``.

    ``read_args`` go to ``ray.data.read_datasource`` (``override_num_blocks``,
    ``concurrency``, ``num_cpus``, ...).
    """
    import ray.data

    parts = _partitions(source, n, target_bytes, config)
    with warnings.catch_warnings():  # Ray's DataContext() warns about its own defaults (2.60)
        warnings.simplefilter("ignore", DeprecationWarning)
        ray.data.DataContext.get_current()
    dataset: ray.data.Dataset = ray.data.read_datasource(
        PartitionDatasource(parts, config=config), **read_args
    )
    return dataset


def _partitions(
    source: Any, n: int | None, target_bytes: int | None, config: Config | None
) -> list[Partition]:
    if isinstance(source, str):
        return partition(source, n=n, target_bytes=target_bytes, config=config)
    if callable(getattr(source, "partitions", None)):  # a Dataset from the catalog
        parts: list[Partition] = source.partitions(n=n, target_bytes=target_bytes, config=config)
        return parts
    if n is not None or target_bytes is not None:
        raise TypeError("n and target_bytes plan a dataset or a URL, not partitions")
    if isinstance(source, Partition):
        return [source]
    parts = list(source)
    strays = [p for p in parts if not isinstance(p, Partition)]
    if strays:
        raise TypeError(f"expected aifdata partitions, got {type(strays[0]).__name__}")
    return parts


class PartitionDatasource(Datasource):
    """A Ray ``Datasource`` whose read tasks are aifdata partitions (see the module's doc)."""

    def __init__(self, partitions: Sequence[Partition], config: Config | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Ray's is not annotated
        self.partitions = list(partitions)
        self.config = config
        kinds = sorted({get(p.format).table(p) for p in self.partitions})
        if len(kinds) > 1:
            raise ValueError(
                f"partitions of {len(kinds)} kinds of table ({', '.join(kinds)}) have different"
                " columns: make one Dataset per kind"
            )

    def get_name(self) -> str:
        return "aifdata"

    def estimate_inmemory_data_size(self) -> int | None:
        """The partitions' bytes in their files, when every partition knows them."""
        sizes = [_size(p) for p in self.partitions]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: DataContext | None = None,
    ) -> list[ReadTask]:
        """At most ``parallelism`` tasks, each reading a run of consecutive partitions."""
        extra = {} if per_task_row_limit is None else {"per_task_row_limit": per_task_row_limit}
        return [
            ReadTask(functools.partial(_blocks, run, self.config), _metadata(run), **extra)
            for run in _runs(self.partitions, parallelism)
        ]


def _runs(partitions: Sequence[Partition], count: int) -> list[list[Partition]]:
    """``partitions`` cut into at most ``count`` runs of consecutive ones, of near-equal
    length (every partition in one run, in order)."""
    total = len(partitions)
    count = max(1, min(count, total))
    cuts = [i * total // count for i in range(count + 1)]
    return [list(partitions[a:b]) for a, b in itertools.pairwise(cuts) if a < b]


def _size(p: Partition) -> int | None:
    plugin = get(p.format)
    span = plugin.byte_span(p) if isinstance(plugin, ByteRangeFormat) else None
    return None if span is None else span[1] - span[0]


def _metadata(run: Sequence[Partition]) -> BlockMetadata:
    sizes = [_size(p) for p in run]
    fields: dict[str, Any] = {
        "num_rows": None,
        "size_bytes": None if None in sizes else sum(s for s in sizes if s is not None),
        "input_files": sorted({p.url for p in run}),
        "exec_stats": None,
    }
    known = {f.name for f in dataclasses.fields(BlockMetadata)}
    if "schema" in known:  # Ray before 2.50 keeps the schema in the metadata too
        fields["schema"] = None
    return BlockMetadata(**{k: v for k, v in fields.items() if k in known})


def _blocks(run: Sequence[Partition], config: Config | None) -> Iterator[Any]:
    """One block per partition of ``run``, read here (in the Ray worker)."""
    for p in run:
        plugin = get(p.format)
        if _has_table(plugin):
            yield _table(plugin, p, config)
        else:
            yield _rows_block(plugin.records(p, config=config))


def _has_table(plugin: FormatPlugin) -> bool:
    """Whether the plug-in gives its partitions as a table (its own ``to_arrow`` or
    ``to_pandas``), rather than records only."""
    own = type(plugin).to_pandas is not FormatPlugin.to_pandas
    return own or callable(getattr(plugin, "to_arrow", None))


def _table(plugin: FormatPlugin, p: Partition, config: Config | None) -> pyarrow.Table:
    to_arrow = getattr(plugin, "to_arrow", None)
    if callable(to_arrow):
        table: pyarrow.Table = to_arrow(p, config=config)
        return table
    import pyarrow as pa

    return pa.Table.from_pandas(plugin.to_pandas(p, config=config), preserve_index=False)


def _rows_block(records: Iterable[Any]) -> Any:
    rows = [_row(record) for record in records]
    columns = list(dict.fromkeys(name for row in rows for name in row))
    return BlockAccessor.batch_to_block({c: [row.get(c) for row in rows] for c in columns})


def _row(record: Any) -> dict[str, Any]:
    """A record as a row: a mapping's items, a dataclass's fields, else ``{"item": record}``."""
    if isinstance(record, Mapping):
        return dict(record)
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return {"item": record}

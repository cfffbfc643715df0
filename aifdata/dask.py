"""Partitions as Dask collections: one Dask partition per aifdata partition.

::

    parts = aifdata.partition("aif://genomics/run42/reads.fastq", n=256)
    aifdata.dask.to_bag(parts).count().compute()
    aifdata.dask.to_dataframe(parts).groupby(...)

Only the small partition descriptors travel in the task graph; each task
reads its own partition where it runs (through ``aif://``, so from the PFS
copy when there is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._config import Config
from .formats import Partition, get

if TYPE_CHECKING:
    import dask.bag
    import dask.dataframe
    import pandas


def _records(partition: Partition, config: Config | None) -> list[Any]:
    return list(partition.read(config=config))


def _frame(partition: Partition, config: Config | None) -> pandas.DataFrame:
    return get(partition.format).to_pandas(partition, config=config)


def to_bag(partitions: Sequence[Partition], config: Config | None = None) -> dask.bag.Bag:
    """A ``dask.bag.Bag`` of the records (as each format gives them)."""
    import dask.bag as db

    if not partitions:
        empty: dask.bag.Bag = db.from_sequence([], npartitions=1)
        return empty
    bag: dask.bag.Bag = db.from_sequence(list(partitions), npartitions=len(partitions))
    mapped: dask.bag.Bag = bag.map_partitions(_bag_partition, config=config)
    return mapped


def _bag_partition(partitions: list[Partition], config: Config | None = None) -> list[Any]:
    return [record for p in partitions for record in _records(p, config)]


def to_dataframe(
    partitions: Sequence[Partition],
    meta: pandas.DataFrame | None = None,
    config: Config | None = None,
) -> dask.dataframe.DataFrame:
    """A ``dask.dataframe.DataFrame``, one pandas frame per partition.

    ``meta`` (an empty frame with the columns) saves reading the first
    partition to learn them.
    """
    import dask.dataframe as dd

    if not partitions:
        raise ValueError("no partitions to make a DataFrame of")
    kinds = sorted({get(p.format).table(p) for p in partitions})
    if len(kinds) > 1:
        raise ValueError(
            f"partitions of {len(kinds)} kinds of table ({', '.join(kinds)}) have different"
            " columns: make one DataFrame per kind"
        )
    if meta is None:
        meta = _frame(partitions[0], config).iloc[:0]
    frame: dask.dataframe.DataFrame = dd.from_map(
        _frame, list(partitions), config=config, meta=meta
    )
    return frame

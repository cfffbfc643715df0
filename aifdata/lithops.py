"""Partitions mapped with Lithops: a function of each partition's records, run where Lithops runs.

::

    parts = aifdata.partition("aif://genomics/run42/reads.fastq", n=64)
    counts = aifdata.lithops.map(len, parts)  # one call per partition, results in order

``func`` gets the records of one partition (what ``partition.read()`` gives:
dnaio records for FASTQ, an awkward array for ROOT, a raster for a GeoTIFF
window), read inside the Lithops call through ``aif://``, so a worker needs
the mount table (``$AIFDATA_CONFIG``) and the S3 credentials, as any aifdata
worker does. Only the small partition descriptors travel with the job; a file
that changed since it was partitioned is refused on the worker, and the error
reaches the caller.

Lithops takes partitions as ``iterdata`` with no glue too: a partition binds to
the function's first parameter, so ``executor.map(f, parts)`` calls
``f(partition)`` and ``f`` calls ``partition.read()`` itself. Pass a list: a
tuple is one call with the tuple's items as arguments.

``executor`` is a ``lithops.FunctionExecutor`` (its configuration chooses the
backend: localhost, a cloud's functions, Singularity on an HPC cluster); by
default one is made from Lithops' own configuration (``~/.lithops/config``,
``$LITHOPS_CONFIG_FILE``), which without a file runs on this machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._config import Config
from .formats import Partition, read_all

if TYPE_CHECKING:
    import lithops

__all__ = ["map"]


def map(
    func: Callable[[Any], Any],
    partitions: Iterable[Partition],
    *,
    executor: lithops.FunctionExecutor | None = None,
    config: Config | None = None,
    per_call: int = 1,
    **map_options: Any,
) -> list[Any]:
    """``func(records)`` for each partition's records, computed by Lithops, in the order of
    ``partitions``. ``map_options`` go to ``FunctionExecutor.map`` (``timeout``,
    ``runtime_memory``, ``chunksize``, ...).

    ``per_call`` partitions are read by one Lithops call (consecutive ones, read ahead as
    :func:`aifdata.formats.read_all` does), ``func`` still once per partition: fewer
    calls where each costs a process start (the localhost backend) or a cold start.
    """
    parts = list(partitions)
    strays = [p for p in parts if not isinstance(p, Partition)]
    if strays:
        raise TypeError(f"expected aifdata partitions, got {type(strays[0]).__name__}")
    if per_call < 1:
        raise ValueError(f"per_call must be at least 1, not {per_call}")
    if not parts:
        return []
    if executor is None:
        import lithops

        executor = lithops.FunctionExecutor()

    def read_run_and_call(run: list[Partition]) -> list[Any]:  # pickled with func and config
        if len(run) == 1:
            return [func(run[0].read(config=config))]
        return [func(records) for _, records in read_all(run, config=config)]

    runs = [parts[i : i + per_call] for i in range(0, len(parts), per_call)]
    futures = executor.map(read_run_and_call, runs, **map_options)
    return [result for results in executor.get_result(fs=futures) for result in results]

"""Partitions as a PyTorch ``IterableDataset`` that reads each record once per epoch.

::

    data = aifdata.torch.PartitionDataset(parts, transform=encode)
    loader = torch.utils.data.DataLoader(data, num_workers=4, batch_size=None)

The partitions are dealt out over every reader: the DataLoader workers of
this process and, when ``torch.distributed`` is initialised, every rank
(reader ``k`` of ``R`` takes the ``k``-th of ``R`` equal runs of consecutive
partitions, so neighbouring byte ranges are fetched in one request). So each
record is read exactly once per epoch in all. ``shuffle=True`` changes the
order of partitions each epoch (seeded; call :meth:`set_epoch`), the same on
every rank. Each reader fetches ``prefetch`` partitions ahead of the one it
yields from, so storage latency hides behind the training step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ._config import Config
from .formats import Partition, read_all


def _rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class PartitionDataset(IterableDataset[Any]):
    """Records of aifdata partitions, shared out over DataLoader workers and ranks."""

    def __init__(
        self,
        partitions: Sequence[Partition],
        transform: Callable[[Any], Any] | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        prefetch: int = 2,
        config: Config | None = None,
    ) -> None:
        super().__init__()
        self.partitions = list(partitions)
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.config = config
        self.prefetch = prefetch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (the shuffle order depends on it)."""
        self.epoch = epoch

    def shard(self) -> list[Partition]:
        """The partitions this reader (worker of this rank) reads this epoch."""
        order = list(range(len(self.partitions)))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        rank, world = _rank_and_world()
        reader, readers = rank * workers + worker_id, world * workers
        count = len(order)
        mine = order[reader * count // readers : (reader + 1) * count // readers]
        return [self.partitions[i] for i in mine]

    def __iter__(self) -> Iterator[Any]:
        transform = self.transform
        for _, records in read_all(self.shard(), prefetch=self.prefetch, config=self.config):
            for record in records:
                yield record if transform is None else transform(record)

    def __len__(self) -> int:
        """The number of partitions (records per partition are not known in advance)."""
        return len(self.partitions)

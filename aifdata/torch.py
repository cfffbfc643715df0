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
yields from, so storage latency hides behind the training step. A worker that
the DataLoader spawns rather than forks (macOS; Linux from Python 3.14) has no
process group: it takes its rank from the process that sent it the dataset.

Distributed training: the hang, and the two ways out
----------------------------------------------------

In the default mode, ranks get different numbers of records: partitions hold
different numbers of records, and ``P`` partitions do not divide evenly over
``R`` readers. Under ``DistributedDataParallel`` every step ends in a
collective (the gradients' all-reduce), so the rank with one more batch waits
in it for ranks that have finished their epoch: the job hangs (until the
process group's timeout, 10 or 30 minutes by default). Either

- let finished ranks stand in for the others with PyTorch's join context
  (``with model.join(): for batch in loader: ...``, or
  ``torch.distributed.algorithms.Join``); each record is still read once; or
- ask for ``even="drop"`` or ``even="repeat"``: every reader (every worker of
  every rank) yields the same number of records, so with the same
  ``num_workers`` and ``batch_size`` on every rank every rank runs the same
  number of steps, for any batch size.

In the even modes the epoch is one sequence of ``N`` records: the partitions in
the epoch's order (shuffled or not), each partition's records in file order.
Reader ``k`` of ``R`` yields positions ``[k*q, (k+1)*q)`` of it, so readers
still read runs of neighbouring partitions (the partition at a boundary is
read by both readers, each keeping its own records):

- ``even="drop"``: ``q = N // R``; the last ``N % R`` records of the epoch's
  order are not yielded (fewer than ``R``; like ``DistributedSampler``'s
  ``drop_last=True``);
- ``even="repeat"``: ``q = ceil(N / R)``; positions past the end wrap around
  to the start, so the first ``R*q - N`` records of the epoch's order are
  yielded twice (fewer than ``R``; like ``DistributedSampler``'s padding;
  an epoch of fewer records than readers comes round more than twice).

:meth:`PartitionDataset.balance` gives these numbers (reader 0 also logs them
on the ``aifdata.torch`` logger each epoch). Each reader must know every
partition's record count first, and a record count is only known by reading:
:meth:`PartitionDataset.count_records` reads the partitions once (each rank a
share, then one all-reduce) and keeps the counts for every later epoch.
Without DataLoader workers the first ``iter()`` does this itself; workers
cannot run collectives, so with workers call ``count_records()`` on every rank
before the first epoch (or pass ``record_counts=`` kept from an earlier run).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import warnings
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ._config import Config
from .formats import Partition, read_all

__all__ = ["Balance", "PartitionDataset"]

logger = logging.getLogger(__name__)

#: How ``even=`` evens out readers: drop the surplus, or repeat records to fill.
Even = Literal["drop", "repeat"]
_EVEN_MODES = ("drop", "repeat")

#: One piece of a reader's epoch: ``(partition index, records to skip, records to take)``;
#: ``take`` is None for the whole partition.
Piece = tuple[int, int, int | None]


def _rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class Balance:
    """How an even mode shares one epoch of ``records`` out over ``readers``."""

    readers: int
    records: int
    #: records each reader yields per epoch
    per_reader: int
    #: records of the epoch not yielded (``even="drop"``): the last ones of the epoch's order
    dropped: int
    #: records yielded a second time (``even="repeat"``): the first ones of the epoch's order
    repeated: int

    @classmethod
    def of(cls, records: int, readers: int, even: Even) -> Balance:
        """The balance of ``records`` over ``readers`` in mode ``even``."""
        if readers < 1:
            raise ValueError(f"readers must be at least 1, not {readers}")
        if even == "drop":
            per_reader = records // readers
        else:
            per_reader = -(-records // readers) if records else 0
        surplus = readers * per_reader - records
        return cls(readers, records, per_reader, max(0, -surplus), max(0, surplus))

    def __str__(self) -> str:
        text = (
            f"{self.readers} readers yield {self.per_reader} records each"
            f" ({self.records} in the epoch)"
        )
        if self.dropped:
            text += f"; the last {self.dropped} records of the epoch's order are dropped"
        if self.repeated:
            text += f"; the first {self.repeated} records of the epoch's order are repeated"
        return text


def _deal(
    counts: Sequence[int],
    order: Sequence[int],
    reader: int,
    readers: int,
    even: Even | None = None,
) -> list[Piece]:
    """The pieces reader ``reader`` of ``readers`` reads: ``(partition, skip, take)``.

    ``order`` is the epoch's order of partition indices and ``counts`` the
    record count of each partition (by index; unused when ``even`` is None).
    Without ``even``, the reader takes whole partitions: the ``reader``-th of
    ``readers`` runs of consecutive partitions. With it, the reader takes
    record positions ``[reader*q, (reader+1)*q)`` of the epoch (see the module
    docstring), wrapping around for ``"repeat"``.
    """
    if not 0 <= reader < readers:
        raise ValueError(f"reader {reader} is not one of {readers} readers")
    if even is None:
        n = len(order)
        return [(i, 0, None) for i in order[reader * n // readers : (reader + 1) * n // readers]]
    ends = list(itertools.accumulate(counts[i] for i in order))
    total = ends[-1] if ends else 0
    per_reader = Balance.of(total, readers, even).per_reader
    position, stop = reader * per_reader, (reader + 1) * per_reader
    pieces: list[Piece] = []
    while position < stop:
        offset = position % total
        j = bisect_right(ends, offset)  # the first partition ending after offset
        begin = ends[j - 1] if j else 0
        take = min(ends[j] - offset, stop - position)
        pieces.append((order[j], offset - begin, take))
        position += take
    return pieces


class PartitionDataset(IterableDataset[Any]):
    """Records of aifdata partitions, shared out over DataLoader workers and ranks.

    ``even``: None (each record once; ranks may run different numbers of steps),
    ``"drop"`` or ``"repeat"`` (every reader yields the same number of records):
    see the module docstring. ``record_counts``: each partition's record count,
    if known (else :meth:`count_records` learns it when an even mode needs it).
    """

    def __init__(
        self,
        partitions: Sequence[Partition],
        transform: Callable[[Any], Any] | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        prefetch: int = 2,
        config: Config | None = None,
        even: Even | None = None,
        record_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if even is not None and even not in _EVEN_MODES:
            raise ValueError(f"even must be None, 'drop' or 'repeat', not {even!r}")
        self.partitions = list(partitions)
        if record_counts is not None and len(record_counts) != len(self.partitions):
            raise ValueError(
                f"record_counts has {len(record_counts)} counts"
                f" for {len(self.partitions)} partitions"
            )
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.config = config
        self.prefetch = prefetch
        self.even = even
        self.record_counts = None if record_counts is None else [int(n) for n in record_counts]
        self.epoch = 0
        self._sent_from: tuple[int, int] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A DataLoader pickles the dataset for workers it spawns (the default on macOS,
        # and on Linux from Python 3.14): they have no process group, so they learn
        # their rank from the process that sent them the dataset.
        state = self.__dict__.copy()
        state["_sent_from"] = _rank_and_world()
        return state

    def _reader_and_readers(self) -> tuple[int, int]:
        """This reader's number and how many there are: every worker of every rank."""
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        rank, world = _rank_and_world()
        if worker is not None and world == 1 and self._sent_from is not None:
            rank, world = self._sent_from
        return rank * workers + worker_id, world * workers

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (the shuffle order depends on it)."""
        self.epoch = epoch

    def order(self) -> list[int]:
        """The partition indices in this epoch's order (the same on every rank)."""
        order = list(range(len(self.partitions)))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        return order

    def count_records(self) -> list[int]:
        """Read every partition once to count its records; kept in ``record_counts``.

        Under ``torch.distributed`` each rank counts a run of partitions and one
        all-reduce shares the counts, so this is a collective: call it on every
        rank, with the same partitions (refused on every rank otherwise).
        """
        rank, world = _rank_and_world()
        if world > 1:
            _check_same_partitions(self.partitions)
        n = len(self.partitions)
        mine = range(rank * n // world, (rank + 1) * n // world)
        counts = [0] * n
        read = read_all([self.partitions[i] for i in mine], self.prefetch, self.config)
        for i, (_, records) in zip(mine, read, strict=True):
            counts[i] = len(_sized(records))
        self.record_counts = _all_sum(counts) if world > 1 else counts
        return self.record_counts

    def balance(self, num_workers: int = 0) -> Balance:
        """What the even mode does each epoch with ``num_workers`` DataLoader workers per rank.

        Needs the record counts (:meth:`count_records` or ``record_counts=``).
        """
        if self.even is None:
            raise ValueError("balance() describes an even mode: this dataset has even=None")
        if self.record_counts is None:
            raise RuntimeError("the record counts are not known yet: call count_records() first")
        readers = _rank_and_world()[1] * max(1, num_workers)
        return Balance.of(sum(self.record_counts), readers, self.even)

    def shard(self) -> list[Partition]:
        """The partitions this reader (worker of this rank) reads this epoch.

        In an even mode, the first and last of them may be read only in part.
        """
        return [self.partitions[i] for i, _, _ in self._pieces(*self._reader_and_readers())]

    def _pieces(self, reader: int, readers: int) -> list[Piece]:
        if self.even is None or readers == 1:
            return _deal((), self.order(), reader, readers)
        if self.record_counts is None:
            raise RuntimeError(
                f"even={self.even!r} needs every partition's record count before the"
                " DataLoader's workers start (they cannot run collectives): call"
                " dataset.count_records() on every rank first, or pass record_counts="
            )
        return _deal(self.record_counts, self.order(), reader, readers, self.even)

    def _report(self, readers: int) -> None:
        even, counts = self.even, self.record_counts
        if even is None or counts is None:
            return
        balance = Balance.of(sum(counts), readers, even)
        logger.info("epoch %d, even=%r: %s", self.epoch, even, balance)
        if balance.records and not balance.per_reader:
            warnings.warn(
                f"even='drop' drops every record: {balance.records} records for"
                f" {readers} readers (ranks x workers); use even='repeat' or fewer readers",
                stacklevel=3,
            )

    def __iter__(self) -> Iterator[Any]:
        reader, readers = self._reader_and_readers()
        if self.even and readers > 1 and self.record_counts is None and get_worker_info() is None:
            self.count_records()  # a collective: every rank is starting its epoch
        pieces = self._pieces(reader, readers)
        if self.even and readers > 1 and reader == 0:
            self._report(readers)
        parts = [self.partitions[i] for i, _, _ in pieces]
        transform = self.transform
        read = read_all(parts, prefetch=self.prefetch, config=self.config)
        for (i, skip, take), (part, records) in zip(pieces, read, strict=True):
            if take is not None:
                records = self._cut(i, part, records, skip, take)
            for record in records:
                yield record if transform is None else transform(record)

    def _cut(self, i: int, part: Partition, records: Any, skip: int, take: int) -> Any:
        assert self.record_counts is not None
        records = _sized(records)
        if len(records) != self.record_counts[i]:
            raise ValueError(
                f"{part!r} holds {len(records)} records, not the {self.record_counts[i]}"
                " of record_counts: every reader must agree on the counts to yield as many"
                " records as the others (count them again with count_records())"
            )
        return itertools.islice(records, skip, skip + take)

    def __len__(self) -> int:
        """The number of partitions (records per partition are not known in advance)."""
        return len(self.partitions)


def _sized(records: Any) -> Any:
    """``records`` if it has a length (lists, arrays), else a list of them."""
    return records if hasattr(records, "__len__") else list(records)


def _device() -> torch.device:
    """Where a collective's tensor must live for this process group's backend."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_sum(counts: list[int]) -> list[int]:
    tensor = torch.tensor(counts, dtype=torch.int64, device=_device())
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return [int(n) for n in tensor.tolist()]


def _check_same_partitions(partitions: Sequence[Partition]) -> None:
    """Refuse, on every rank alike, partitions that differ between ranks."""
    digest = hashlib.blake2b(repr(list(partitions)).encode(), digest_size=7).digest()
    mine = [len(partitions), int.from_bytes(digest, "big")]
    tensor = torch.tensor(mine + [-n for n in mine], dtype=torch.int64, device=_device())
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    highest, lowest = tensor[:2].tolist(), [-n for n in tensor[2:].tolist()]
    if highest != lowest:
        raise ValueError(
            "the ranks hold different partitions (every rank must pass the same"
            f" partitions in the same order); this rank has {len(partitions)}"
        )

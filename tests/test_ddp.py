"""PyTorch DDP over partitions: the even modes give every rank the same steps, none hangs.

The dealing out is a pure function (``_deal``), tested without processes; the e2e tests
run two gloo ranks on the CPU that train a tiny DDP model on a FASTQ file read through
``aif://``, each bounded by a join timeout (a hung rank fails the test, it is killed).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import math
import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aifdata.formats import partition

from .test_fastq import fastq_bytes, random_records

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from aifdata.torch import Balance, PartitionDataset, _deal  # noqa: E402

#: A hung rank is killed after this long (spawned ranks import torch first).
RANK_TIMEOUT = 120


# -- the dealing out, as a pure function ---------------------------------------------------


def positions(counts, order, pieces):
    """The records ``pieces`` yield, as ``(partition, record index)``."""
    return [(i, r) for i, skip, take in pieces for r in range(skip, skip + take)]


def epoch(counts, order):
    return [(i, r) for i in order for r in range(counts[i])]


@given(
    counts=st.lists(st.integers(0, 30), max_size=12),
    readers=st.integers(1, 9),
    even=st.sampled_from(["drop", "repeat"]),
    seed=st.integers(0, 3),
)
def test_every_reader_gets_the_same_count_and_the_epoch_in_order(counts, readers, even, seed):
    import random

    order = list(range(len(counts)))
    random.Random(seed).shuffle(order)
    whole = epoch(counts, order)
    balance = Balance.of(len(whole), readers, even)
    dealt = [
        positions(counts, order, _deal(counts, order, k, readers, even)) for k in range(readers)
    ]
    assert [len(d) for d in dealt] == [balance.per_reader] * readers
    together = list(itertools.chain(*dealt))
    if even == "drop":  # the epoch in order, less its last `dropped` records
        assert balance.dropped == len(whole) % readers and balance.repeated == 0
        assert together == whole[: len(whole) - balance.dropped]
    else:  # the epoch in order, then its first `repeated` records again
        assert balance.repeated == (-len(whole)) % readers and balance.dropped == 0
        assert together == (whole * (readers + 1))[: len(whole) + balance.repeated]
    for d in dealt:  # a reader never yields a record twice while the epoch is long enough
        assert len(set(d)) == len(d) or len(whole) < readers


def test_each_reader_reads_a_run_of_neighbouring_partitions():
    counts = [5, 0, 3, 7, 2]
    order = [0, 1, 2, 3, 4]
    assert [_deal(counts, order, k, 2, "drop") for k in range(2)] == [
        [(0, 0, 5), (2, 0, 3)],
        [(3, 0, 7), (4, 0, 1)],  # the last record, of partition 4, is dropped
    ]
    assert [_deal(counts, order, k, 4, "repeat") for k in range(4)] == [
        [(0, 0, 5)],
        [(2, 0, 3), (3, 0, 2)],
        [(3, 2, 5)],
        [(4, 0, 2), (0, 0, 3)],  # the first 3 records come round again
    ]


def test_the_default_deal_is_the_runs_of_whole_partitions_it_always_was():
    order = [3, 0, 4, 1, 2, 6, 5]
    dealt = [_deal((), order, k, 3) for k in range(3)]
    assert dealt == [[(3, 0, None), (0, 0, None)], [(4, 0, None), (1, 0, None)],
                     [(2, 0, None), (6, 0, None), (5, 0, None)]]  # fmt: skip


def test_balance_says_how_many_records_are_dropped_or_repeated():
    assert Balance.of(301, 4, "drop") == Balance(4, 301, 75, 1, 0)
    assert Balance.of(301, 4, "repeat") == Balance(4, 301, 76, 0, 3)
    assert Balance.of(300, 4, "repeat") == Balance(4, 300, 75, 0, 0)
    assert Balance.of(0, 4, "repeat") == Balance(4, 0, 0, 0, 0)
    assert "the first 3 records of the epoch's order are repeated" in str(
        Balance.of(301, 4, "repeat")
    )
    assert "the last 1 records" in str(Balance.of(301, 4, "drop"))
    with pytest.raises(ValueError, match="readers"):
        Balance.of(10, 0, "drop")
    with pytest.raises(ValueError, match="reader 4 is not one of 4"):
        _deal([1], [0], 4, 4, "drop")


# -- the dataset, with ranks and workers stood in for -------------------------------------


@pytest.fixture
def fastq(tmp_path):
    records = random_records(14, 301)
    path = tmp_path / "reads.fastq"
    path.write_bytes(fastq_bytes(records))
    return str(path), [name for name, _, _ in records]


def as_reader(monkeypatch, rank, world, worker=None, workers=1):
    """Make the dataset see itself as ``worker`` of ``workers`` on ``rank`` of ``world``."""
    monkeypatch.setattr("aifdata.torch._rank_and_world", lambda: (rank, world))
    info = None if worker is None else SimpleNamespace(id=worker, num_workers=workers)
    monkeypatch.setattr("aifdata.torch.get_worker_info", lambda: info)


def read_as(monkeypatch, dataset, rank, world, worker, workers, batch_size=None):
    as_reader(monkeypatch, rank, world, worker, workers)
    if batch_size is None:
        return [r.name for r in dataset]
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=list)
    return [[r.name for r in batch] for batch in loader]


@pytest.mark.parametrize("even", ["drop", "repeat"])
def test_every_worker_of_every_rank_yields_as_many_records(fastq, monkeypatch, even):
    url, names = fastq
    parts = partition(url, n=5)
    counts = [len(p.read()) for p in parts]
    assert len(set(counts)) > 1  # partitions of different sizes, 5 of them for 6 readers
    dataset = PartitionDataset(parts, even=even, record_counts=counts)
    seen = [read_as(monkeypatch, dataset, r, 3, w, 2) for r in range(3) for w in range(2)]
    balance = dataset.balance(num_workers=2)
    assert balance == Balance.of(301, 6, even)
    assert [len(s) for s in seen] == [balance.per_reader] * 6
    together = list(itertools.chain(*seen))
    assert together == (names[:300] if even == "drop" else names + names[:5])


def test_the_same_number_of_batches_on_every_reader_for_any_batch_size(fastq, monkeypatch):
    url, _ = fastq
    parts = partition(url, n=7)
    dataset = PartitionDataset(parts, even="drop")
    dataset.count_records()
    for batch_size in (1, 7, 16, 100):
        batches = [read_as(monkeypatch, dataset, r, 2, w, 2, batch_size) for r, w in
                   itertools.product(range(2), range(2))]  # fmt: skip
        assert {len(b) for b in batches} == {math.ceil(75 / batch_size)}


@pytest.mark.parametrize("even", [None, "drop"])
def test_a_spawned_worker_reads_the_share_of_the_rank_that_sent_it(fastq, monkeypatch, even):
    """A spawned worker has no process group: the rank is the one that pickled the dataset."""
    import pickle

    url, _ = fastq
    parts = partition(url, n=8)
    dataset = PartitionDataset(parts, even=even, record_counts=[len(p.read()) for p in parts])
    as_reader(monkeypatch, 1, 2)
    expected = [read_as(monkeypatch, dataset, 1, 2, w, 2) for w in range(2)]
    as_reader(monkeypatch, 1, 2)
    sent = pickle.dumps(dataset)  # in rank 1, as the DataLoader starts its workers
    monkeypatch.setattr("aifdata.torch._rank_and_world", lambda: (0, 1))  # a fresh process
    for w in range(2):
        monkeypatch.setattr(
            "aifdata.torch.get_worker_info", lambda w=w: SimpleNamespace(id=w, num_workers=2)
        )
        assert [r.name for r in pickle.loads(sent)] == expected[w]


def test_count_records_counts_what_the_dataset_yields(fastq):
    url, names = fastq
    parts = partition(url, n=6)
    dataset = PartitionDataset(parts, even="repeat")
    assert dataset.record_counts is None
    assert dataset.count_records() == [len(p.read()) for p in parts]
    assert sum(dataset.record_counts) == len(names)


def count_on_every_rank(monkeypatch, datasets):
    """``count_records()`` on rank r of ``datasets[r]``, its all-reduces done across them.

    Each rank runs twice: first to collect what it contributes to each all-reduce (none
    depends on an earlier one's result), then with every all-reduce's true result."""
    contributed: list[list] = [[] for _ in datasets]
    monkeypatch.setattr("aifdata.torch._device", lambda: torch.device("cpu"))

    def on(rank, reduce):
        calls = itertools.count()

        def all_reduce(tensor, op):
            i = next(calls)
            if not reduce:
                contributed[rank].append(tensor.clone())
                return
            every = torch.stack([c[i] for c in contributed])
            is_max = op == torch.distributed.ReduceOp.MAX
            tensor.copy_(every.max(0).values if is_max else every.sum(0))

        monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
        as_reader(monkeypatch, rank, len(datasets))
        return datasets[rank].count_records()

    for rank in range(len(datasets)):
        on(rank, reduce=False)
    results = []
    for rank in range(len(datasets)):
        try:
            results.append(on(rank, reduce=True))
        except ValueError as e:
            results.append(e)
    return results


def test_ranks_count_a_share_each_and_all_learn_every_count(fastq, monkeypatch):
    url, _ = fastq
    parts = partition(url, n=7)
    counts = [len(p.read()) for p in parts]
    datasets = [PartitionDataset(parts, even="drop") for _ in range(3)]
    assert count_on_every_rank(monkeypatch, datasets) == [counts] * 3
    assert [d.record_counts for d in datasets] == [counts] * 3


def test_ranks_with_different_partitions_are_all_refused(fastq, monkeypatch):
    url, _ = fastq
    parts = partition(url, n=7)
    datasets = [PartitionDataset(parts, even="drop"), PartitionDataset(parts[:6], even="drop")]
    results = count_on_every_rank(monkeypatch, datasets)
    assert [type(r) for r in results] == [ValueError, ValueError]  # not one rank left waiting
    assert "the ranks hold different partitions" in str(results[0])
    reordered = [PartitionDataset(parts, even="drop"), PartitionDataset(parts[::-1], even="drop")]
    assert [type(r) for r in count_on_every_rank(monkeypatch, reordered)] == [ValueError] * 2


def test_shuffled_epochs_deal_the_shuffled_order(fastq, monkeypatch):
    url, names = fastq
    parts = partition(url, n=9)
    dataset = PartitionDataset(parts, even="repeat", shuffle=True, seed=5)
    dataset.count_records()
    by_partition = [[r.name for r in p.read()] for p in parts]
    for e in (0, 1):
        dataset.set_epoch(e)
        whole = [name for i in dataset.order() for name in by_partition[i]]
        seen = [read_as(monkeypatch, dataset, r, 2, None, 1) for r in range(2)]
        assert seen[0] + seen[1] == whole + whole[:1]
    assert whole != names


def test_a_worker_without_counts_says_what_to_call(fastq, monkeypatch):
    url, _ = fastq
    dataset = PartitionDataset(partition(url, n=4), even="drop")
    as_reader(monkeypatch, 0, 2, 0, 2)
    with pytest.raises(RuntimeError, match=r"count_records\(\) on every rank first"):
        next(iter(dataset))
    with pytest.raises(RuntimeError, match="count_records"):
        dataset.balance(num_workers=2)


def test_one_reader_needs_no_counts_and_reads_everything(fastq, monkeypatch):
    url, names = fastq
    dataset = PartitionDataset(partition(url, n=4), even="drop")
    assert [r.name for r in dataset] == names
    assert dataset.record_counts is None  # nothing to even out, nothing counted


def test_counts_that_do_not_match_the_partitions_are_refused(fastq, monkeypatch):
    url, _ = fastq
    parts = partition(url, n=4)
    counts = [len(p.read()) for p in parts]
    wrong = [counts[0] + 1, *counts[1:]]
    dataset = PartitionDataset(parts, even="repeat", record_counts=wrong)
    as_reader(monkeypatch, 0, 2)
    with pytest.raises(ValueError, match=f"holds {counts[0]} records, not the {wrong[0]}"):
        list(dataset)


def test_bad_arguments_are_refused(fastq):
    url, _ = fastq
    parts = partition(url, n=4)
    with pytest.raises(ValueError, match="even must be None, 'drop' or 'repeat'"):
        PartitionDataset(parts, even="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="record_counts has 2 counts for 4 partitions"):
        PartitionDataset(parts, even="drop", record_counts=[1, 2])
    with pytest.raises(ValueError, match="even=None"):
        PartitionDataset(parts).balance()


def test_dropping_every_record_warns(fastq, monkeypatch):
    url, _ = fastq
    dataset = PartitionDataset(partition(url, n=2), even="drop", record_counts=[2, 1])
    as_reader(monkeypatch, 0, 2, 0, 2)
    with pytest.warns(UserWarning, match="drops every record: 3 records for 4 readers"):
        assert list(dataset) == []


# -- two gloo ranks training a DDP model ---------------------------------------------------


def _features(record):
    """A record's name and two numbers a tiny model can learn from."""
    n = len(record.sequence)
    return record.name, torch.tensor([n / 150, record.sequence.count("G") / max(n, 1)])


def _train(rank, world, store, parts, even, workers, batch_size, out):
    """One rank: a few DDP steps over the dataset, then what it saw as JSON."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(torch.nn.Linear(2, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        dataset = PartitionDataset(parts, transform=_features, even=even)
        if workers:
            dataset.count_records()  # before the workers start: a collective
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
        names, steps = [], 0
        with model.join() if even is None else contextlib.nullcontext():
            for batch_names, x in loader:
                loss = (model(x).squeeze(1) - x[:, 1]).square().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                names += batch_names
                steps += 1
        balance = None if even is None else dataclasses.asdict(dataset.balance(workers))
        weights = model.module.weight.detach().tolist()
        seen = {"names": names, "steps": steps, "balance": balance, "weights": weights}
        Path(out).write_text(json.dumps(seen))
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path, parts, even, workers, batch_size, world=2):
    """Start ``world`` ranks, wait for them (a hung one is killed and fails the test)."""
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"rank{r}.json" for r in range(world)]
    store = tmp_path / "store"
    ranks = [
        context.Process(
            target=_train, args=(r, world, store, parts, even, workers, batch_size, outs[r])
        )
        for r in range(world)
    ]
    for p in ranks:
        p.start()
    deadline = time.monotonic() + RANK_TIMEOUT
    for p in ranks:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [r for r, p in enumerate(ranks) if p.is_alive()]
    for p in ranks:
        if p.is_alive():
            p.kill()
            p.join()
    assert not hung, f"ranks {hung} did not finish: a collective hangs"
    assert [p.exitcode for p in ranks] == [0] * world
    return [json.loads(out.read_text()) for out in outs]


@pytest.fixture
def aif_fastq(genomics_fs):
    """301 reads through ``aif://`` in 5 partitions of different sizes (2 ranks: 3 and 2)."""
    records = random_records(14, 301)
    genomics_fs.pipe("genomics/ddp/reads.fq", fastq_bytes(records))
    parts = partition("aif://genomics/ddp/reads.fq", n=5)
    assert len({len(p.read()) for p in parts}) > 1
    return parts, [name for name, _, _ in records]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("even", "workers"), [("drop", 0), ("repeat", 2)], ids=["drop", "repeat-2-workers"]
)
def test_ddp_runs_the_same_steps_on_both_ranks(tmp_path, aif_fastq, even, workers):
    parts, names = aif_fastq
    ranks = run_ranks(tmp_path, parts, even, workers, batch_size=16)
    balance = Balance.of(len(names), 2 * max(1, workers), even)
    assert [r["balance"] for r in ranks] == [dataclasses.asdict(balance)] * 2
    per_rank = max(1, workers) * balance.per_reader
    assert [len(r["names"]) for r in ranks] == [per_rank] * 2
    assert (
        ranks[0]["steps"]
        == ranks[1]["steps"]
        == max(1, workers) * math.ceil(balance.per_reader / 16)
    )
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas in step
    seen = collections.Counter(ranks[0]["names"] + ranks[1]["names"])
    if even == "drop":  # the last record of the file
        assert balance.dropped == 1
        assert seen == collections.Counter(names[:-1])
    else:  # the first three records of the file, twice
        assert balance.repeated == 3
        assert seen == collections.Counter(names + names[:3])


@pytest.mark.e2e
def test_ddp_reads_each_record_once_under_join(tmp_path, aif_fastq):
    parts, names = aif_fastq
    ranks = run_ranks(tmp_path, parts, None, 0, batch_size=16)
    assert ranks[0]["steps"] != ranks[1]["steps"]  # what would hang without join()
    seen = ranks[0]["names"] + ranks[1]["names"]
    assert sorted(seen) == sorted(names) and len(seen) == len(names)
    assert ranks[0]["weights"] == ranks[1]["weights"]

"""Dask and PyTorch over partitions: every record exactly once."""

from __future__ import annotations

import collections

import pytest

import aifdata
from aifdata.formats import partition

from .test_fastq import fastq_bytes, random_records

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from aifdata.torch import PartitionDataset  # noqa: E402


@pytest.fixture
def fastq(tmp_path):
    records = random_records(21, 6000)
    path = tmp_path / "reads.fastq"
    path.write_bytes(fastq_bytes(records))
    return str(path), [name for name, _, _ in records]


def names_of(records) -> list[str]:
    return [r.name for r in records]


def test_dataloader_with_two_workers_sees_every_record_once(fastq):
    url, names = fastq
    parts = partition(url, n=7)
    loader = DataLoader(PartitionDataset(parts), num_workers=2, batch_size=None)
    seen = names_of(loader)
    assert collections.Counter(seen) == collections.Counter(names)
    assert len(seen) == len(names)


def test_dataloader_batches_through_a_transform(fastq):
    url, names = fastq
    dataset = PartitionDataset(partition(url, n=5), transform=lambda r: len(r.sequence))
    loader = DataLoader(dataset, num_workers=2, batch_size=64)
    total = sum(int(batch.shape[0]) for batch in loader)
    assert total == len(names)


def test_ranks_and_workers_split_partitions_without_overlap(fastq, monkeypatch):
    url, names = fastq
    parts = partition(url, n=9)
    seen: list[str] = []
    for rank in range(3):
        monkeypatch.setattr("aifdata.torch._rank_and_world", lambda rank=rank: (rank, 3))
        loader = DataLoader(PartitionDataset(parts), num_workers=2, batch_size=None)
        seen += names_of(loader)
    assert sorted(seen) == sorted(names)


def test_shuffle_changes_the_order_per_epoch_not_the_records(fastq):
    url, names = fastq
    dataset = PartitionDataset(partition(url, n=12), shuffle=True, seed=3)
    first = names_of(dataset)
    dataset.set_epoch(1)
    second = names_of(dataset)
    assert first != second and sorted(first) == sorted(second) == sorted(names)
    assert len(dataset) == 12


def test_a_dask_bag_counts_the_same_records(fastq):
    pytest.importorskip("dask.bag")
    url, names = fastq
    parts = partition(url, n=7)
    bag = aifdata.dask.to_bag(parts)
    assert bag.npartitions == 7
    assert bag.count().compute() == len(names)
    assert sorted(bag.map(lambda r: r.name).compute()) == sorted(names)


def test_a_dask_dataframe_of_fastq(fastq):
    pytest.importorskip("dask.dataframe")
    url, names = fastq
    frame = aifdata.dask.to_dataframe(partition(url, n=4))
    assert list(frame.columns) == ["name", "sequence", "quality"]
    assert frame.npartitions == 4
    assert len(frame) == len(names)
    assert frame["name"].compute().tolist() == names


@pytest.mark.parametrize("flavour", ["plain", "gzip", "bgzf"])
def test_every_fastq_flavour_gives_the_same_columns(tmp_path, flavour):
    pytest.importorskip("pandas")
    import gzip

    from .test_bgzf import bgzf

    records = random_records(11, 300)
    data = fastq_bytes(records)
    encoded = {"plain": data, "gzip": gzip.compress(data), "bgzf": bgzf(data, block=4000)}
    path = tmp_path / ("reads.fq" if flavour == "plain" else "reads.fq.gz")
    path.write_bytes(encoded[flavour])
    frames = [p.to_pandas() for p in partition(str(path), n=3)]
    assert [list(f.columns) for f in frames] == [["name", "sequence", "quality"]] * len(frames)
    rows = [tuple(row) for f in frames for row in f.itertuples(index=False)]
    assert rows == [tuple(r) for r in records]


def test_loaders_read_aif_partitions_in_their_own_processes(genomics_fs):
    records = random_records(5, 2000)
    genomics_fs.pipe("genomics/r/reads.fq", fastq_bytes(records))
    parts = partition("aif://genomics/r/reads.fq", n=6)
    assert len(parts[0].read()) > 0  # this process has used S3 (obstore) before forking
    for context in ("fork", "spawn"):  # a forked worker must not hang on obstore's runtime
        loader = DataLoader(
            PartitionDataset(parts), num_workers=2, batch_size=None,
            multiprocessing_context=context, timeout=120,
        )  # fmt: skip
        assert sorted(names_of(loader)) == sorted(n for n, _, _ in records)
    assert aifdata.dask.to_bag(parts).count().compute(scheduler="processes") == len(records)


@pytest.mark.timeout(120)
def test_the_parent_keeps_working_after_forked_workers_used_s3(genomics_fs, capfd):
    """After forked workers read S3, the parent's own requests still work, quietly.

    (This does not reproduce the stall fixed by keeping one s3fs client per process,
    which needed a client collected before the fork: the demo test guards that.)"""
    records = random_records(6, 2000)
    fs = genomics_fs
    fs.pipe("genomics/f/reads.fq", fastq_bytes(records))
    url = "aif://genomics/f/reads.fq"
    parts = partition(url, n=4)
    assert fs.info(url)["size"] > 0  # the parent's s3fs client has a pooled connection
    loader = DataLoader(
        PartitionDataset(parts), num_workers=2, batch_size=None,
        multiprocessing_context="fork", timeout=60,
    )  # fmt: skip
    assert len(names_of(loader)) == len(records)
    for _ in range(3):  # each within moments, not a read timeout
        assert fs.info(url)["size"] > 0
        assert sum(len(r) for _, r in aifdata.formats.read_all(parts)) == len(records)
    assert "attached to a different loop" not in capfd.readouterr().err


@pytest.mark.parametrize("prefetch", [0, 1, 4])
def test_read_all_keeps_the_order(fastq, prefetch):
    url, names = fastq
    parts = partition(url, n=9)
    pairs = list(aifdata.formats.read_all(parts, prefetch=prefetch))
    assert [p for p, _ in pairs] == parts
    assert [r.name for _, records in pairs for r in records] == names


@pytest.mark.parametrize("block", [1000, 50_000, 2**30])
@pytest.mark.parametrize("prefetch", [0, 3])
def test_read_all_streams_runs_of_neighbours_in_aligned_blocks(
    tmp_path, monkeypatch, block, prefetch
):
    from .test_bgzf import bgzf

    records = random_records(5, 3000)
    plain, packed = tmp_path / "a.fastq", tmp_path / "b.fastq.gz"
    plain.write_bytes(fastq_bytes(records))
    packed.write_bytes(bgzf(fastq_bytes(records), block=7000))
    plain_parts, packed_parts = partition(str(plain), n=8), partition(str(packed), n=6)
    # two runs of the plain file, with the other file between them
    parts = plain_parts[:5] + packed_parts[1:] + plain_parts[5:] + packed_parts[:1]
    expected = [[r.name for r in p.read()] for p in parts]

    requests = []
    read = aifdata.formats.RangeSource.read
    monkeypatch.setattr(
        aifdata.formats.RangeSource,
        "read",
        lambda s, a, b: requests.append((s.url, a, b)) or read(s, a, b),
    )
    pairs = list(aifdata.formats.read_all(parts, prefetch=prefetch, block_bytes=block))
    assert [p for p, _ in pairs] == parts
    assert [[r.name for r in records] for _, records in pairs] == expected

    plain_reads = [(a, b) for url, a, b in requests if url == str(plain)]
    runs = [
        (plain_parts[0]["start"], plain_parts[4]["end"]),
        (plain_parts[5]["start"], plain.stat().st_size),
    ]
    grid = sum(len(range(a // block, (b - 1) // block + 1)) for a, b in runs)
    assert len(plain_reads) == grid  # one request per grid cell a run touches
    assert all(a // block == (b - 1) // block for a, b in plain_reads)  # none crosses the grid

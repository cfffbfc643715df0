"""gzip FASTQ partitions through a stored index: exact, built once, invalidated on change."""

from __future__ import annotations

import functools
import gzip
import multiprocessing
import os
import pickle
import zlib
from pathlib import Path

import pytest

pytest.importorskip("dnaio")
pytest.importorskip("indexed_gzip")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aifdata
from aifdata import FormatError
from aifdata.codecs import _gzip_index as gzip_index
from aifdata.formats import RangeSource, get, partition

from .test_bgzf import bgzf
from .test_fastq import (
    BOUNDARY_WINDOW,
    fastq_bytes,
    random_records,
    records_strategy,
    reference,
    write,
)


@pytest.fixture
def small_spacing(monkeypatch):
    """Checkpoints every 64 KiB, so test-sized files have many."""
    monkeypatch.setattr(gzip_index, "SPACING", 64 * 2**10)


def names(parts) -> list[tuple[str, str, str]]:
    return [(r.name, r.sequence, r.qualities) for p in parts for r in p.read()]


def write_gz(tmp_path, name: str, data: bytes, members: int = 1) -> str:
    """``data`` gzipped, as ``members`` concatenated gzip streams."""
    path = tmp_path / name
    path.write_bytes(_gzipped(data, members))
    return str(path)


@functools.lru_cache(maxsize=8)
def _gzipped(data: bytes, members: int) -> bytes:
    """Compressed once per run for tests that share their data (gzip's level 9 is slow);
    mtime 0, so that the bytes never depend on when they were made."""
    step = -(-len(data) // members) or 1
    return b"".join(gzip.compress(data[i : i + step], mtime=0) for i in range(0, len(data), step))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=records_strategy, n=st.integers(min_value=1, max_value=30))
def test_partitions_union_is_exactly_the_file(tmp_path, records, n):
    data = fastq_bytes(records)
    url = write_gz(tmp_path, f"r{n}.fastq.gz", data)
    parts = partition(url, n=n)
    assert all((p.format, p["codec"]) == ("fastq", "gzip") for p in parts)
    assert names(parts) == reference(data)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [2, 23, 64])
def test_more_partitions_than_bytes(tmp_path, n):
    """A nominal boundary at byte 0 once looped forever (found by hypothesis in CI)."""
    data = b"@read0 lane=5\n\n+\n\n"
    parts = partition(write_gz(tmp_path, "tiny.fastq.gz", data), n=n)
    assert len(parts) == 1 and names(parts) == reference(data)


def test_an_empty_gzip_stream_has_no_partitions(tmp_path):
    path = tmp_path / "empty.fastq.gz"
    path.write_bytes(gzip.compress(b""))
    assert partition(str(path), n=4) == []


@pytest.mark.parametrize(("n", "members"), [(1, 1), (5, 1), (16, 1), (64, 1), (9, 4)])
def test_larger_files_over_many_checkpoints(tmp_path, small_spacing, n, members):
    records = random_records(12, 12_000)
    url = write_gz(tmp_path, "big.fq.gz", fastq_bytes(records), members)
    parts = partition(url, n=n)
    assert len(parts) == n
    assert names(parts) == records
    index = gzip_index.load_or_build(RangeSource(url))
    assert len(index.points) > 20 and index.size == len(fastq_bytes(records))


@pytest.mark.parametrize("short_reads", [False, True], ids=["one-read", "many-reads"])
@pytest.mark.parametrize("members", [1, 3])
def test_ranges_inflate_from_checkpoints_at_any_bit(
    tmp_path, small_spacing, monkeypatch, members, short_reads
):
    """ISA-L reads every range, from checkpoints that start mid-byte too, in one range
    read or in many, and across gzip members; indexed_gzip is never needed."""
    pytest.importorskip("isal")
    # runs of one record (compresses ~100x) between random ones: the span's estimate
    # from the average ratio falls short in places, so reads continue
    same = fastq_bytes(random_records(15, 1)) * 4000
    data = same + fastq_bytes(random_records(13, 3000)) + same
    url = write_gz(tmp_path, "bits.fq.gz", data, members)
    if short_reads:  # every range read fetches 5,000 bytes at a time
        monkeypatch.setattr(gzip_index, "READ_MARGIN", 5000)
        monkeypatch.setattr(gzip_index.GzipIndex, "span", lambda self, a, b, size: (0, 0))
    source = RangeSource(url)
    index = gzip_index.load_or_build(source)
    points = gzip_index._checkpoints(index.path)
    assert points is not None and {bits for _, _, bits, _ in points} - {0}  # mid-byte ones
    member_starts = [u for u, _, _, window in points if window is None and u > 0]
    assert len(member_starts) == members - 1
    by_zran = []
    zran = gzip_index._read_with_zran
    monkeypatch.setattr(gzip_index, "_read_with_zran", lambda *a: by_zran.append(a) or zran(*a))
    rng = __import__("random").Random(5)
    ranges = [(m - 1, m + 1) for m in member_starts]  # a byte either side of a member start
    for _ in range(60):
        start = rng.randrange(len(data))
        ranges.append((start, min(len(data), start + rng.randrange(1, 3 * gzip_index.SPACING))))
    ranges.append((0, len(data)))
    for start, end in ranges:
        assert gzip_index.read_range(source, index, start, end) == data[start:end]
    assert by_zran == []


def test_a_damaged_member_falls_back_to_indexed_gzip_and_names_the_offset(tmp_path, small_spacing):
    pytest.importorskip("isal")
    data = fastq_bytes(random_records(16, 3000))
    url = write_gz(tmp_path, "hurt.fq.gz", data, members=2)
    index = gzip_index.load_or_build(RangeSource(url))
    points = gzip_index._checkpoints(index.path)
    second = next(c for u, c, _, window in points if window is None and u > 0)
    path = Path(url)
    raw = bytearray(path.read_bytes())
    raw[second + 100 : second + 140] = bytes(40)  # the second member's deflate data
    stat = path.stat()
    path.write_bytes(raw)  # same size and mtime: the stored index still applies
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    source = RangeSource(url)
    with pytest.raises(FormatError, match=r"hurt\.fq\.gz: near byte"):
        gzip_index.read_range(source, index, 0, len(data))


def test_without_isal_zlib_reads_everything(tmp_path, small_spacing, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_isal(name, *args, **kwargs):
        if name == "isal":
            raise ImportError("no isal here")
        return real_import(name, *args, **kwargs)

    records = random_records(14, 3000)
    url = write_gz(tmp_path, "plain.fq.gz", fastq_bytes(records))
    monkeypatch.setattr(builtins, "__import__", no_isal)
    assert names(partition(url, n=7)) == records


def test_the_index_is_built_once_and_found_by_a_fresh_process(tmp_path, small_spacing):
    records = random_records(3, 8000)
    url = write_gz(tmp_path, "once.fastq.gz", fastq_bytes(records))
    first = RangeSource(url)
    parts = get("fastq").plan(first, n=6)
    assert first.bytes_read >= first.size  # building reads the whole file once
    again = RangeSource(url)
    assert get("fastq").plan(again, n=6) == parts
    # from the stored index, each of the 5 boundaries reads one range: from the checkpoint
    # before it, a 64 KiB window, and a little more for the inflater's read-ahead
    assert again.requests == 1 + 5  # the head, then the boundaries
    per_boundary = gzip_index.SPACING + BOUNDARY_WINDOW + gzip_index.READ_MARGIN
    assert again.bytes_read <= 5 * per_boundary < first.bytes_read
    stored = list(gzip_index.index_dir().glob("*.gzi"))
    assert len(stored) == 1
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        counts = pool.map(_count_in_fresh_process, [pickle.dumps(p) for p in parts])
    assert sum(counts) == len(records)
    assert list(gzip_index.index_dir().glob("*.gzi")) == stored  # nothing rebuilt


def _count_in_fresh_process(blob: bytes) -> int:
    return len(pickle.loads(blob).read())


def test_a_partition_read_costs_about_one_range_read(tmp_path, small_spacing):
    records = random_records(4, 16_000)
    url = write_gz(tmp_path, "reads.fq.gz", fastq_bytes(records))
    parts = partition(url, n=8)
    for p in parts:
        source = RangeSource(url)
        p.read(source=source)
        assert source.requests <= 2


def test_a_changed_file_gets_a_new_index(tmp_path, small_spacing):
    url = write_gz(tmp_path, "moving.fastq.gz", fastq_bytes(random_records(5, 3000)))
    old_parts = partition(url, n=4)
    old_index = gzip_index.index_path(url, RangeSource(url).fingerprint)
    assert old_index.exists()
    changed = random_records(6, 4000)
    write_gz(tmp_path, "moving.fastq.gz", fastq_bytes(changed))
    os.utime(url, ns=(1, 1))  # a different mtime even on a coarse clock
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        old_parts[1].read()
    assert names(partition(url, n=4)) == changed
    assert not old_index.exists()
    assert len(list(gzip_index.index_dir().glob("*.gzi"))) == 1


def test_a_damaged_index_file_is_rebuilt(tmp_path):
    records = random_records(7, 500)
    url = write_gz(tmp_path, "d.fastq.gz", fastq_bytes(records))
    partition(url, n=2)
    path = gzip_index.index_path(url, RangeSource(url).fingerprint)
    path.write_bytes(b"half an index")
    assert names(partition(url, n=2)) == records


def test_detection_tells_plain_gzip_from_bgzf(tmp_path):
    data = fastq_bytes(random_records(8, 300))
    plain = write_gz(tmp_path, "a.fastq.gz", data)
    blocked = tmp_path / "b.fastq.gz"
    blocked.write_bytes(bgzf(data))
    assert {(p.format, p["codec"]) for p in partition(plain, n=2)} == {("fastq", "gzip")}
    assert {(p.format, p["codec"]) for p in partition(str(blocked), n=2)} == {("fastq", "bgzf")}
    for url in (plain, str(blocked), write(tmp_path, "c.fq", data)):
        assert names(partition(url, n=3, format="fastq")) == reference(data)
        for old in ("fastq-gzip", "fastq-bgzf"):  # the names from before codecs: still taken
            assert names(partition(url, n=3, format=old)) == reference(data)


@pytest.mark.timeout(60)
def test_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress(fastq_bytes(random_records(9, 2000)))
    path = tmp_path / "cut.fastq.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.fastq\.gz: .*byte \d+"):
        names(partition(str(path), n=3))


@pytest.mark.timeout(60)
def test_corrupt_deflate_data_names_the_file_and_offset(tmp_path):
    data = bytearray(gzip.compress(fastq_bytes(random_records(10, 2000))))
    data[len(data) // 3 : len(data) // 3 + 64] = os.urandom(64)
    path = tmp_path / "bad.fastq.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"bad\.fastq\.gz: near byte \d+"):
        names(partition(str(path), n=3))


@pytest.mark.timeout(60)
def test_gzip_of_something_else_is_not_fastq(tmp_path):
    path = tmp_path / "table.fastq.gz"
    path.write_bytes(gzip.compress(b"id,value\n1,2\n" * 100))
    inside = r"table\.fastq\.gz: uncompressed byte 0: this is not fastq data inside gzip: expected"
    for format in (None, "fastq"):
        with pytest.raises(FormatError, match=inside + r" a header line starting with '@'"):
            partition(str(path), n=2, format=format)
    path.write_bytes(gzip.compress(__import__("random").Random(1).randbytes(50_000)))
    with pytest.raises(FormatError, match=inside):
        partition(str(path), n=2)
    path.write_bytes(gzip.compress(b"@r1\nACGT\n+\nII\n"))
    with pytest.raises(FormatError, match=r"table\.fastq\.gz: uncompressed byte 11: .*differ"):
        names(partition(str(path), n=1))


def test_partitions_from_s3_in_fresh_processes(genomics_fs, monkeypatch):
    records = random_records(11, 6000)
    monkeypatch.setattr(gzip_index, "SPACING", 64 * 2**10)
    fs = genomics_fs
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    packed = compressor.compress(fastq_bytes(records)) + compressor.flush()
    fs.pipe("genomics/run7/reads.fastq.gz", packed)
    parts = aifdata.partition("aif://genomics/run7/reads.fastq.gz", n=7)
    assert len(parts) == 7 and all(len(pickle.dumps(p)) < 1024 for p in parts)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        counts = pool.map(_count_in_fresh_process, [pickle.dumps(p) for p in parts])
    assert sum(counts) == len(records)

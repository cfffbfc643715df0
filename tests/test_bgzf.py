"""BGZF FASTQ (format ``fastq``, codec ``bgzf``): block-aligned partitions, each record once."""

from __future__ import annotations

import functools
import gzip
import random
import struct
import zlib

import pytest

pytest.importorskip("dnaio")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifdata import FormatError
from aifdata.codecs.bgzf import MAX_BLOCK
from aifdata.formats import RangeSource, get, partition

from .test_fastq import HEAD_BYTES, fastq_bytes, random_records, records_strategy, reference

EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def bgzf(data: bytes, block: int = 60_000, seed: int | None = None) -> bytes:
    """``data`` as BGZF blocks of ``block`` bytes (random sizes up to it with ``seed``)."""
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        size = rng.randint(1, block) if seed is not None else block
        chunk = data[pos : pos + size]
        pos += len(chunk)
        deflated = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = deflated.compress(chunk) + deflated.flush()
        header = b"\x1f\x8b\x08\x04" + struct.pack("<IBBH", 0, 0, 255, 6) + b"BC"
        header += struct.pack("<HH", 2, len(body) + 25)
        out.append(header + body + struct.pack("<II", zlib.crc32(chunk), len(chunk)))
    return b"".join(out) + EOF_BLOCK


def names(parts) -> list[tuple[str, str, str]]:
    return [(r.name, r.sequence, r.qualities) for p in parts for r in p.read()]


def test_the_writer_makes_gzip_that_gzip_reads():
    data = fastq_bytes(random_records(1, 500))
    assert gzip.decompress(bgzf(data, seed=2)) == data


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=records_strategy,
    n=st.integers(min_value=1, max_value=30),
    block=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_partitions_union_is_exactly_the_file(tmp_path, records, n, block, seed):
    data = fastq_bytes(records)
    path = tmp_path / "reads.fastq.gz"
    path.write_bytes(bgzf(data, block=block, seed=seed))
    parts = partition(str(path), n=n)
    assert all((p.format, p["codec"]) == ("fastq", "bgzf") for p in parts)
    assert names(parts) == reference(data)


@functools.cache
def _big_bgzf() -> bytes:
    """The larger file's bytes, compressed once for every n (the same bytes each time)."""
    return bgzf(fastq_bytes(random_records(8, 20_000)), seed=4)


@pytest.mark.parametrize("n", [1, 3, 17, 64])
def test_larger_files(tmp_path, n):
    records = random_records(8, 20_000)
    path = tmp_path / "big.fq.gz"
    path.write_bytes(_big_bgzf())
    parts = partition(str(path), n=n)
    assert len(parts) == n
    assert names(parts) == records


def test_planning_reads_one_window_per_boundary(tmp_path):
    path = tmp_path / "plan.fq.gz"
    data = fastq_bytes(random_records(9, 10_000))
    assert len(data) > 8 * 3 * 60_000  # 3 blocks or more a partition: a window per boundary
    path.write_bytes(bgzf(data))
    source = RangeSource(str(path))
    parts = get("fastq").plan(source, n=8)
    assert len(parts) == 8
    assert source.requests == 9  # the head, the end-of-file block, one window per boundary
    assert source.bytes_read <= HEAD_BYTES + 28 + 7 * (2 * MAX_BLOCK + 64)


def test_the_old_format_name_reads_plain_gzip_too(tmp_path):
    """``fastq-bgzf`` was a format of its own; now it names ``fastq``, whatever the codec."""
    path = tmp_path / "plain.fastq.gz"
    records = random_records(1, 100)
    path.write_bytes(gzip.compress(fastq_bytes(records)))
    parts = partition(str(path), n=2, format="fastq-bgzf")
    assert {(p.format, p["codec"]) for p in parts} == {("fastq", "gzip")}  # through an index
    assert names(parts) == records


@pytest.mark.timeout(60)
def test_bgzf_of_something_else_is_not_fastq_inside_bgzf(tmp_path):
    path = tmp_path / "table.fq.gz"
    path.write_bytes(bgzf(b"id,value\n1,2\n" * 100))
    with pytest.raises(
        FormatError,
        match=r"table\.fq\.gz: uncompressed byte 0: this is not fastq data inside BGZF: expected",
    ):
        partition(str(path), n=2)


@pytest.mark.timeout(60)
def test_a_truncated_bgzf_file(tmp_path):
    whole = bgzf(fastq_bytes(random_records(3, 3000)))
    path = tmp_path / "cut.fq.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        FormatError,
        match=r"cut\.fq\.gz: byte \d+: (a BGZF block is cut short|no BGZF end-of-file block)",
    ):
        names(partition(str(path), n=3))


@pytest.mark.timeout(60)
def test_a_corrupt_block(tmp_path):
    whole = bytearray(bgzf(fastq_bytes(random_records(3, 3000))))
    whole[100:110] = b"\xff" * 10
    path = tmp_path / "bad.fq.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(FormatError, match=r"bad\.fq\.gz: byte 0: bad BGZF block"):
        names(partition(str(path), n=1))

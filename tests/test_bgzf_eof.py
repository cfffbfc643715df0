"""BGZF text files cut at a block boundary are refused; scanning for a record start is linear.

A BGZF file ends with bgzip's empty end-of-file block: one cut at a block boundary
(its last blocks gone) is still whole blocks, so only that block tells it was cut.
Planning checks it (one 28-byte read) and so does reading the last partition. Looking
for the next record start inflates each block once and shows the format's boundary rule
each byte a bounded number of times, whatever the length of a sequence.
"""

from __future__ import annotations

import gzip
import random

import pytest

pytest.importorskip("dnaio")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aifdata import FormatError
from aifdata.codecs.bgzf import MAX_BLOCK, BgzfStream, block_size_at
from aifdata.formats import Partition, RangeSource, fasta, fastq, get, jsonl, partition, sam, vcf

from .test_bgzf import EOF_BLOCK, bgzf
from .test_fastq import fastq_bytes, random_records


def fasta_bytes(count: int) -> bytes:
    rng = random.Random(3)
    out = []
    for i in range(count):
        seq = "".join(rng.choices("ACGT", k=rng.randint(10, 400)))
        out.append(f">s{i}\n" + "".join(seq[j : j + 60] + "\n" for j in range(0, len(seq), 60)))
    return "".join(out).encode()


def vcf_bytes(count: int) -> bytes:
    head = "##fileformat=VCFv4.2\n##contig=<ID=1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    lines = (f"1\t{i + 1}\t.\tA\tC\t50\tPASS\tDP={i}\n" for i in range(count))
    return (head + "".join(lines)).encode()


def sam_bytes(count: int) -> bytes:
    head = "@HD\tVN:1.6\tSO:unsorted\n@SQ\tSN:chr1\tLN:1000000\n"
    lines = (f"r{i}\t0\tchr1\t{i + 1}\t60\t8M\t*\t0\t0\tACGTACGT\tIIIIIIII\n" for i in range(count))
    return (head + "".join(lines)).encode()


TEXTS = {
    "fastq": ("reads.fq.gz", lambda: fastq_bytes(random_records(5, 800))),
    "fasta": ("seqs.fa.gz", lambda: fasta_bytes(600)),
    "vcf": ("calls.vcf.gz", lambda: vcf_bytes(3000)),
    "sam": ("aln.sam.gz", lambda: sam_bytes(2000)),
}


def block_starts(data: bytes) -> list[int]:
    pos, starts = 0, []
    while pos < len(data):
        starts.append(pos)
        size = block_size_at(data, pos)
        assert size is not None
        pos += size
    return starts


def cut_at_a_block(tmp_path, format: str) -> tuple[str, int]:
    """A BGZF file of ``format`` without its last data block and its end-of-file block."""
    name, make = TEXTS[format]
    whole = bgzf(make(), block=5000)
    assert whole.endswith(EOF_BLOCK)
    starts = block_starts(whole)
    assert len(starts) > 4
    path = tmp_path / name
    path.write_bytes(whole[: starts[-2]])
    return str(path), starts[-2]


@pytest.mark.parametrize("format", sorted(TEXTS))
def test_whole_files_still_read(tmp_path, format):
    name, make = TEXTS[format]
    path = tmp_path / name
    path.write_bytes(bgzf(make(), block=5000))
    parts = partition(str(path), n=3)
    assert [p["codec"] for p in parts] == ["bgzf"] * 3
    assert sum(len(p.read()) for p in parts) > 500


@pytest.mark.parametrize("format", sorted(TEXTS))
@pytest.mark.parametrize("n", [2, 5])
def test_planning_a_file_cut_at_a_block_boundary_is_refused(tmp_path, format, n):
    url, size = cut_at_a_block(tmp_path, format)
    name = TEXTS[format][0]
    message = rf"{name}: byte {size}: no BGZF end-of-file block: the file is truncated\?"
    with pytest.raises(FormatError, match=message):
        get(format).plan(RangeSource(url), n=n)


@pytest.mark.parametrize("format", sorted(TEXTS))
def test_a_one_partition_plan_of_a_cut_file_is_refused_by_plan_or_read(tmp_path, format):
    url, size = cut_at_a_block(tmp_path, format)
    with pytest.raises(FormatError, match=rf"byte {size}: no BGZF end-of-file block"):
        [r for p in partition(url, n=1) for r in p.read()]


@pytest.mark.parametrize("format", sorted(TEXTS))
def test_reading_the_last_partition_of_a_cut_file_is_refused(tmp_path, format):
    """Partitions planned on the whole file, read after it lost its last blocks: the
    last partition says so; the others, which do not reach the end, read as before."""
    name, make = TEXTS[format]
    path = tmp_path / name
    whole = bgzf(make(), block=5000)
    path.write_bytes(whole)
    planned = partition(str(path), n=2)
    size = block_starts(whole)[-2]
    path.write_bytes(whole[:size])
    fingerprint = RangeSource(str(path)).fingerprint
    first, last = (
        Partition.make(p.url, p.format, p.ordinal, fingerprint, **{**p.options, "end": end})
        for p, end in zip(planned, (planned[0]["end"], size), strict=True)
    )
    assert len(first.read()) > 100
    with pytest.raises(FormatError, match=rf"{name}: byte {size}: no BGZF end-of-file block"):
        last.read()


def test_planning_reads_the_end_of_file_block_once(tmp_path):
    name, make = TEXTS["vcf"]
    path = tmp_path / name
    path.write_bytes(bgzf(make(), block=5000))
    plain = RangeSource(str(path))
    get("vcf").plan(plain, n=4)
    data = (tmp_path / name).read_bytes()
    (tmp_path / "cut.vcf.gz").write_bytes(data[:-28])
    with pytest.raises(FormatError, match=r"cut\.vcf\.gz: byte \d+: no BGZF end-of-file block"):
        get("vcf").plan(RangeSource(str(tmp_path / "cut.vcf.gz")), n=4)


def test_a_vcf_written_by_pysam_and_cut_is_refused(tmp_path):
    """The reviewer's case: bgzip (through pysam) writes it, the last blocks go missing."""
    pysam = pytest.importorskip("pysam")
    text = tmp_path / "v.vcf"
    text.write_bytes(vcf_bytes(5000))
    pysam.tabix_compress(str(text), str(tmp_path / "v.vcf.gz"), force=True)
    whole = (tmp_path / "v.vcf.gz").read_bytes()
    starts = block_starts(whole)
    for drop in (1, 2):  # the end-of-file block; it and the last data block
        cut = tmp_path / f"cut{drop}.vcf.gz"
        cut.write_bytes(whole[: starts[-drop]])
        with pytest.raises(FormatError, match=rf"byte {starts[-drop]}: no BGZF end-of-file"):
            [r for p in partition(str(cut), n=2) for r in p.read()]
    assert sum(len(p.read()) for p in partition(str(tmp_path / "v.vcf.gz"), n=2)) == 5000


# -- scanning for a record start ---------------------------------------------------------


class Memory:
    """A file in memory, counting what is read."""

    def __init__(self, data: bytes, url: str = "mem.gz") -> None:
        self.data, self.url, self.requests, self.bytes_read = data, url, 0, 0

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, start: int, end: int) -> bytes:
        self.requests += 1
        piece = self.data[max(0, start) : min(end, len(self.data))]
        self.bytes_read += len(piece)
        return piece


RULES = {
    "fastq": fastq.first_header,
    "fasta": fasta.first_header,
    "vcf": vcf.first_record,
    "sam": sam.first_record,
    "jsonl": jsonl.line_start,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=st.sampled_from(sorted(RULES)),
    text=st.binary(max_size=600).map(lambda b: bytes(b"@+>#A\n\n"[x % 7] for x in b)),
    block=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_scanning_block_by_block_finds_what_the_rule_finds_in_the_whole(rule, text, block, seed):
    """Any bytes (lines of '@', '+', '>', '#' in any order), in blocks of any size: the
    record start found a block at a time is the one the rule finds in all the bytes."""
    data = bgzf(text, block=block, seed=seed)
    stream = BgzfStream(Memory(data))
    boundary = RULES[rule]
    for at in block_starts(data)[:-1]:
        rest = b"".join(p for _, p in _all_blocks(data, at))
        expected = boundary(rest, True) if rest else None
        found, blocks = stream.scan(at, boundary)
        assert found == expected
        index, holder = stream.start_of(at, boundary)
        assert index == expected
        if found is not None:
            inflated = b"".join(piece for _, piece in blocks)
            assert len(inflated) > found or (rule == "jsonl" and len(inflated) == found)
            assert holder == _holder(blocks, found)


def _all_blocks(data: bytes, at: int) -> list[tuple[int, bytes]]:
    sizes = [(s, block_size_at(data, s) or 0) for s in block_starts(data) if s >= at]
    return [(s, gzip.decompress(data[s : s + n])) for s, n in sizes]


def _holder(blocks: list[tuple[int, bytes]], index: int) -> int:
    for at, piece in blocks:
        if index < len(piece):
            return at
        index -= len(piece)
    return blocks[-1][0]


@pytest.mark.timeout(120)
def test_scanning_one_long_sequence_looks_at_each_block_once():
    """One 32 MiB sequence (60 residues a line), then the next header: the scan inflates
    each block once and shows the rule each byte about once, not once per block."""
    body = (b"ACGTTGCA" * 8)[:60] + b"\n"
    lines = 32 * 2**20 // len(body)
    text = b">chr1\n" + body * lines + b">chr2\nACGT\n"
    data = bgzf(text, block=MAX_BLOCK - 1024)
    source = Memory(data, "one.fa.gz")
    calls, examined = [], [0]

    def counting(chunk: bytes, at_eof: bool) -> int | None:
        calls.append(len(chunk))
        examined[0] += len(chunk)
        return fasta.first_header(chunk, at_eof)

    stream = BgzfStream(source)
    found, looked = stream.scan(0, counting)
    assert found == text.index(b">chr2")
    blocks = len(block_starts(data))
    assert len(looked) == blocks - 1  # all but the end-of-file block, each once
    assert len(calls) <= blocks
    assert examined[0] <= len(text) + blocks * 4 * len(body)  # each byte, plus a few lines
    assert source.bytes_read <= len(data) + 4 * MAX_BLOCK  # each block read once
    calls.clear()
    index, holder = stream.start_of(0, counting)  # the same, keeping no inflated block
    assert (index, holder) == (found, block_starts(data)[found // (MAX_BLOCK - 1024)])


@pytest.mark.timeout(120)
def test_scanning_fastq_with_long_reads_stays_linear():
    """FASTQ records of 1 MiB reads: the rule needs lines of look-back, not all the data."""
    seq = b"ACGT" * 2**18
    record = b"@r\n" + seq + b"\n+\n" + b"I" * len(seq) + b"\n"
    text = b"I" + record * 12  # the first byte: the tail of a quality line before
    data = bgzf(text, block=MAX_BLOCK - 1024)
    examined = [0]

    def counting(chunk: bytes, at_eof: bool) -> int | None:
        examined[0] += len(chunk)
        return fastq.first_header(chunk, at_eof)

    found, _ = BgzfStream(Memory(data)).start_of(0, counting)
    assert found == 1 + len(record)  # the first '@r' follows no newline: not a line start
    assert examined[0] <= 6 * len(text)

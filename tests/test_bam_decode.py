"""BAM record decoding in bulk: batch edges, absent fields, and faults named per record."""

from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest

pysam = pytest.importorskip("pysam")

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, _bam_records, get  # noqa: E402
from aifdata.formats._bam_tags import first_bad_tags, tags_fault  # noqa: E402

from .test_bam import (  # noqa: E402
    EOF_BLOCK,
    as_tuple,
    bgzf_block,
    header,
    reblock,
    reference,
    write_bam,
)


def read_all(path: Path, n: int) -> list[tuple]:
    parts = get("bam").plan(RangeSource(str(path)), n=n, index=False)
    return [as_tuple(r) for p in parts for r in p.read()]


def record_starts(raw: bytes) -> list[int]:
    """Where each record starts in a BAM's inflated bytes."""
    at = 8 + struct.unpack_from("<i", raw, 4)[0]
    count = struct.unpack_from("<i", raw, at)[0]
    at += 4
    for _ in range(count):
        at += 8 + struct.unpack_from("<i", raw, at)[0]
    starts = []
    while at < len(raw):
        starts.append(at)
        at += 4 + struct.unpack_from("<i", raw, at)[0]
    return starts


@pytest.mark.parametrize("blocks", ["htslib", "small"])
def test_any_batch_size_gives_the_same_records(tmp_path, monkeypatch, blocks):
    """Blocks inflated and records decoded a batch at a time, the bytes before each batch
    dropped: any batch size, records across many blocks or over 64 KiB, as pysam."""
    path = write_bam(tmp_path / "b.bam", count=1500, index=False, long_reads=2)
    if blocks == "small":
        reblock(path, low=100, high=2000)
    expected = reference(path)
    for budget in (1, 300, 3000, 70_000, 2**20):
        monkeypatch.setattr(_bam_records, "BATCH_BYTES", budget)
        for n in (1, 3, 8):
            assert read_all(path, n) == expected, (budget, n)


def test_every_field_has_pysams_type(tmp_path):
    path = write_bam(tmp_path / "t.bam", count=300, index=False)
    with pysam.AlignmentFile(str(path)) as f:
        theirs = list(f.fetch(until_eof=True))
    ours = [r for p in get("bam").plan(RangeSource(str(path)), n=2) for r in p.read()]
    assert len(ours) == len(theirs)
    for mine, peer in zip(ours, theirs, strict=True):
        for field in ("reference_end", "reference_start", "flag", "mapping_quality",
                      "template_length", "next_reference_start", "reference_id"):  # fmt: skip
            assert type(getattr(mine, field)) is type(getattr(peer, field)), field
    assert get("bam").to_arrow(get("bam").plan(RangeSource(str(path)), n=1)[0]).column(
        "reference_end"
    ).to_pylist() == [r.reference_end for r in theirs]


def test_records_without_sequence_qualities_or_cigar(tmp_path):
    """SEQ '*', QUAL '*', CIGAR '*', odd lengths, a CIGAR on no reference base: as pysam."""
    path = tmp_path / "sparse.bam"
    rng = random.Random(3)
    with pysam.AlignmentFile(str(path), "wb", header=header(2)) as out:
        for i in range(400):
            a = pysam.AlignedSegment(out.header)
            a.query_name = f"q{i}"
            kind = i % 5
            size = rng.randint(1, 60) | 1  # odd lengths: a half-used last byte of bases
            if kind != 0:
                a.query_sequence = "".join(rng.choices("ACGTN", k=size))
            if kind in (2, 3):
                a.query_qualities = pysam.qualitystring_to_array("I" * size)
            a.reference_id, a.reference_start = i % 2, 1000 + i
            a.flag = 256 if kind == 0 else 0
            a.cigarstring = {0: "30M", 1: None, 2: f"{size}M", 3: f"{size}I", 4: f"{size}S"}[kind]
            if kind == 1:
                a.flag = 4
            a.next_reference_id, a.next_reference_start = -1, -1
            out.write(a)
    expected = reference(path)
    assert {r[6] is None for r in expected} == {True, False}
    assert {r[7] is None for r in expected} == {True, False}
    assert {r[5] is None for r in expected} == {True, False}
    for n in (1, 2, 5):
        assert read_all(path, n) == expected


def _rewritten(path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    change(raw, record_starts(bytes(raw)))
    path.write_bytes(bgzf_block(bytes(raw)) + EOF_BLOCK)
    return path


@pytest.mark.parametrize("budget", [500, 2**20])
def test_a_cigar_code_above_8_names_its_record(tmp_path, monkeypatch, budget):
    monkeypatch.setattr(_bam_records, "BATCH_BYTES", budget)  # earlier batches dropped
    path = write_bam(tmp_path / "c.bam", count=40, index=False)
    where = {}

    def change(raw: bytearray, starts: list[int]) -> None:
        mapped = [p for p in starts if struct.unpack_from("<H", raw, p + 16)[0]]  # n_cigar_op
        p = where["at"] = mapped[7]
        cigar = p + 36 + raw[p + 12]  # past the fixed fields and the name
        raw[cigar] = (raw[cigar] & 0xF0) | 9  # op code 9: none such

    _rewritten(path, change)
    why = rf"c\.bam: byte 0 \(a BGZF block\), uncompressed byte {where['at']} in it: a CIGAR"
    for n in (1, 2):
        with pytest.raises(FormatError, match=why + " operation code above 8"):
            read_all(path, n)


@pytest.mark.parametrize("budget", [500, 2**20])
def test_a_read_name_that_is_not_ascii_names_its_record(tmp_path, monkeypatch, budget):
    monkeypatch.setattr(_bam_records, "BATCH_BYTES", budget)
    path = write_bam(tmp_path / "n.bam", count=30, index=False)
    where = {}

    def change(raw: bytearray, starts: list[int]) -> None:
        p = where["at"] = starts[11]
        raw[p + 37] = 0xE9  # the name's second byte

    _rewritten(path, change)
    with pytest.raises(FormatError, match=rf"n\.bam: byte 0 \(a BGZF block\), uncompressed byte"
                       rf" {where['at'] + 36} in it: a read name that is not ASCII"):  # fmt: skip
        read_all(path, 1)


def _tag() -> bytes:
    rng = _RNG
    kind = rng.choice("AcCsSiIfZHB")
    if kind in "AcC":
        return b"XY" + kind.encode() + bytes([rng.randrange(256)])
    if kind in "sSiIf":
        return b"XY" + kind.encode() + bytes(2 if kind in "sS" else 4)
    if kind in "ZH":
        text = bytes(rng.randrange(33, 127) for _ in range(rng.randrange(6)))
        return b"XY" + kind.encode() + text + b"\0"
    sub = rng.choice("cCsSiIf")
    count = rng.randrange(4)
    width = {"c": 1, "C": 1, "s": 2, "S": 2}.get(sub, 4)
    return b"XYB" + sub.encode() + struct.pack("<I", count) + bytes(count * width)


_RNG = random.Random(1)


def _tags() -> bytes:
    tags = b"".join(_tag() for _ in range(_RNG.randrange(5)))
    roll = _RNG.random()
    if roll < 0.3 and tags:  # a byte or two changed: a type, a NUL, a size
        mutated = bytearray(tags)
        for _ in range(_RNG.randrange(1, 3)):
            mutated[_RNG.randrange(len(mutated))] = _RNG.choice([0, 66, 72, 90, 81, 255])
        return bytes(mutated)
    if roll < 0.4 and tags:
        return tags[: _RNG.randrange(len(tags))]  # cut short
    if roll < 0.45:
        return tags + bytes(_RNG.randrange(256) for _ in range(_RNG.randrange(1, 6)))
    return tags


def test_the_bulk_tag_check_finds_the_record_the_one_by_one_check_refuses():
    for _ in range(1500):
        records = [_tags() for _ in range(_RNG.randrange(1, 25))]
        buf, starts, ends = b"", [], []
        for tags in records:
            buf += bytes(_RNG.randrange(256) for _ in range(_RNG.randrange(4)))  # other fields
            starts.append(len(buf))
            buf += tags
            ends.append(len(buf))
        found = first_bad_tags(np.frombuffer(buf + b"\0\0", np.uint8), np.array(starts),
                               np.array(ends))  # fmt: skip
        faulty = [i for i, tags in enumerate(records) if tags_fault(tags) is not None]
        assert found == (faulty[0] if faulty else -1), records

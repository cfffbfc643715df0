"""BAM partitions: exact against pysam, by guessing record starts and from a .bai."""

from __future__ import annotations

import array
import functools
import gzip
import pickle
import random
import re
import struct
import tempfile
import zlib
from pathlib import Path

import pytest

pysam = pytest.importorskip("pysam")

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.bam import CHAIN, record_length, tags_fault  # noqa: E402

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
EXAMPLE_BAM = RealFile(
    "bamnostic", "1.3", "bamnostic/data/example.bam",
    "5b3237673a04a18cd09c79ba67f742a7cf85908f01d958372db566963579fc1e", "BSD-3-Clause",
)  # fmt: skip
EXAMPLE_BAI = RealFile(
    "bamnostic", "1.3", "bamnostic/data/example.bam.bai",
    "93268c9e30c9e37444ee8ce1da4508f5256477a873040bf65deccaa452cea901", "BSD-3-Clause",
)  # fmt: skip
BEDTOOLS_BAM = RealFile(
    "pybedtools", "0.12.1", "pybedtools/test/data/x.bam",
    "a7869fc9f391574d8076c40f53a456f6d2f500d233b76ab430b2b78040e78a7c", "MIT",
)  # fmt: skip


# -- writing test files with pysam ----------------------------------------------------


def header(refs: int = 3, length: int = 1_000_000) -> dict:
    return {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": f"chr{i}", "LN": length} for i in range(refs)],
    }


def segment(out, rng: random.Random, i: int, refs: int, length: int = 0, mapped: bool = True):
    a = pysam.AlignedSegment(out.header)
    a.query_name = f"read{i}"
    size = length or rng.randint(30, 160)
    a.query_sequence = "".join(rng.choices("ACGTN", k=size))
    a.query_qualities = pysam.qualitystring_to_array(
        "".join(chr(33 + rng.randint(0, 41)) for _ in range(size))
    )
    if not mapped or rng.random() < 0.1:
        a.flag = 4  # unmapped, unplaced
        a.reference_id, a.reference_start = -1, -1
        return a
    a.flag = rng.choice([0, 16, 99, 147, 256, 2048, 256 | 16, 1024])
    a.reference_id = rng.randrange(refs)
    a.reference_start = rng.randrange(900_000)
    a.mapping_quality = rng.randint(0, 60)
    clip = rng.randint(0, min(5, size - 1))
    a.cigarstring = f"{clip}S{size - clip}M" if clip else f"{size}M"
    a.next_reference_id, a.next_reference_start = a.reference_id, a.reference_start + 200
    a.template_length = rng.randint(-400, 400)
    a.set_tags([("NM", rng.randint(0, 5)), ("RG", "grp1"), ("XB", [1, 2, 3])])
    return a


def write_bam(
    path: Path, count: int = 3000, refs: int = 3, seed: int = 1, index: bool = True,
    long_reads: int = 0,
) -> Path:  # fmt: skip
    """A coordinate-sorted BAM (and its .bai) of ``count`` reads, with pysam; made once per
    run for each set of arguments, then copied (many tests share one: the same bytes)."""
    data, bai = _bam_bytes(count, refs, seed, index, long_reads)
    path.write_bytes(data)
    if bai is not None:
        Path(str(path) + ".bai").write_bytes(bai)
    return path


@functools.lru_cache(maxsize=16)
def _bam_bytes(
    count: int, refs: int, seed: int, index: bool, long_reads: int
) -> tuple[bytes, bytes | None]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "made.bam"
        unsorted = path.with_suffix(".unsorted.bam")
        with pysam.AlignmentFile(str(unsorted), "wb", header=header(refs)) as out:
            for i in range(count):
                out.write(segment(out, rng, i, refs))
            for i in range(long_reads):
                out.write(segment(out, rng, count + i, refs, length=70_000 + 997 * i))
        pysam.sort("-o", str(path), str(unsorted))
        if index:
            pysam.index(str(path))
        bai = Path(str(path) + ".bai").read_bytes() if index else None
        return path.read_bytes(), bai


def bgzf_block(data: bytes) -> bytes:
    deflated = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflated.compress(data) + deflated.flush()
    head = struct.pack("<4sIBBHBBHH", b"\x1f\x8b\x08\x04", 0, 0, 255, 6, 66, 67, 2,
                       len(body) + 25)  # fmt: skip
    return head + body + struct.pack("<II", zlib.crc32(data), len(data))


EOF_BLOCK = bgzf_block(b"")


def reblock(path: Path, seed: int = 7, low: int = 100, high: int = 3000) -> Path:
    """``path`` rewritten in BGZF blocks of random sizes, so records run across blocks
    (htslib itself starts a block rather than split a record smaller than one)."""
    raw = gzip.decompress(path.read_bytes())
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(raw):
        size = rng.randint(low, high)
        pieces.append(bgzf_block(raw[at : at + size]))
        at += size
    path.write_bytes(b"".join(pieces) + EOF_BLOCK)
    return path


def reference(path: Path) -> list[tuple]:
    with pysam.AlignmentFile(str(path), check_sq=False) as f:
        return [as_tuple(r) for r in f.fetch(until_eof=True)]


def as_tuple(r) -> tuple:
    quals = None if r.query_qualities is None else list(r.query_qualities)
    tags = [(k, list(v) if hasattr(v, "typecode") else v) for k, v in r.get_tags()]
    return (
        r.query_name, r.flag, r.reference_name, r.reference_start, r.mapping_quality,
        r.cigarstring, r.query_sequence, quals, tags, r.reference_end,
        r.next_reference_name, r.next_reference_start, r.template_length,
    )  # fmt: skip


def fetched(f, region: str):
    """pysam's fetch of a samtools region (1-based, inclusive; commas; an open end)."""
    name, _, span = region.partition(":")
    first, _, last = span.replace(",", "").partition("-")
    return f.fetch(name, int(first) - 1 if first else None, int(last) if last else None)


def read_all(parts) -> list[tuple]:
    return [as_tuple(r) for p in parts for r in p.read()]


def check_exact(path: Path, index: bool | None = None, counts=COUNTS) -> None:
    expected = reference(path)
    plans = [{"n": n} for n in counts] + [{"target_bytes": max(1, path.stat().st_size // 6)}]
    for plan in plans:
        parts = get("bam").plan(RangeSource(str(path)), index=index, **plan)
        got = read_all(parts)
        assert len(got) == len(expected), plan
        assert got == expected, plan
        starts = [p["chunks"][0][0] for p in parts]
        assert starts == sorted(set(starts))


# -- exactness on the hard cases ------------------------------------------------------


@pytest.mark.parametrize("index", [False, None], ids=["guessed", "bai"])
def test_records_spanning_blocks_read_back_exactly(tmp_path, index):
    path = reblock(write_bam(tmp_path / "span.bam", count=2500, index=False))
    pysam.index(str(path))
    raw = gzip.decompress(path.read_bytes())
    assert len(path.read_bytes()) > 40 * len(EOF_BLOCK) and len(raw) > 100_000
    check_exact(path, index=index)


def test_long_reads_over_64_kib_read_back_exactly(tmp_path):
    path = write_bam(tmp_path / "long.bam", count=400, long_reads=4)
    assert max(len(r[6] or "") for r in reference(path)) > 65536
    check_exact(path, index=False)
    check_exact(path, index=None)


def test_many_references_header_over_several_blocks(tmp_path):
    path = write_bam(tmp_path / "refs.bam", count=1500, refs=6000)
    with pysam.AlignmentFile(str(path)) as f:
        assert f.nreferences == 6000
    bam = get("bam")
    assert bam.header(RangeSource(str(path))).first >> 16 > 0  # records start past block 0
    check_exact(path, index=False, counts=(1, 3, 8))
    check_exact(path, index=None, counts=(1, 3, 8))


def test_unmapped_secondary_supplementary_flags(tmp_path):
    path = write_bam(tmp_path / "flags.bam", count=2000, seed=3)
    records = reference(path)
    flags = {r[1] for r in records}
    assert {4, 256, 2048} <= flags
    assert any(r[2] is None for r in records)  # unplaced reads, refID -1, at the end
    check_exact(path)
    parts = get("bam").plan(RangeSource(str(path)), n=3)
    got = [r for p in parts for r in p.read()]
    assert sum(r.is_unmapped for r in got) == sum(1 for r in records if r[1] & 4)
    assert sum(r.is_secondary for r in got) == sum(1 for r in records if r[1] & 256)
    assert sum(r.is_supplementary for r in got) == sum(1 for r in records if r[1] & 2048)


def test_a_header_only_file_has_no_partitions(tmp_path):
    path = tmp_path / "empty.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header()):
        pass
    assert reference(path) == []
    assert get("bam").plan(RangeSource(str(path)), n=4) == []
    assert partition(str(path), n=4) == []


def test_partitions_pickle_small_and_read_in_another_process_shape(tmp_path):
    path = write_bam(tmp_path / "p.bam", count=800)
    for parts in (partition(str(path), n=5),
                  get("bam").plan(RangeSource(str(path)), n=3, region="chr1")):  # fmt: skip
        for p in parts:
            blob = pickle.dumps(p)
            assert len(blob) < 1024
            assert pickle.loads(blob) == p
            assert "secret" not in repr(p).lower()


def test_detected_by_name_and_by_content(tmp_path):
    path = write_bam(tmp_path / "d.bam", count=50, index=False)
    renamed = path.rename(tmp_path / "reads.data")
    parts = partition(str(renamed), n=2)
    assert parts and {p.format for p in parts} == {"bam"}
    assert "bam" in aifdata.formats.available()


def test_arrow_and_pandas(tmp_path):
    path = write_bam(tmp_path / "t.bam", count=3000)
    parts = partition(str(path), n=2)
    table = get("bam").to_arrow(parts[0])
    assert table.num_rows == len(parts[0].read())
    assert table.column_names[:4] == ["query_name", "flag", "reference_name", "reference_start"]
    frame = parts[1].to_pandas()
    first = parts[1].read()[0]
    assert frame["query_name"][0] == first.query_name
    assert frame["query_qualities"][0] == "".join(chr(q + 33) for q in first.query_qualities)
    assert "NM:i:" in frame["tags"][0] or first.flag & 4


# -- regions, with a .bai ----------------------------------------------------------------


@pytest.mark.parametrize(
    "region", ["chr1:100000-300000", "chr0", "chr2:1-10", "chr1:500,001-500,200", "chr2:899000"]
)
def test_regions_match_pysam_fetch(tmp_path, region):
    path = write_bam(tmp_path / "r.bam", count=3000)
    with pysam.AlignmentFile(str(path)) as f:
        expected = [as_tuple(r) for r in fetched(f, region)]
    for n in (*COUNTS, None):
        source = RangeSource(str(path))
        parts = get("bam").plan(source, n=n, target_bytes=None if n else 20_000, region=region)
        assert read_all(parts) == expected, n
        assert source.requests <= 2 * max(1, len(parts)) + 3  # + the .bai and its end check


def test_region_plans_cost_at_most_two_requests_per_partition(tmp_path):
    path = write_bam(tmp_path / "cost.bam", count=20_000)
    for n in (4, 8):
        source = RangeSource(str(path))
        parts = get("bam").plan(source, n=n, region="chr1")
        assert len(parts) == n
        assert source.requests <= 2 * len(parts)
        source = RangeSource(str(path))
        parts = get("bam").plan(source, n=n)  # the whole file, split at the index's offsets
        assert source.requests <= 2 * len(parts)


def test_region_without_an_index_is_refused(tmp_path):
    path = write_bam(tmp_path / "noindex.bam", count=50, index=False)
    with pytest.raises(FormatError, match=r"needs a BAM index \(\.bai\)"):
        get("bam").plan(RangeSource(str(path)), region="chr1")
    write_bam(tmp_path / "i.bam", count=50)
    for region, why in [
        ("chrX:1-10", "no reference 'chrX' in this BAM"),
        ("chrX", "no reference 'chrX' in this BAM"),
        ("chr1:x-10", "expected NAME, NAME:BEG or NAME:BEG-END"),
        ("chr1:20-10", "an empty or negative interval"),
    ]:
        with pytest.raises(FormatError, match=rf"i\.bam: .*{re.escape(why)}"):
            get("bam").plan(RangeSource(str(tmp_path / "i.bam")), region=region)


def test_an_index_of_another_file_is_refused_or_ignored(tmp_path):
    path = write_bam(tmp_path / "a.bam", count=3000, seed=1)
    other = write_bam(tmp_path / "b.bam", count=9000, seed=2)
    Path(str(path) + ".bai").write_bytes(Path(str(other) + ".bai").read_bytes())
    with pytest.raises(FormatError, match=r"a\.bam\.bai.*(past the end|does not hold)"):
        get("bam").plan(RangeSource(str(path)), n=4, region="chr1")
    with pytest.warns(UserWarning, match="planning without the index"):
        parts = get("bam").plan(RangeSource(str(path)), n=4)
    assert read_all(parts) == reference(path)


def test_a_stale_index_whose_offsets_fit_is_caught_by_the_record_rule(tmp_path):
    path = write_bam(tmp_path / "a.bam", count=6000, seed=1)
    other = write_bam(tmp_path / "b.bam", count=6000, seed=5)  # same shape, other reads
    Path(str(path) + ".bai").write_bytes(Path(str(other) + ".bai").read_bytes())
    expected = [r for r in reference(path) if r[2] == "chr1"]
    with pytest.raises(FormatError, match=r"a\.bam|past the end|does not hold|not a record"):
        parts = get("bam").plan(RangeSource(str(path)), n=6, region="chr1")
        assert read_all(parts) == expected  # never a silently wrong answer
        raise AssertionError("the stale index happened to fit: read back right")


def test_a_corrupt_index_names_the_index_and_offset(tmp_path):
    path = write_bam(tmp_path / "c.bam", count=500)
    bai = Path(str(path) + ".bai")
    data = bai.read_bytes()
    bai.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"c\.bam\.bai: byte \d+: the index is cut short"):
        get("bam").plan(RangeSource(str(path)), region="chr1")
    bai.write_bytes(b"XXXX" + data[4:])
    with pytest.raises(FormatError, match=r"c\.bam\.bai: byte 0: not a BAM index"):
        get("bam").plan(RangeSource(str(path)), region="chr1")


def test_an_index_named_without_bam_is_found(tmp_path):
    path = write_bam(tmp_path / "s.bam", count=500)
    Path(str(path) + ".bai").rename(tmp_path / "s.bai")
    parts = get("bam").plan(RangeSource(str(path)), n=2, region="chr2")
    with pysam.AlignmentFile(str(path), index_filename=str(tmp_path / "s.bai")) as f:
        assert read_all(parts) == [as_tuple(r) for r in f.fetch("chr2")]


# -- the record rule against data that looks like records ---------------------------------


def encoded(a) -> bytes:
    """One record's bytes as BAM stores them (block_size first), through pysam."""
    return bytes(a.to_bytes()) if hasattr(a, "to_bytes") else _encode(a)


def _encode(a) -> bytes:
    name = a.query_name.encode() + b"\0"
    seq = a.query_sequence or ""
    codes = {c: i for i, c in enumerate("=ACMGRSVTWYHKDBN")}
    packed = bytes(
        codes[seq[i]] << 4 | (codes[seq[i + 1]] if i + 1 < len(seq) else 0)
        for i in range(0, len(seq), 2)
    )
    cigar = b"".join(struct.pack("<I", n << 4 | op) for op, n in (a.cigartuples or []))
    quals = bytes(a.query_qualities) if a.query_qualities is not None else b"\xff" * len(seq)
    body = struct.pack(
        "<iiBBHHHiiii", a.reference_id, a.reference_start, len(name), a.mapping_quality,
        4680, len(cigar) // 4, a.flag, len(seq), a.next_reference_id,
        a.next_reference_start, a.template_length,
    ) + name + cigar + packed + quals  # fmt: skip
    return struct.pack("<i", len(body)) + body


def test_look_alike_bytes_in_qualities_and_tags_do_not_fool_the_guess(tmp_path):
    """Qualities holding a record's fixed fields, tags holding whole records: exact."""
    rng = random.Random(11)
    path = tmp_path / "tricky.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header(2)) as out:
        for i in range(3000):
            a = segment(out, rng, i, 2)
            fake = _encode(segment(out, rng, 10**6 + i, 2, length=20))
            if i % 3 == 0:  # a whole record in a B array tag (one, not a chain)
                a.set_tag("XF", array.array("B", fake))
            if i % 3 == 1 and a.query_qualities is not None:  # a record's head in qualities
                size = len(a.query_sequence)
                head = [min(b, 93) for b in fake[:36]][:size]
                a.query_qualities = pysam.qualitystring_to_array(
                    "".join(chr(q + 33) for q in head + list(a.query_qualities)[len(head) :])
                )
            out.write(a)
    reblock(path, low=150, high=900)
    check_exact(path, index=False)


def test_a_crafted_chain_of_records_in_qualities_does_not_fool_the_guess(tmp_path):
    """Qualities that hold several whole records in a row (the chain check alone would
    take them): the search starts a block earlier and steps over the record whole."""
    rng = random.Random(5)
    path = tmp_path / "crafted.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header(1)) as out:
        fakes = b""
        for j in range(CHAIN + 1):
            f = pysam.AlignedSegment(out.header)
            f.query_name, f.flag, f.reference_id, f.reference_start = f"FAKE{j}", 0, 0, 5
            f.next_reference_id, f.next_reference_start = 0, 0
            fakes += _encode(f)
        assert max(fakes) <= 93  # all of it fits in a quality string
        for i in range(400):
            a = segment(out, rng, i, 1)
            if i % 10 == 5:
                a.query_sequence = "A" * len(fakes)
                a.query_qualities = pysam.qualitystring_to_array(
                    "".join(chr(b + 33) for b in fakes)
                )
                a.cigarstring = f"{len(fakes)}M"
                a.set_tags([])
            out.write(a)
    reblock(path, low=120, high=500)  # many block starts inside the crafted records
    expected = reference(path)
    assert not any(r[0].startswith("FAKE") for r in expected)
    for n in (3, 5, 8, 17, 40, 100):
        assert read_all(get("bam").plan(RangeSource(str(path)), n=n, index=False)) == expected


def test_a_boundary_inside_a_record_is_refused_by_the_partition_before(tmp_path):
    """What a fooled guess (or a lying index) would give: the partition before a
    boundary that is not a record start says so instead of returning records."""
    path = write_bam(tmp_path / "b.bam", count=3000, index=False)
    parts = get("bam").plan(RangeSource(str(path)), n=2)
    (a, middle), (_, end) = parts[0]["chunks"][0], parts[1]["chunks"][0]
    wrong = middle + 7  # seven bytes into the first record of the second partition
    first = aifdata.formats.Partition.make(
        str(path), "bam", 0, parts[0].fingerprint, chunks=((a, wrong),), region=None
    )
    second = aifdata.formats.Partition.make(
        str(path), "bam", 1, parts[0].fingerprint, chunks=((wrong, end),), region=None
    )
    with pytest.raises(FormatError, match=r"ends past the partition's end.*not a record start"):
        first.read()
    with pytest.raises(FormatError, match="expected a BAM record at this partition's start"):
        second.read()


def test_the_rule_refuses_single_corruptions_of_a_record():
    out = pysam.AlignmentFile("/dev/null", "wb", header=header(2))  # only for its header
    a = segment(out, random.Random(1), 1, 2)
    good = _encode(a)
    assert record_length(good, 0, 2) == len(good)
    assert record_length(good[:40], 0, 2) is None  # not settled yet
    bad = bytearray(good)
    bad[4:8] = struct.pack("<i", 2)  # refID past n_ref
    assert record_length(bytes(bad), 0, 2) == 0
    bad = bytearray(good)
    bad[36 + len(a.query_name)] = ord("x")  # no NUL after the name
    assert record_length(bytes(bad), 0, 2) == 0
    bad = bytearray(good)
    bad[0:4] = struct.pack("<i", len(good) - 4 + 3)  # tags must fill the record exactly
    assert record_length(bytes(bad) + b"XYZ", 0, 2) == 0
    out.close()


# -- malformed files ---------------------------------------------------------------------


def test_wrong_magic(tmp_path):
    path = tmp_path / "x.bam"
    path.write_bytes(bgzf_block(b"BAI\x01" + bytes(100)) + EOF_BLOCK)
    with pytest.raises(FormatError, match=r"x\.bam: byte 0 \(a BGZF block\), uncompressed byte 0"
                       r".*expected the magic b'BAM\\x01'"):  # fmt: skip
        get("bam").plan(RangeSource(str(path)))
    path.write_bytes(b"not gzip at all" * 10)
    with pytest.raises(FormatError, match=r"x\.bam: byte 0: .*expected a BGZF block"):
        partition(str(path), format="bam")


def test_a_truncated_block_names_its_offset(tmp_path):
    path = write_bam(tmp_path / "t.bam", count=3000, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FormatError, match=r"t\.bam: byte \d+: .*(cut short|BGZF)"):
        read_all(get("bam").plan(RangeSource(str(path)), n=3))


def test_a_file_cut_at_a_block_boundary_is_not_silently_short(tmp_path):
    path = reblock(write_bam(tmp_path / "b.bam", count=500, index=False), low=2000, high=2000)
    data = path.read_bytes()
    path.write_bytes(data[: -len(EOF_BLOCK)])  # the end-of-file block gone
    with pytest.raises(FormatError, match="no BGZF end-of-file block"):
        read_all(get("bam").plan(RangeSource(str(path)), n=2))


def test_a_record_running_past_the_end(tmp_path):
    path = write_bam(tmp_path / "r.bam", count=20, index=False)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    last = 8 + struct.unpack_from("<i", raw, 4)[0]  # past the header text: the references
    for _ in range(struct.unpack_from("<i", raw, last)[0]):
        last += 4 + struct.unpack_from("<i", raw, last + 4)[0] + 4
    last += 4
    while last + 4 + struct.unpack_from("<i", raw, last)[0] < len(raw):
        last += 4 + struct.unpack_from("<i", raw, last)[0]
    struct.pack_into("<i", raw, last, 10_000)  # the last record claims 10 kB
    path.write_bytes(bgzf_block(bytes(raw)) + EOF_BLOCK)
    with pytest.raises(FormatError, match=r"r\.bam: byte 0 \(a BGZF block\), uncompressed byte"
                       r" \d+ in it: a record of block_size 10000 runs past the end"):  # fmt: skip
        read_all(get("bam").plan(RangeSource(str(path)), n=1))


def test_an_unknown_tag_type_in_a_later_record_is_refused_while_decoding(tmp_path):
    path = write_bam(tmp_path / "tags.bam", count=40, index=False)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    at = [i for i in range(len(raw) - 3) if raw[i : i + 3] == b"RGZ"]
    raw[at[5] + 2] = ord("Q")  # the sixth record's RG tag: type 'Q' (no such type)
    path.write_bytes(bgzf_block(bytes(raw)) + EOF_BLOCK)
    for n in (1, 3):
        with pytest.raises(FormatError, match=r"tags\.bam: byte 0 \(a BGZF block\), uncompressed"
                           r" byte \d+ in it: not a valid BAM record \(tag b'RG': unknown tag"
                           r" type 'Q'\)"):  # fmt: skip
            read_all(get("bam").plan(RangeSource(str(path)), n=n))
    with pytest.raises(FormatError, match="unknown tag type 'Q'"):
        get("bam").to_pandas(get("bam").plan(RangeSource(str(path)), n=1)[0])


@pytest.mark.parametrize(
    ("tags", "fault"),
    [
        (b"", None),
        (b"NMC\x05RGZgrp\x00XBBC\x02\x00\x00\x00\x01\x02", None),
        (b"NMQ\x05", "unknown tag type 'Q'"),
        (b"RGZgrp", "without its NUL"),
        (b"NMi\x05\x00", "runs past the record's end"),
        (b"XBBC\x09\x00\x00\x00\x01", "runs past the record's end"),
        (b"XBBQ\x01\x00\x00\x00\x01", "of unknown subtype"),
        (b"XBBC\x01", "B array cut short"),
        (b"NM", "cut short"),
    ],
)
def test_tag_bytes_are_checked_whole(tags, fault):
    found = tags_fault(tags)
    assert found is None if fault is None else fault in found


def test_a_changed_file_is_refused(tmp_path):
    path = write_bam(tmp_path / "v.bam", count=100, index=False)
    parts = partition(str(path), n=2)
    write_bam(tmp_path / "v.bam", count=120, index=False, seed=9)
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        parts[0].read()


# -- real files ----------------------------------------------------------------------------


def test_real_bam_with_its_index(real_file, tmp_path):
    bam = real_file(EXAMPLE_BAM)
    (tmp_path / "example.bam").write_bytes(bam.read_bytes())
    (tmp_path / "example.bam.bai").write_bytes(real_file(EXAMPLE_BAI).read_bytes())
    path = tmp_path / "example.bam"
    check_exact(path, index=False)
    check_exact(path, index=None)
    with pysam.AlignmentFile(str(path)) as f:
        for region in ("chr1", "chr2:100-1000", f"{f.references[0]}:1000-1200"):
            expected = [as_tuple(r) for r in fetched(f, region)]
            for n in COUNTS:
                parts = get("bam").plan(RangeSource(str(path)), n=n, region=region)
                assert read_all(parts) == expected, (region, n)


def test_real_bam_from_bedtools(real_file):
    check_exact(real_file(BEDTOOLS_BAM), index=False)


# -- through aif:// over S3 ---------------------------------------------------------------


def test_a_bam_on_s3_through_aif(s3_fs, tmp_path):
    path = write_bam(tmp_path / "s3.bam", count=4000)
    s3_fs.pipe("s3only/aln/s3.bam", path.read_bytes())
    s3_fs.pipe("s3only/aln/s3.bam.bai", Path(str(path) + ".bai").read_bytes())
    url = "aif://s3only/aln/s3.bam"
    source = RangeSource(url, s3_fs.config)
    parts = get("bam").plan(source, n=4, region="chr1:1-500000")
    assert source.requests <= 2 * len(parts) + 2
    with pysam.AlignmentFile(str(path)) as f:
        expected = [as_tuple(r) for r in f.fetch("chr1", 0, 500000)]
    got = [as_tuple(r) for p in parts for r in get("bam").read(p, config=s3_fs.config)]
    assert got == expected
    guessed = get("bam").plan(RangeSource(url, s3_fs.config), n=3, index=False)
    got = [as_tuple(r) for p in guessed for r in get("bam").read(p, config=s3_fs.config)]
    assert got == reference(path)


# -- fuzzing: mutated BAM and SAM give records or FormatError, nothing else -----------------


def _seed_blobs() -> list[bytes]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_bam(Path(tmp) / "seed.bam", count=60, refs=2, index=False)
        return [gzip.decompress(path.read_bytes())]


def _compressed(raw: bytes, size: int) -> bytes:
    pieces = [bgzf_block(raw[i : i + size]) for i in range(0, len(raw), size)]
    return b"".join(pieces) + EOF_BLOCK


def test_fuzz_bam():
    from hypothesis import strategies as st

    from .test_fuzz import fuzz_file, mutated

    seeds = _seed_blobs()
    inner = st.builds(
        _compressed,
        st.sampled_from(seeds).flatmap(mutated),
        st.integers(min_value=40, max_value=3000),
    )
    outer = st.sampled_from([_compressed(s, 700) for s in seeds]).flatmap(mutated)
    fuzz_file("BAM, mutated", st.one_of(inner, outer), ["x.bam", "x.bin"], [None, "bam"])

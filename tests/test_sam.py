"""SAM partitions (plain, gzip, BGZF): exact against pysam, any split point."""

from __future__ import annotations

import gzip
import itertools
import random
from pathlib import Path

import pytest

pysam = pytest.importorskip("pysam")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.sam import first_record  # noqa: E402

from .test_bam import as_tuple, write_bam  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)


def sam_from_bam(bam: Path, sam: Path) -> Path:
    """The same alignments as SAM text, written by pysam."""
    with pysam.AlignmentFile(str(bam)) as src, pysam.AlignmentFile(
        str(sam), "w", template=src
    ) as out:  # fmt: skip
        for record in src.fetch(until_eof=True):
            out.write(record)
    return sam


def reference(path: Path) -> list[tuple]:
    with pysam.AlignmentFile(str(path), check_sq=False) as f:
        return [as_tuple(r) for r in f.fetch(until_eof=True)]


def ours(parts) -> list[tuple]:
    return [as_tuple(r) for p in parts for r in p.read()]


@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
def test_sam_reads_back_as_pysam_reads_it(tmp_path, codec):
    sam = sam_from_bam(write_bam(tmp_path / "a.bam", count=3000, index=False), tmp_path / "a.sam")
    expected = reference(sam)
    if codec == "gzip":
        sam.with_suffix(".sam.gz").write_bytes(gzip.compress(sam.read_bytes()))
        sam = sam.with_suffix(".sam.gz")
    elif codec == "bgzf":
        pysam.tabix_compress(str(sam), str(sam) + ".gz", force=True)
        sam = Path(str(sam) + ".gz")
        assert reference(sam) == expected
    size = sam.stat().st_size
    for plan in [{"n": n} for n in COUNTS] + [{"target_bytes": size // 4}]:
        parts = partition(str(sam), **plan)
        assert {p.format for p in parts} == {"sam"}
        assert {p["codec"] for p in parts} == {codec}
        assert ours(parts) == expected, plan


def test_arrow_has_the_bam_columns(tmp_path):
    sam = sam_from_bam(write_bam(tmp_path / "a.bam", count=200, index=False), tmp_path / "a.sam")
    parts = partition(str(sam), n=1)
    table = get("sam").to_arrow(parts[0])
    bam_table = get("bam").to_arrow(partition(str(tmp_path / "a.bam"), n=1)[0])
    assert table.column_names == bam_table.column_names
    assert table.to_pylist() == bam_table.to_pylist()


def test_a_line_with_too_few_fields_names_its_offset(tmp_path):
    path = tmp_path / "bad.sam"
    path.write_bytes(b"@SQ\tSN:chr1\tLN:100\nr1\t0\tchr1\t5\t60\t4M\t*\t0\t0\tACGT\tIIII\nr2\t0\n")
    with pytest.raises(FormatError, match=r"bad\.sam: byte 53: not a SAM record \(2 tab"):
        partition(str(path), n=1)[0].read()


def test_an_unknown_reference_is_refused(tmp_path):
    path = tmp_path / "ref.sam"
    path.write_bytes(b"@SQ\tSN:chr1\tLN:100\nr1\t0\tchr9\t5\t60\t4M\t*\t0\t0\tACGT\tIIII\n")
    with pytest.raises(FormatError, match=r"byte 19: .*'chr9' is not in the header"):
        partition(str(path), n=1)[0].read()


def sam_text(records: list[tuple[str, str, str]]) -> bytes:
    lines = ["@HD\tVN:1.6\n", "@SQ\tSN:c1\tLN:1000\n", "@CO\t@ look-alike\n"]
    for i, (name, seq, qual) in enumerate(records):
        lines.append(
            f"{name or '*'}\t{4 if i % 3 == 0 else 0}\tc1\t{i + 1}\t30\t{len(seq)}M\t=\t{i + 5}\t0"
            f"\t{seq}\t{qual}\tXZ:Z:@{name}\tNM:i:{i}\n"
        )
    return "".join(lines).encode()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.integers(min_value=1, max_value=30).flatmap(
            lambda n: st.tuples(
                st.text(
                    alphabet=st.characters(min_codepoint=33, max_codepoint=126).filter(
                        lambda c: c != "@"
                    ),
                    max_size=10,
                ),
                st.text(alphabet="ACGTN", min_size=n, max_size=n),
                st.text(alphabet="@I#+", min_size=n, max_size=n),
            )
        ),
        min_size=1,
        max_size=50,
    ),
    n=st.integers(min_value=1, max_value=40),
)
def test_any_split_gives_every_record_once(tmp_path, records, n):
    data = sam_text(records)
    path = tmp_path / "p.sam"
    path.write_bytes(data)
    parts = partition(str(path), n=n)
    got = [(r.query_name, r.query_sequence, r.get_tags()[0][1]) for p in parts for r in p.read()]
    assert got == [(name or "*", seq, "@" + name) for name, seq, _ in records]
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))


def test_every_offset_snaps_to_the_next_record_line():
    data = sam_text([("r1", "ACGT", "IIII"), ("r2", "AC", "@@")])
    lines = data.split(b"\n")
    starts = [sum(len(x) + 1 for x in lines[:k]) for k in range(3, 5)]
    for offset in range(1, len(data)):
        expected = next((s for s in starts if s >= offset), None)
        got = first_record(data[offset - 1 :], True)
        assert (None if got is None else offset - 1 + got) == expected, offset


def test_bam_and_sam_are_told_apart(tmp_path):
    bam = write_bam(tmp_path / "x.bam", count=50, index=False)
    sam = sam_from_bam(bam, tmp_path / "x.sam")
    renamed_bam, renamed_sam = bam.rename(tmp_path / "one"), sam.rename(tmp_path / "two")
    assert {p.format for p in partition(str(renamed_bam), n=2)} == {"bam"}
    assert {p.format for p in partition(str(renamed_sam), n=2)} == {"sam"}
    assert get("sam").references(RangeSource(str(renamed_sam))) == ("chr0", "chr1", "chr2")
    random.Random(0)  # the files are seeded


# -- long headers, malformed lines, reference_end as pysam gives it -----------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
def test_a_header_far_longer_than_the_first_read_keeps_every_sq_line(tmp_path, codec):
    names = [f"contig{i:05d}_{'x' * 30}" for i in range(2500)]  # about 145 KiB of @SQ lines
    lines = ["@HD\tVN:1.6"] + [f"@SQ\tSN:{name}\tLN:1000" for name in names]
    lines += [f"r{i}\t0\t{names[-1 - i]}\t{i + 1}\t60\t4M\t*\t0\t0\tACGT\tIIII" for i in range(5)]
    sam = tmp_path / "long.sam"
    sam.write_text("\n".join(lines) + "\n")
    expected = reference(sam)
    if codec == "gzip":
        sam = tmp_path / "long.sam.gz"
        sam.write_bytes(gzip.compress((tmp_path / "long.sam").read_bytes()))
    elif codec == "bgzf":
        pysam.tabix_compress(str(tmp_path / "long.sam"), str(sam) + ".gz", force=True)
        sam = Path(str(sam) + ".gz")
    assert get("sam").references(RangeSource(str(sam))) == tuple(names)
    for n in (1, 2, 3):
        parts = partition(str(sam), n=n)
        assert {p["codec"] for p in parts} == {codec}
        assert ours(parts) == expected


def test_a_header_whose_last_line_has_no_line_end_is_refused(tmp_path):
    path = tmp_path / "cut.sam.gz"
    path.write_bytes(gzip.compress(b"@HD\tVN:1.6\n@SQ\tSN:chr1\tLN:1"))
    with pytest.raises(FormatError, match=r"cut\.sam\.gz: uncompressed byte 27: the header's last"):
        get("sam").references(RangeSource(str(path)))


HEAD = b"@SQ\tSN:c\tLN:100\n"
GOOD = b"r1\t0\tc\t1\t60\t4M\t*\t0\t0\tACGT\tIIII\n"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"r2\t0\tc\t5\t60\t4M\t*\t0\t0\tACGT\tII", r"SEQ has 4 bases, QUAL 2"),  # cut in QUAL
        (b"r2\t0\tc\t5\t60\t4M\t*\t0\t0\tACGT\tIIIIII\n", r"SEQ has 4 bases, QUAL 6"),
        (b"r2\t0\tc\t5\t60\t4M\t*\t0\t0\tAC", r"10 tab-separated fields"),  # cut in SEQ
        (b"r2\t0\tc\t5\t60\t4M\t*\t0\t0\tAC\tII\n", r"CIGAR 4M covers 4 query bases, SEQ has 2"),
        (b"r2\t0\tc\t5\t60\t3M2S\t*\t0\t0\tACGT\tIIII\n", r"CIGAR 3M2S covers 5 query bases"),
        (b"r2\t0\tc\t5\t60\t4Q\t*\t0\t0\tACGT\tIIII\n", r"bad CIGAR '4Q'"),
        (b"r2\t0\tc\t5\t60\t4M2\t*\t0\t0\tACGT\tIIII\n", r"bad CIGAR '4M2'"),
    ],
)
def test_a_malformed_line_names_the_file_and_offset(tmp_path, line, why):
    path = tmp_path / "bad.sam"
    path.write_bytes(HEAD + GOOD + line)
    at = len(HEAD + GOOD)
    with pytest.raises(FormatError, match=rf"bad\.sam: byte {at}: not a SAM record \({why}"):
        partition(str(path), n=1)[0].read()
    with pytest.raises(OSError), pysam.AlignmentFile(str(path), check_sq=False) as f:
        list(f)  # pysam refuses these lines too


def test_reference_end_is_pysams_for_cigars_on_no_reference_bases(tmp_path):
    lines = [
        "a\t0\tc\t100\t60\t10S\t*\t0\t0\tACGTACGTAC\t*",  # mapped, no reference base: pos + 1
        "b\t0\tc\t100\t60\t3I\t*\t0\t0\tACG\tIII",
        "c\t0\tc\t100\t60\t5H\t*\t0\t0\t*\t*",
        "d\t0\tc\t100\t60\t2S3M\t*\t0\t0\tACGTA\tIIIII",
        "e\t4\tc\t100\t0\t10S\t*\t0\t0\tACGTACGTAC\t*",  # unmapped: None
        "f\t4\t*\t0\t0\t*\t*\t0\t0\tACG\t*",  # no CIGAR: None
    ]
    sam = tmp_path / "ends.sam"
    sam.write_bytes(HEAD + "\n".join(lines).encode() + b"\n")
    expected = reference(sam)
    assert [r[9] for r in expected] == [100, 100, 100, 102, None, None]
    assert ours(partition(str(sam), n=1)) == expected
    bam = tmp_path / "ends.bam"
    pysam.view("-b", "-o", str(bam), str(sam), catch_stdout=False)
    assert ours(partition(str(bam), n=1)) == expected

"""SAM files written by other people's tools (MAQ + samtools, bwa), exact against pysam.

The files are Biopython's test data (``Tests/SamBam`` of its source distribution):
``ex1_header.sam``, MAQ alignments that samtools fixed and gave a header (the
samtools ``ex1`` example), ``sam1.sam``, written by bwa 0.6.2 (unmapped and mapped
pairs, long tag lists), and ``ex1.sam``, the same MAQ alignments with no header at all.
They are read plain, gzip- and BGZF-compressed, every partition count, and compared
record by record with pysam; the BAM that samtools made of ``ex1_header.sam`` in
64 KiB blocks (records cut across blocks) must give the same records.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

pysam = pytest.importorskip("pysam")

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402

from ._realdata import RealFile  # noqa: E402
from .test_bam import as_tuple  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
LICENCE = "Biopython License Agreement or BSD-3-Clause (ex1: MIT, from samtools and pysam)"
EX1_HEADER_SAM = RealFile(
    "biopython", "1.88", "Tests/SamBam/ex1_header.sam",
    "63c39c2e31718237a980c178b404b6b9a634a66e83230b8584e30454a315cc5e", LICENCE,
)  # fmt: skip
EX1_HEADER_BAM = RealFile(
    "biopython", "1.88", "Tests/SamBam/ex1_header.bam",
    "252758e249e0adb1513adb72557b8226c107c4753ff6244211e10aadba3013b7", LICENCE,
)  # fmt: skip
EX1_SAM = RealFile(
    "biopython", "1.88", "Tests/SamBam/ex1.sam",
    "077810807eb40ea138de21fa8012f01c4f1366a665005f901970aae31a62e392", LICENCE,
)  # fmt: skip
BWA_SAM = RealFile(
    "biopython", "1.88", "Tests/SamBam/sam1.sam",
    "a069438c007ccc07c01fef14cd72cd843dce20b796d9ebfa7dfcfcd487acde93", LICENCE,
)  # fmt: skip


def reference(path: Path) -> list[tuple]:
    with pysam.AlignmentFile(str(path), check_sq=False) as f:
        return [as_tuple(r) for r in f.fetch(until_eof=True)]


def plans(path: Path) -> list[dict]:
    return [{"n": n} for n in COUNTS] + [{"target_bytes": max(1, path.stat().st_size // 7)}]


def compressed(path: Path, codec: str, folder: Path) -> Path:
    """``path`` as it is, gzip-compressed, or BGZF-compressed by htslib (``bgzip``)."""
    if codec == "none":
        return path
    target = folder / (path.name + ".gz")
    if codec == "gzip":
        target.write_bytes(gzip.compress(path.read_bytes()))
    else:
        pysam.tabix_compress(str(path), str(target), force=True)
    return target


def check_exact(path: Path, codec: str, expected: list[tuple]) -> None:
    for plan in plans(path):
        parts = partition(str(path), **plan)
        assert {p.format for p in parts} == {"sam"}, plan
        assert {p["codec"] for p in parts} == {codec}, plan
        got = [as_tuple(r) for p in parts for r in p.read()]
        assert len(got) == len(expected), plan
        assert got == expected, plan


@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
@pytest.mark.parametrize("real", [EX1_HEADER_SAM, BWA_SAM], ids=["samtools-maq", "bwa"])
def test_a_real_sam_reads_back_as_pysam_reads_it(real_file, tmp_path, real, codec):
    source = real_file(real)
    expected = reference(source)
    assert len(expected) >= 200
    assert any(r[1] & 4 for r in expected)  # unmapped reads too
    assert any(r[8] for r in expected)  # and tags
    path = compressed(source, codec, tmp_path)
    check_exact(path, codec, expected)


def test_the_real_sam_and_the_bam_samtools_made_of_it_agree(real_file):
    """The BAM's blocks are all 64 KiB, so records run across them."""
    sam, bam = real_file(EX1_HEADER_SAM), real_file(EX1_HEADER_BAM)
    expected = reference(sam)
    assert reference(bam) == expected
    for plan in plans(bam):
        for index in (False, None):
            parts = get("bam").plan(RangeSource(str(bam)), index=index, **plan)
            assert [as_tuple(r) for p in parts for r in p.read()] == expected, (plan, index)
    sam_table = get("sam").to_arrow(partition(str(sam), n=1)[0])
    bam_table = get("bam").to_arrow(get("bam").plan(RangeSource(str(bam)), n=1)[0])
    assert sam_table.to_pylist() == bam_table.to_pylist()


def test_a_real_sam_without_a_header_is_refused_as_pysam_refuses_it(real_file, tmp_path):
    """``ex1.sam`` names chr1 and chr2 but has no @SQ line: no tool can place its reads."""
    path = tmp_path / "ex1.sam"
    shutil.copyfile(real_file(EX1_SAM), path)
    with pytest.raises(OSError), pysam.AlignmentFile(str(path), check_sq=False) as f:
        list(f.fetch(until_eof=True))  # htslib: "no SQ lines present in the header"
    for n in (1, 3):
        with pytest.raises(FormatError, match=r"ex1\.sam: byte \d+: not a SAM record \(reference"
                           r" 'chr\d' is not in the header's @SQ lines\)"):  # fmt: skip
            [r for p in partition(str(path), format="sam", n=n) for r in p.read()]

"""Indexes beside a data file (.tbi, .csi, .bai, .fai, .gzi) are tied to it: one that does
not match the data (data appended or rewritten after it was made, an index of another
file) is refused with a FormatError naming both files, never trusted to give a short
answer; and a replaced index or data file is never served from the per-process cache."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

pysam = pytest.importorskip("pysam")

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402

from .test_vcf import ours, read_plan, reference, vcf_bytes  # noqa: E402
from .test_vcf import write as write_vcf  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
REMAKE = r"make it again \(tabix"


def touch_later(path: Path | str) -> None:
    """Move a file's mtime on, as a rewrite a second later would (the fingerprint changes
    with it even where the clock is coarse)."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


# -- VCF: .tbi and .csi ----------------------------------------------------------------------


def indexed_vcf(folder: Path, name: str, data: bytes, kind: str) -> str:
    url = write_vcf(folder, name, data, "bgzf")
    pysam.tabix_index(url, preset="vcf", force=True, csi=kind == "csi")
    return url


def rewrite_vcf(url: str, data: bytes) -> None:
    """The data file bgzipped again from ``data``, its old index left beside it."""
    folder, name = Path(url).parent, Path(url).name
    fresh = write_vcf(folder, name + ".new", data, "bgzf")
    os.replace(fresh, url)
    touch_later(url)


def more_records(data: bytes, count: int) -> bytes:
    """``data`` with ``count`` records of chrX added at its end (the file stays sorted)."""
    lines = [f"chrX\t{1_999_950 + i // 100}\t.\tA\tC\t50\tPASS\tDP=9\tGT\t0|1\t1|1" for i in range(count)]
    return data + ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("kind", ["tbi", "csi"])
@pytest.mark.parametrize("added", [1, 40, 4000])
def test_a_stale_tabix_index_after_records_were_appended_is_refused(tmp_path, kind, added):
    data = vcf_bytes(seed=60, count=3000, samples=2)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, kind)
    rewrite_vcf(url, more_records(data, added))
    for region in ("chrX", "chr1:1-100000"):  # the records of chr1 did not move: refused too
        with pytest.raises(FormatError) as caught:
            read_plan(get("vcf").plan(RangeSource(url), n=3, region=region))
        message = str(caught.value)
        assert f"calls.vcf.gz.{kind}: virtual offset" in message
        assert f"of {url}:" in message and "make it again (tabix" in message


@pytest.mark.parametrize("kind", ["tbi", "csi"])
def test_a_stale_tabix_index_after_a_record_was_rewritten_is_refused(tmp_path, kind):
    data = vcf_bytes(seed=61, count=3000, samples=2)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, kind)
    lines = data.split(b"\n")
    k = len(lines) // 2
    lines[k] = lines[k].replace(b"\tGT", b";EDITED=1\tGT", 1)
    rewrite_vcf(url, b"\n".join(lines))
    with pytest.raises(FormatError, match=rf"calls\.vcf\.gz\.{kind}: virtual offset .*{REMAKE}"):
        read_plan(get("vcf").plan(RangeSource(url), n=2, region="chrX"))


@pytest.mark.parametrize("kind", ["tbi", "csi"])
def test_a_matching_tabix_index_still_gives_what_pysam_gives(tmp_path, kind):
    data = more_records(vcf_bytes(seed=62, count=2000, samples=2), 10)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, kind)
    for region in ("chr1", "chrX", "chr2:1-1000000"):
        want = reference(url, region)
        for n in COUNTS:
            assert ours(read_plan(get("vcf").plan(RangeSource(url), n=n, region=region))) == want


def test_an_index_written_with_its_file_may_end_inside_the_last_block(tmp_path):
    """htslib's writer (bcftools --write-index) ends the last chunk inside the last data
    block, not at the end-of-file block as an index made by reading does: both are taken."""
    from aifdata.codecs.bgzf import decompress_blocks
    from aifdata.formats import _tabix

    data = vcf_bytes(seed=63, count=500, samples=2)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, "tbi")
    raw = Path(url).read_bytes()
    index = _tabix.parse_index(Path(url + ".tbi").read_bytes(), url + ".tbi")
    end = index.data_end()
    assert end >> 16 == len(raw) - 28 and end & 0xFFFF == 0  # made by reading
    last = max(b for ref in index.refs for b, _ in index.chunks(ref) if b >> 16 < end >> 16)
    block = last >> 16
    inflated, used = decompress_blocks(raw[block:-28], url, block)
    assert used == len(raw) - 28 - block  # one block: the last one of data
    for ref in index.refs:  # as the writer would put it: the last block, its length
        for chunks in ref.bins.values():
            chunks[:] = [(a, (block << 16) | len(inflated) if b == end else b) for a, b in chunks]
    _tabix.check_data_end(RangeSource(url), index)
    for ref in index.refs:  # one byte short of the data's end: refused
        for chunks in ref.bins.values():
            chunks[:] = [(a, b - 1 if b >> 16 == block else b) for a, b in chunks]
    with pytest.raises(FormatError, match="1 more bytes of data follow"):
        _tabix.check_data_end(RangeSource(url), index)


def test_an_index_of_no_records_beside_a_file_with_records_is_refused(tmp_path):
    header_only = b"".join(line + b"\n" for line in vcf_bytes(seed=64, count=0).splitlines())
    url = indexed_vcf(tmp_path, "calls.vcf.gz", header_only, "tbi")
    assert get("vcf").plan(RangeSource(url), n=2, region="chr1") == []
    rewrite_vcf(url, vcf_bytes(seed=64, count=300))
    with pytest.raises(FormatError, match=r"\.tbi: .*the index holds no records, the file has"):
        get("vcf").plan(RangeSource(url), n=2, region="chr7")


def test_the_end_of_a_regions_records_is_checked_too(tmp_path):
    """Where the index says a region's records end must be a line end, after a record of
    the region's contig: else the index is refused, not read short."""
    from aifdata.formats import _tabix

    data = vcf_bytes(seed=65, count=3000, samples=2)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, "tbi")
    index = _tabix.parse_index(Path(url + ".tbi").read_bytes(), url + ".tbi")
    span = _tabix.query(index, 0, 0, 5_000_000)  # chr1, whole
    assert span is not None
    source = RangeSource(url)
    _tabix.check_span_end(source, index, span.last, "chr1")
    with pytest.raises(FormatError, match=r"calls\.vcf\.gz\.tbi: virtual offset .*no line ends"):
        _tabix.check_span_end(source, index, span.last - 1, "chr1")
    with pytest.raises(FormatError, match=r"records of 'chr2' end there, but the line before"):
        _tabix.check_span_end(source, index, span.last, "chr2")


# -- BAM: .bai -------------------------------------------------------------------------------


def bam_of(path: Path, count: int, unplaced: int = 0, seed: int = 1) -> Path:
    """A sorted BAM of ``count`` reads at rising positions on two references (then
    ``unplaced`` reads of no reference, as samtools sort puts them), and its .bai."""
    import random

    rng = random.Random(seed)
    header = {"HD": {"VN": "1.6", "SO": "coordinate"},
              "SQ": [{"SN": "chr0", "LN": 10**7}, {"SN": "chr1", "LN": 10**7}]}  # fmt: skip
    tmp = path.with_suffix(".tmp.bam")
    with pysam.AlignmentFile(str(tmp), "wb", header=header) as out:
        for i in range(count + unplaced):
            a = pysam.AlignedSegment(out.header)
            a.query_name = f"r{i}"
            a.query_sequence = "".join(rng.choices("ACGT", k=100))
            a.query_qualities = pysam.qualitystring_to_array("I" * 100)
            if i < count:
                a.reference_id, a.reference_start = (0 if i < count // 2 else 1), 100 * i
                a.cigarstring, a.mapping_quality = "100M", 30
            else:
                a.flag, a.reference_id, a.reference_start = 4, -1, -1
            out.write(a)
    os.replace(tmp, path)
    touch_later(path)
    return path


def bam_reads(path: Path, region: str | None = None) -> list[str]:
    with pysam.AlignmentFile(str(path)) as f:
        rows = f.fetch(region=region) if region else f.fetch(until_eof=True)
        return [r.query_name for r in rows]


def test_a_stale_bai_after_many_reads_were_added_is_refused(tmp_path):
    path = bam_of(tmp_path / "a.bam", 2000)
    pysam.index(str(path))
    bam_of(path, 8000)  # the same first reads, and more after: the old .bai left beside it
    with pytest.raises(FormatError) as caught:
        get("bam").plan(RangeSource(str(path)), n=3, region="chr1")
    message = str(caught.value)
    assert "a.bam.bai: virtual offset" in message and f"of {path}" in message
    assert "samtools index" in message
    with pytest.warns(UserWarning, match=r"a\.bam\.bai: .*planning without the index"):
        parts = get("bam").plan(RangeSource(str(path)), n=3)
    assert [r.query_name for p in parts for r in p.read()] == bam_reads(path)


@pytest.mark.parametrize(
    ("added", "before", "after"), [(1, 0, 0), (30, 0, 0), (0, 0, 20), (30, 20, 20), (0, 20, 0)]
)
def test_a_stale_bai_after_a_few_reads_were_added_is_refused_by_its_end(
    tmp_path, added, before, after
):
    """Fewer added reads than a block's worth (placed, or of no reference; or the unplaced
    ones gone): the index's end is read in the data."""
    from aifdata.formats import _bai

    path = bam_of(tmp_path / "a.bam", 2000, unplaced=before)
    pysam.index(str(path))
    blob = Path(str(path) + ".bai").read_bytes()
    bam_of(path, 2000 + added, unplaced=after)
    size = path.stat().st_size
    with pytest.raises(FormatError, match=r"a\.bam\.bai: virtual offset \d+/\d+ of .*a\.bam"):
        bai = _bai.parse(blob, str(path) + ".bai", 2, size)
        _bai.check_end(RangeSource(str(path)), bai, str(path) + ".bai")


@pytest.mark.parametrize("unplaced", [0, 20])
def test_a_matching_bai_passes_its_checks(tmp_path, unplaced):
    from aifdata.formats import _bai

    path = bam_of(tmp_path / "a.bam", 3000, unplaced=unplaced)
    pysam.index(str(path))
    bai = _bai.parse(Path(str(path) + ".bai").read_bytes(), "a.bam.bai", 2, path.stat().st_size)
    assert bai.unplaced == unplaced and bai.data_end
    _bai.check_end(RangeSource(str(path)), bai, "a.bam.bai")
    parts = get("bam").plan(RangeSource(str(path)), n=4, region="chr1")
    assert [r.query_name for p in parts for r in p.read()] == bam_reads(path, "chr1")

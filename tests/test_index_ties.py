"""Indexes beside a data file (.tbi, .csi, .bai, .fai, .gzi) are tied to it: one that does
not match the data (data appended or rewritten after it was made, an index of another
file) is refused with a FormatError naming both files, never trusted to give a short
answer; and a replaced index or data file is never served from the per-process cache."""

from __future__ import annotations

import os
import shutil
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
    lines = [
        f"chrX\t{1_999_950 + i // 100}\t.\tA\tC\t50\tPASS\tDP=9\tGT\t0|1\t1|1" for i in range(count)
    ]
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


# -- FASTA: .fai (and a BGZF file's .gzi) ----------------------------------------------------


def genome(seed: int, lengths: tuple[int, ...] = (1000, 50_000, 777, 20_000)) -> list:
    import random

    rng = random.Random(seed)
    return [(f"s{i} sample {i}", "".join(rng.choices("ACGT", k=k))) for i, k in enumerate(lengths)]


def fasta(records: list, width: int = 60) -> bytes:
    out = []
    for header, sequence in records:
        lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
        out.append(f">{header}\n" + "".join(line + "\n" for line in lines))
    return "".join(out).encode()


def by_name(parts) -> dict[str, str]:
    got: dict[str, str] = {}
    for p in parts:
        for s in p.read():
            got[s.name] = got.get(s.name, "") + s.sequence
    return got


def residue_plans(url: str, region: str | None = None):
    for n in COUNTS:
        yield get("fasta").plan(RangeSource(url), n=n, by="residues", region=region)


def replace(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    touch_later(path)


@pytest.mark.parametrize("region", [None, "s1", "s1:100-200"])
def test_a_stale_fai_after_a_sequence_was_appended_is_refused(tmp_path, region):
    records = genome(70)
    path = tmp_path / "g.fa"
    path.write_bytes(fasta(records))
    pysam.faidx(str(path))
    replace(path, fasta([*records, ("s9 more", "ACGT" * 500)]))
    with pytest.raises(FormatError, match=r"g\.fa\.fai: .*the data goes on .*samtools faidx"):
        list(residue_plans(str(path), region))
    with pytest.raises(FormatError, match=r"g\.fa\.fai: .*does not match the data file .*g\.fa"):
        get("fasta").plan(RangeSource(str(path)), n=3)


def test_a_stale_fai_after_a_sequence_was_made_longer_is_refused(tmp_path):
    records = genome(71)
    path = tmp_path / "g.fa"
    path.write_bytes(fasta(records))
    pysam.faidx(str(path))
    longer = [records[0], (records[1][0], records[1][1] + "ACGTACGTAC" * 6), *records[2:]]
    replace(path, fasta(longer))
    with pytest.raises(FormatError, match=r"g\.fa\.fai: .*samtools faidx"):
        list(residue_plans(str(path), "s0"))


def test_edits_that_keep_the_files_size_are_caught_when_the_residues_are_read(tmp_path):
    """A line moved from one sequence to the next, between two the plan spot-checks: every
    other offset stays, the file ends where it did, the plan passes; reading the sequences
    it moved between refuses (the header line before a sequence, the byte after it),
    never a wrong sequence."""
    records = genome(72, (600,) * 40)
    path = tmp_path / "g.fa"
    path.write_bytes(fasta(records))
    pysam.faidx(str(path))
    edited = list(records)
    edited[2] = (records[2][0], records[2][1] + records[3][1][:60])
    edited[3] = (records[3][0], records[3][1][60:])
    replace(path, fasta(edited))
    parts = get("fasta").plan(RangeSource(str(path)), n=80, by="residues")
    for name in ("s2", "s3"):
        with pytest.raises(FormatError, match=r"g\.fa: byte \d+: .*does not match its \.fai"):
            [p.read() for p in parts if p["name"] == name]
    assert by_name(p for p in parts if p["name"] not in ("s2", "s3")) == {
        h.split()[0]: s for h, s in records if h.split()[0] not in ("s2", "s3")
    }


def bgzipped(tmp_path: Path, records: list, name: str = "g.fa.gz") -> Path:
    plain = tmp_path / (name + ".plain")
    plain.write_bytes(fasta(records))
    path = tmp_path / name
    pysam.tabix_compress(str(plain), str(path), force=True)
    return path


def test_a_bgzf_fasta_is_planned_from_its_fai_and_gzi_without_reading_its_sequences(tmp_path):
    records = genome(73, (1000, 400_000, 777, 300_000, 5))
    path = bgzipped(tmp_path, records)
    pysam.faidx(str(path))
    assert Path(str(path) + ".gzi").exists()
    with pysam.FastaFile(str(path)) as fa:
        want = {name.split()[0]: fa.fetch(name.split()[0]) for name, _ in records}
    for parts in residue_plans(str(path)):
        assert all(p["codec"] == "bgzf" for p in parts)
        assert by_name(parts) == want
    source = RangeSource(str(path))
    parts = get("fasta").plan(source, n=17, by="residues", region="s1:1000-300000")
    assert source.bytes_read < path.stat().st_size // 3  # the blocks at the ends only
    assert "".join(s.sequence for p in parts for s in p.read()) == want["s1"][999:300_000]
    for n in COUNTS:
        got = [(r.name, r.sequence) for p in partition(str(path), n=n, index=True)
               for r in p.read()]  # fmt: skip
        assert got == list(want.items())


@pytest.mark.parametrize("change", ["appended", "longer", "gzi-of-another"])
def test_a_stale_fai_or_gzi_of_a_bgzf_fasta_is_refused(tmp_path, change):
    records = genome(74, (1000, 200_000, 777, 90_000))
    path = bgzipped(tmp_path, records)
    pysam.faidx(str(path))
    if change == "appended":
        bgzipped(tmp_path, [*records, ("s9", "ACGT" * 100)])
    elif change == "longer":
        bgzipped(tmp_path, [records[0], (records[1][0], records[1][1] + "A" * 5000), *records[2:]])
    else:
        other = bgzipped(tmp_path, genome(75, (1000, 300_000)), "o.fa.gz")
        pysam.faidx(str(other))
        shutil.copy(str(other) + ".gzi", str(path) + ".gzi")
    touch_later(path)
    for by in ("records", "residues"):
        with pytest.raises(FormatError, match=r"g\.fa\.gz\.(fai|gzi): .*samtools faidx"):
            get("fasta").plan(RangeSource(str(path)), n=3, by=by)


def test_a_bgzf_fasta_with_a_fai_but_no_gzi(tmp_path):
    records = genome(76)
    path = bgzipped(tmp_path, records)
    pysam.faidx(str(path))
    Path(str(path) + ".gzi").unlink()
    with pytest.raises(FormatError, match=r"g\.fa\.gz\.gzi: no such index"):
        get("fasta").plan(RangeSource(str(path)), n=2, index=True)
    parts = get("fasta").plan(RangeSource(str(path)), n=2)  # the codec plans it
    assert [r.sequence for p in parts for r in p.read()] == [s for _, s in records]


# -- the per-process cache of parsed indexes -------------------------------------------------


@pytest.mark.parametrize("kind", ["tbi", "csi"])
def test_a_replaced_tabix_index_is_not_served_from_the_cache(tmp_path, kind):
    data = vcf_bytes(seed=80, count=3000, samples=2)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, kind)
    want = reference(url, "chrX")
    assert ours(read_plan(get("vcf").plan(RangeSource(url), n=3, region="chrX"))) == want
    other = indexed_vcf(tmp_path, "other.vcf.gz", vcf_bytes(seed=81, count=3000, samples=2), kind)
    shutil.copy(f"{other}.{kind}", f"{url}.{kind}")  # the same URL, another file's index
    with pytest.raises(FormatError, match=rf"calls\.vcf\.gz\.{kind}: "):
        read_plan(get("vcf").plan(RangeSource(url), n=3, region="chrX"))
    pysam.tabix_index(url, preset="vcf", force=True, csi=kind == "csi")  # made again: taken
    assert ours(read_plan(get("vcf").plan(RangeSource(url), n=3, region="chrX"))) == want


def test_a_replaced_vcf_is_not_read_through_the_index_kept_for_the_old_one(tmp_path):
    data = vcf_bytes(seed=82, count=3000, samples=2)
    url = indexed_vcf(tmp_path, "calls.vcf.gz", data, "tbi")
    get("vcf").plan(RangeSource(url), n=3, region="chrX")  # the index is kept
    rewrite_vcf(url, more_records(data, 50))
    with pytest.raises(FormatError, match=r"calls\.vcf\.gz\.tbi: virtual offset"):
        get("vcf").plan(RangeSource(url), n=3, region="chrX")


def test_a_replaced_bai_is_not_served_from_the_cache(tmp_path):
    path = bam_of(tmp_path / "a.bam", 3000)
    pysam.index(str(path))
    parts = get("bam").plan(RangeSource(str(path)), n=3, region="chr1")
    assert [r.query_name for p in parts for r in p.read()] == bam_reads(path, "chr1")
    other = bam_of(tmp_path / "b.bam", 9000, seed=2)
    pysam.index(str(other))
    bai = Path(str(path) + ".bai")
    replace(bai, Path(str(other) + ".bai").read_bytes())
    with pytest.raises(FormatError, match=r"a\.bam\.bai"):
        get("bam").plan(RangeSource(str(path)), n=3, region="chr1")


def test_a_replaced_fai_is_read_again(tmp_path):
    records = genome(83)
    path = tmp_path / "g.fa"
    path.write_bytes(fasta(records))
    pysam.faidx(str(path))
    assert by_name(next(residue_plans(str(path))))["s1"] == records[1][1]
    fai = Path(str(path) + ".fai")
    replace(fai, fai.read_bytes().replace(b"\t60\t61", b"\t50\t51"))
    with pytest.raises(FormatError, match=r"g\.fa\.fai"):
        list(residue_plans(str(path)))


def test_a_file_without_an_end_of_file_block_ends_where_its_index_says(tmp_path):
    """Older writers left out bgzip's end-of-file block; an index made by reading such a
    file ends at the file's size: taken as the end of its data."""
    from aifdata.formats import _bai, _tabix

    url = indexed_vcf(tmp_path, "calls.vcf.gz", vcf_bytes(seed=66, count=300), "tbi")
    raw = Path(url).read_bytes()
    index = _tabix.parse_index(Path(url + ".tbi").read_bytes(), url + ".tbi")
    Path(url).write_bytes(raw[:-28])
    for ref in index.refs:
        for chunks in ref.bins.values():
            chunks[:] = [(a, (len(raw) - 28) << 16 if b == index.data_end() else b)
                         for a, b in chunks]  # fmt: skip
    _tabix.check_data_end(RangeSource(url), index)
    path = bam_of(tmp_path / "a.bam", 300)
    pysam.index(str(path))
    size = path.stat().st_size - 28
    path.write_bytes(path.read_bytes()[:-28])
    bai = _bai.parse(Path(str(path) + ".bai").read_bytes(), "a.bam.bai", 2, size)
    _bai.check_end(RangeSource(str(path)), bai, "a.bam.bai")


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "bgzf"])
def test_residue_partitions_with_their_edges_read_through_read_all(tmp_path, packed):
    """The edges a residue partition reads (the header before, the byte after) stay inside
    the file, so read_all's merged reads of neighbouring partitions give every residue."""
    import pickle

    from aifdata.formats import read_all

    records = genome(77, (1000, 30_000, 7, 20_000))
    path = bgzipped(tmp_path, records) if packed else tmp_path / "g.fa"
    if not packed:
        path.write_bytes(fasta(records))
    pysam.faidx(str(path))
    for n in COUNTS:
        parts = partition(str(path), n=n, by="residues")
        assert all(len(pickle.dumps(p)) < 1024 for p in parts)
        got: dict[str, str] = {}
        for _, slices in read_all(parts):
            for s in slices:
                got[s.name] = got.get(s.name, "") + s.sequence
        assert got == {h.split()[0]: s for h, s in records}
        records_read = [r.sequence for _, rs in read_all(partition(str(path), n=n)) for r in rs]
        assert records_read == [s for _, s in records]

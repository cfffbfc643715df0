"""FASTA partitions: every record once (by records), every residue once (by residue ranges),
a ``.fai`` used when it matches and refused when it does not, clear errors."""

from __future__ import annotations

import functools
import gzip
import itertools
import pickle
import random
import shutil
from pathlib import Path

import pytest

pysam = pytest.importorskip("pysam")
pyfaidx = pytest.importorskip("pyfaidx")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.fasta import (  # noqa: E402
    FastaRecord,
    SequenceSlice,
    first_header,
    parse_region,
)

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
PYFAIDX = ("pyfaidx", "0.9.2.2")
LICENCE = "BSD (pyfaidx's LICENSE, The Johns Hopkins University)"
CHR17 = RealFile(
    *PYFAIDX, "tests/data/chr17.hg19.part.fa",
    "3627f99f5cd6fa6a9e1a4e0494e64a9443871e0167fc6767b23cde73ca4030c1", LICENCE,
)  # fmt: skip
GENE = RealFile(
    *PYFAIDX, "tests/data/gene.bed12.fasta",
    "aee6984b18ffca4c53cb9627cdea7544cd113b81bcb0ce2f6e9a04d516fe0574", LICENCE,
)  # fmt: skip
ISSUE_83 = RealFile(  # a blank line between records
    *PYFAIDX, "tests/data/issue_83.fasta",
    "0cc8fae5b4826d499048eb08721ec8cf92a794cac307f56c390947d17e7dd781", LICENCE,
)  # fmt: skip


def fasta_bytes(records, widths=60, eol="\n", final_newline=True, blank_after=()) -> bytes:
    """``records`` (header, sequence) wrapped at ``widths`` (one, or one per record)."""
    out = []
    for k, (header, sequence) in enumerate(records):
        w = widths[k] if isinstance(widths, (list, tuple)) else widths
        lines = [f">{header}"] + [sequence[i : i + w] for i in range(0, len(sequence), w)]
        out.append(eol.join(lines) + eol + (eol if k in blank_after else ""))
    text = "".join(out)
    return (text if final_newline else text.rstrip("\r\n")).encode()


def kseq(path) -> list[tuple[str, str, str]]:
    """The reference: htslib's FASTA parser (pysam.FastxFile), record by record (the
    description without the spaces around it, as Biopython and aifdata give it)."""
    with pysam.FastxFile(str(path)) as f:
        return [(r.name, (r.comment or "").strip(), r.sequence or "") for r in f]


def faidx(path: Path) -> list[tuple[str, str, str]]:
    """The reference pyfaidx gives (on a copy: it writes its own .fai beside the file)."""
    copy = path.parent / "pyfaidx-copy" / path.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, copy)
    with pyfaidx.Fasta(str(copy), sequence_always_upper=False) as fa:
        out = []
        for key in fa.keys():  # noqa: SIM118 (iterating a Fasta gives records, not names)
            _, _, description = fa[key].long_name.partition(" ")
            out.append((key, description.strip(), str(fa[key][:])))
    return out


def ours(url, n=None, **options) -> list[tuple[str, str, str]]:
    return [tuple(r) for p in partition(str(url), n=n, **options) for r in p.read()]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def random_genome(seed: int, count: int = 60) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        length = rng.choice([1, 2, 59, 60, 61, 700, 5000])
        sequence = "".join(rng.choices("ACGTNacgtn", k=length))
        out.append((f"seq{i} sample={rng.randint(1, 9)} soft-masked", sequence))
    return out


def hard_cases() -> tuple[list[tuple[str, str]], list[int]]:
    """Records of every shape FASTA allows, and the width each is wrapped at."""
    rng = random.Random(5)
    protein = "".join(rng.choices("ACDEFGHIKLMNPQRSTVWYXBZUO*", k=333))
    records = [
        ("chrLong long single sequence", "".join(rng.choices("ACGT", k=300_000))),
        ("empty1", ""),
        ("", "ACGTACGT"),  # a '>' only header
        ("masked soft-masked", "acgtnnnnACGTNNNNNNNNNNacgt" * 40),
        ("Nrun", "N" * 5000),
        ("prot1 a protein", protein),
        ("ones lines of one residue", "ACGTA" * 7),
        ("empty2 with description", ""),
        ("gaps", "AC-GT.AC--" * 30),
        ("last", "ACGTTGCA" * 13),
    ]
    widths = [60, 60, 7, 80, 61, 70, 1, 60, 13, 50]
    return records, widths


def expected(records) -> list[tuple[str, str, str]]:
    out = []
    for header, sequence in records:
        name, _, description = header.partition(" ")
        out.append((name, description.strip(), sequence))
    return out


# -- by records --------------------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_hard_cases_match_htslib_for_every_count(tmp_path, eol, final_newline):
    records, widths = hard_cases()
    data = fasta_bytes(records, widths, eol, final_newline, blank_after={3, 7})
    path = write(tmp_path, "hard.fa", data)
    # htslib reads a CRLF blank line after an empty sequence as '\r': its LF twin is the reference
    reference = kseq(write(tmp_path, "lf.fa", data.replace(b"\r\n", b"\n")))
    assert reference == expected(records)
    for n in COUNTS:
        assert ours(path, n) == reference, n
    plan = partition(str(path), target_bytes=20_000)
    assert len(plan) >= 2  # the first record holds most of the bytes
    assert [tuple(r) for p in plan for r in p.read()] == reference


@pytest.mark.parametrize("compress", ["gzip", "bgzf"])
def test_compressed_files_split_exactly(tmp_path, compress):
    records, widths = hard_cases()
    data = fasta_bytes(records * 3, widths * 3)
    path = tmp_path / "hard.fa.gz"
    if compress == "gzip":
        path.write_bytes(gzip.compress(data))
    else:
        plain = write(tmp_path, "hard.fa", data)
        pysam.tabix_compress(str(plain), str(path))
    reference = kseq(path)
    for n in COUNTS:
        got = partition(str(path), n=n)
        assert {p["codec"] for p in got} == {compress}
        assert [tuple(r) for p in got for r in p.read()] == reference, n


def test_synthetic_genome_matches_pyfaidx_for_every_count(tmp_path):
    path = write(tmp_path, "genome.fa", fasta_bytes(random_genome(1), widths=[60, 80, 1, 7] * 15))
    reference = faidx(path)
    assert len(reference) == 60
    for n in COUNTS:
        assert ours(path, n) == reference, n
    assert ours(path, target_bytes=9_000) == reference


record_strategy = st.tuples(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=10),
    st.one_of(st.just(""), st.text(alphabet="abc =>;:", max_size=12)),
    st.text(alphabet="ACGTNacgtn*-", max_size=150),
    st.integers(min_value=1, max_value=80),
    st.booleans(),  # a blank line after it
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=40),
    n=st.integers(min_value=1, max_value=40),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
def test_any_records_any_split_exactly_once(tmp_path, records, n, crlf, final_newline):
    heads = [(f"{name} {desc}" if name and desc.strip() else name, seq)
             for name, desc, seq, _, _ in records]  # fmt: skip
    widths = [w for _, _, _, w, _ in records]
    blanks = {k for k, r in enumerate(records) if r[4]}
    data = fasta_bytes(heads, widths, "\r\n" if crlf else "\n", final_newline, blanks)
    path = write(tmp_path, "h.fa", data)
    parts = partition(str(path), n=n)
    got = [tuple(r) for p in parts for r in p.read()]
    assert got == expected(heads)
    # htslib agrees (on the LF twin with a final newline: it drops a lone '>' at the very end)
    assert got == kseq(write(tmp_path, "lf.fa", fasta_bytes(heads, widths)))
    assert parts[0]["start"] == 0 and parts[-1]["end"] == len(data)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=30),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=12),
)
def test_any_split_points_give_every_record_once(tmp_path, records, cuts):
    """Partitions cut at arbitrary byte offsets (each snapped to the next header)."""
    from aifdata.formats import Partition
    from aifdata.formats.fasta import _snap_all

    heads = [(name, seq) for name, _, seq, _, _ in records]
    data = fasta_bytes(heads, [w for _, _, _, w, _ in records])
    path = write(tmp_path, "cut.fa", data)
    source = RangeSource(str(path))
    offsets = sorted({max(1, int(c * len(data))) for c in cuts})
    starts = sorted({0, *(s for s in _snap_all(source, offsets) if s < len(data))})
    bounds = [*starts, len(data)]
    parts = [
        Partition.make(str(path), "fasta", i, source.fingerprint, start=a, end=b, codec="none")
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    assert [tuple(r) for p in parts for r in p.read()] == expected(heads)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    length=st.integers(min_value=1, max_value=700),
    width=st.integers(min_value=1, max_value=80),
    n=st.integers(min_value=1, max_value=40),
    crlf=st.booleans(),
    fai=st.booleans(),
    region=st.tuples(st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1)),
)
def test_any_residue_ranges_concatenate_exactly(tmp_path, length, width, n, crlf, fai, region):
    rng = random.Random(length * 100 + width)
    sequence = "".join(rng.choices("ACGTNacgtn", k=length))
    data = fasta_bytes([("before", "AC"), ("chrX x", sequence), ("after", "G")],
                       [3, width, 5], "\r\n" if crlf else "\n")  # fmt: skip
    path = write(tmp_path, "res.fa", data)
    index = tmp_path / "res.fa.fai"
    index.unlink(missing_ok=True)
    if fai:
        pysam.faidx(str(path))
    a = int(region[0] * (length - 1))
    b = max(a + 1, int(region[1] * length))
    parts = partition(str(path), n=n, by="residues", region=f"chrX:{a + 1}-{b}")
    assert len(parts) == min(n, b - a)
    assert residues(parts) == sequence[a:b]
    assert [(p["start"], p["end"]) for p in parts][-1][1] == b


def test_every_byte_offset_snaps_to_the_next_header(tmp_path):
    records, widths = hard_cases()
    records = [(h, s[:200]) for h, s in records]
    data = fasta_bytes(records, widths)
    path = write(tmp_path, "snap.fa", data)
    starts = [
        i for i in range(len(data)) if data[i : i + 1] == b">" and (i == 0 or data[i - 1] == 10)
    ]
    from aifdata.codecs import find_start

    source = RangeSource(str(path))
    following = iter([*starts, len(data)])
    want = next(following)
    for offset in range(1, len(data)):
        while want < offset:
            want = next(following)
        assert find_start(source, offset, first_header) == want, offset


def test_planning_without_an_index_reads_one_window_per_boundary(tmp_path):
    path = write(tmp_path, "g.fa", fasta_bytes(random_genome(2, 400)))
    source = RangeSource(str(path))
    parts = get("fasta").plan(source, n=8)
    assert len(parts) == 8
    assert source.requests == 8  # the head, then one per boundary


@functools.cache
def _one_long_sequence() -> tuple[list[tuple[str, str]], bytes]:
    """3 Mb of chr1 then 50 short records, made once for the three codecs (same bytes)."""
    rng = random.Random(3)
    records = [("chr1", "".join(rng.choices("ACGT", k=3_000_000)))] + [
        (f"c{k}", "ACGT" * 50) for k in range(50)
    ]
    return records, fasta_bytes(records)


@pytest.mark.parametrize("compress", ["none", "gzip", "bgzf"])
def test_long_sequences_are_looked_through_once_not_once_per_boundary(tmp_path, compress):
    """Boundaries inside one long sequence all snap to the header after it: planning (and,
    for BGZF, reading) passes over that sequence once, however many boundaries fall in it."""
    records, data = _one_long_sequence()
    path = write(tmp_path, "long.fa", data)
    if compress == "gzip":
        path = write(tmp_path, "long.fa.gz", gzip.compress(data, 1))
    elif compress == "bgzf":
        pysam.tabix_compress(str(path), str(tmp_path / "long.fa.bgz"))
        path = tmp_path / "long.fa.bgz"
    size = path.stat().st_size
    source = RangeSource(str(path))
    parts = get("fasta").plan(source, n=17)
    if compress != "gzip":  # (gzip inflates from a checkpoint for each look: its own cost)
        assert source.bytes_read < 2 * size + 17 * 2**16
    reading = RangeSource(str(path))
    got = [tuple(r) for p in parts for r in get("fasta").read(p, reading)]
    assert got == expected(records)
    assert len(parts) <= 3  # the partitions inside chr1 would be empty
    if compress != "gzip":  # (gzip reads through its index: a range read per partition)
        assert reading.bytes_read < 2 * size


def test_a_partition_is_small_frozen_and_picklable(tmp_path):
    path = write(tmp_path, "p.fa", fasta_bytes(random_genome(3, 30)))
    pysam.faidx(str(path))
    for part in (partition(str(path), n=3)[1], partition(str(path), n=3, by="residues")[1]):
        blob = pickle.dumps(part)
        assert len(blob) < 1024
        assert pickle.loads(blob) == part
        with pytest.raises(AttributeError):
            part.ordinal = 5  # type: ignore[misc]


def test_a_changed_file_is_not_read_with_an_old_plan(tmp_path):
    path = write(tmp_path, "c.fa", fasta_bytes(random_genome(4, 20)))
    part = partition(str(path), n=2)[0]
    path.write_bytes(fasta_bytes(random_genome(5, 25)))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


def test_arrow_and_pandas_columns(tmp_path):
    pa = pytest.importorskip("pyarrow")
    records = random_genome(6, 40)
    path = write(tmp_path, "t.fa", fasta_bytes(records))
    parts = partition(str(path), n=4)
    plugin = get("fasta")
    table = pa.concat_tables([plugin.to_arrow(p) for p in parts])
    assert table.column_names == ["name", "description", "sequence"]
    columns = [table.column(c).to_pylist() for c in table.column_names]
    assert list(zip(*columns, strict=True)) == expected(records)
    frame = parts[0].to_pandas()
    assert list(frame.columns) == ["name", "description", "sequence"]
    assert isinstance(parts[0].read()[0], FastaRecord)


def test_detected_by_name_and_by_its_first_byte(tmp_path):
    path = write(tmp_path, "x.fasta", b">a\nAC\n")
    other = write(tmp_path, "x.seqs", b">a\nAC\n")
    assert aifdata.formats.detect(str(path)).name == "fasta"
    assert aifdata.formats.detect(str(other), other.read_bytes()).name == "fasta"
    for ext in (".fa", ".fna", ".faa", ".fas", ".fa.gz", ".fasta.bgz"):
        assert get("fasta").matches_name(f"x{ext}")


# -- the .fai ---------------------------------------------------------------------------------


def test_with_a_fai_planning_reads_a_few_bytes_per_boundary(tmp_path):
    records = random_genome(7, 400)
    path = write(tmp_path, "i.fa", fasta_bytes(records, widths=[60, 70] * 200))
    pysam.faidx(str(path))
    index_bytes = (tmp_path / "i.fa.fai").stat().st_size
    source = RangeSource(str(path))
    parts = get("fasta").plan(source, n=8)
    assert len(parts) == 8
    # the head, the index, the file's tail (none here: it ends where the index says), one
    # look at each boundary
    assert source.requests == 1 + 1 + 7
    assert source.bytes_read <= 4096 + index_bytes + 256 + 7 * 256
    for n in COUNTS:
        assert ours(path, n) == expected(records), n
    assert ours(path, target_bytes=50_000) == expected(records)


def test_a_fai_with_blank_lines_and_empty_records_still_splits_exactly(tmp_path):
    records, widths = hard_cases()
    data = fasta_bytes(records, widths, blank_after={0, 3, 6})
    path = write(tmp_path, "b.fa", data)
    pysam.faidx(str(path))  # samtools leaves the empty records out of its index
    for n in COUNTS:
        assert ours(path, n) == kseq(path), n


@pytest.mark.parametrize("change", ["appended", "shortened", "other", "shifted"])
def test_a_fai_that_does_not_match_the_file_is_refused(tmp_path, change):
    records = random_genome(8, 50)
    path = write(tmp_path, "s.fa", fasta_bytes(records))
    pysam.faidx(str(path))
    if change == "appended":
        path.write_bytes(path.read_bytes() + b">more\nACGT\n")
    elif change == "shortened":
        path.write_bytes(fasta_bytes(records[:40]))
    elif change == "other":
        path.write_bytes(fasta_bytes(random_genome(9, 50)))
    else:  # a longer first header: every offset moves
        path.write_bytes(b">x" + path.read_bytes())
    with pytest.raises(FormatError, match=r"s\.fa\.fai.*(byte|line) \d+") as caught:
        for n in COUNTS:
            partition(str(path), n=n)
    assert "samtools faidx" in str(caught.value) and "index=False" in str(caught.value)
    for n in COUNTS:  # without it, exact
        assert ours(path, n, index=False) == kseq(path)


def test_a_malformed_fai_names_its_line(tmp_path):
    path = write(tmp_path, "m.fa", fasta_bytes(random_genome(10, 5)))
    (tmp_path / "m.fa.fai").write_bytes(b"seq0\t2\t40\t60\t61\nseq1\tx\t1\t2\t3\n")
    with pytest.raises(FormatError, match=r"m\.fa\.fai: line 2: expected a name and four"):
        partition(str(path), n=2)
    (tmp_path / "m.fa.fai").write_bytes(b"r\t2\t4\t60\t61\t70\n")
    with pytest.raises(FormatError, match="a FASTQ index"):
        partition(str(path), n=2)


def test_bgzf_with_its_fai_and_gzi_is_planned_from_them(tmp_path):
    path, sequence = chromosome(tmp_path, length=50_000, fai=False)
    packed = tmp_path / "ref.fa.gz"
    pysam.tabix_compress(str(path), str(packed))
    pysam.faidx(str(packed))  # samtools writes ref.fa.gz.fai and ref.fa.gz.gzi
    assert (tmp_path / "ref.fa.gz.gzi").exists()
    for n in COUNTS:
        assert ours(packed, n) == kseq(path)
        assert ours(packed, n, index=True) == kseq(path)
        assert residues(partition(str(packed), n=n, by="residues", region="chr1")) == sequence
    gzipped = write(tmp_path, "g.fa.gz", gzip.compress(path.read_bytes()))
    with pytest.raises(FormatError, match="uncompressed and BGZF FASTA only"):
        partition(str(gzipped), n=2, index=True)


def test_index_true_insists_and_index_false_ignores(tmp_path):
    path = write(tmp_path, "q.fa", fasta_bytes(random_genome(11, 5)))
    with pytest.raises(FormatError, match=r"q\.fa\.fai: no such index"):
        partition(str(path), n=2, index=True)
    (tmp_path / "q.fa.fai").write_bytes(b"garbage\n")
    assert ours(path, 2, index=False) == kseq(path)


# -- by residues ------------------------------------------------------------------------------


def chromosome(tmp_path, length=250_003, width=60, eol="\n", name="chr1", fai=True) -> tuple:
    rng = random.Random(length + width)
    sequence = "".join(rng.choices("ACGTNacgt", k=length))
    other = "".join(rng.choices("ACGT", k=1000))
    data = fasta_bytes([("chr0 first", other), (f"{name} the long one", sequence),
                        ("chr2", other[:77])], [70, width, 60], eol)  # fmt: skip
    path = write(tmp_path, f"{name}-{width}.fa", data)
    if fai:
        pysam.faidx(str(path))
    return path, sequence


def residues(parts) -> str:
    return "".join(s.sequence for p in parts for s in p.read())


@pytest.mark.parametrize("fai", [True, False])
@pytest.mark.parametrize("width", [1, 60, 61])
def test_residue_ranges_concatenate_to_the_sequence(tmp_path, fai, width):
    length = 20_011 if width == 1 else 250_003
    path, sequence = chromosome(tmp_path, length, width, fai=fai)
    for n in COUNTS:
        parts = partition(str(path), n=n, by="residues", region="chr1")
        assert len(parts) == n
        assert parts[0]["start"] == 0 and parts[-1]["end"] == length
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))
        assert residues(parts) == sequence, n
    by_size = partition(str(path), target_bytes=40_000, by="residues", region="chr1")
    assert len(by_size) == -(-length // 40_000)
    assert residues(by_size) == sequence


def test_a_region_matches_pyfaidx_slicing(tmp_path):
    path, sequence = chromosome(tmp_path)
    with pyfaidx.Fasta(str(path), sequence_always_upper=False) as fa:
        for region, (a, b) in [
            ("chr1:1-1000", (0, 1000)), ("chr1:1,001-200,000", (1000, 200_000)),
            ("chr1:249001", (249_000, 250_003)), ("chr1:5-999999", (4, 250_003)),
        ]:  # fmt: skip
            parts = partition(str(path), n=8, by="residues", region=region)
            got = [(s.name, s.start, s.end) for p in parts for s in p.read()]
            assert got[0][1] == a and got[-1][2] == b
            assert residues(parts) == str(fa["chr1"][a:b]) == sequence[a:b]


def test_every_sequence_is_cut_without_a_region(tmp_path):
    path, sequence = chromosome(tmp_path, fai=False)
    parts = partition(str(path), n=8, by="residues")
    names = [p["name"] for p in parts]
    assert names[0] == "chr0" and names[-1] == "chr2" and names.count("chr1") >= 6
    got = {}
    for p in parts:
        for s in p.read():
            got[s.name] = got.get(s.name, "") + s.sequence
    assert got["chr1"] == sequence and len(got["chr0"]) == 1000 and len(got["chr2"]) == 77


def test_residue_planning_from_a_fai_reads_no_sequence(tmp_path):
    path, _ = chromosome(tmp_path, length=2_000_000)
    source = RangeSource(str(path))
    parts = get("fasta").plan(source, n=17, by="residues", region="chr1")
    assert len(parts) == 17
    assert source.requests <= 6 and source.bytes_read < 20_000
    unindexed = RangeSource(str(path))
    (tmp_path / f"{path.name}.fai").unlink()
    assert get("fasta").plan(unindexed, n=17, by="residues", region="chr1") == parts
    assert unindexed.bytes_read >= path.stat().st_size  # without it: one pass over the file


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("fai", [True, False])
def test_residue_ranges_of_crlf_and_blank_lines(tmp_path, eol, fai):
    rng = random.Random(2)
    sequence = "".join(rng.choices("ACGT", k=10_007))
    data = fasta_bytes([("a", "AC"), ("chr1", sequence), ("b", "GT")], [60, 50, 60], eol,
                       blank_after={1})  # fmt: skip
    path = write(tmp_path, "crlf.fa", data)
    if fai:
        pysam.faidx(str(path))
    for n in COUNTS:
        assert residues(partition(str(path), n=n, by="residues", region="chr1")) == sequence


@pytest.mark.parametrize("compress", ["gzip", "bgzf"])
def test_residue_ranges_of_compressed_files(tmp_path, compress):
    path, sequence = chromosome(tmp_path, length=100_003, fai=False)
    target = tmp_path / "c.fa.gz"
    if compress == "gzip":
        target.write_bytes(gzip.compress(path.read_bytes()))
    else:
        pysam.tabix_compress(str(path), str(target))
    for n in (1, 3, 8):
        parts = partition(str(target), n=n, by="residues", region="chr1")
        assert residues(parts) == sequence


def test_lines_of_different_widths_cannot_be_cut_by_residue(tmp_path):
    data = b">chr1\n" + b"A" * 60 + b"\n" + b"C" * 50 + b"\n" + b"G" * 60 + b"\n"
    path = write(tmp_path, "w.fa", data)
    with pytest.raises(FormatError, match=r"w\.fa: byte 1\d\d: residues of 'chr1' after a short"):
        partition(str(path), n=2, by="residues")
    assert ours(path, 2)[0][2] == "A" * 60 + "C" * 50 + "G" * 60  # by records: fine


def test_a_stale_fai_is_caught_when_cutting_residues(tmp_path):
    path, _ = chromosome(tmp_path, length=10_000, fai=True)
    fai = tmp_path / f"{path.name}.fai"
    fai.write_text(fai.read_text().replace("\t60\t61", "\t50\t51"))
    with pytest.raises(FormatError, match=r"\.fai: (line|byte) \d+: .*does not match"):
        partition(str(path), n=3, by="residues", region="chr1")


def test_regions(tmp_path):
    lengths = {"chr1": 100, "chr17:6010-31420(-)": 50}
    assert parse_region("chr1", lengths) == ("chr1", 0, 100)
    assert parse_region("chr1:10-20", lengths) == ("chr1", 9, 20)
    assert parse_region("chr1:1,0-2,0", lengths) == ("chr1", 9, 20)
    assert parse_region("chr1:90", lengths) == ("chr1", 89, 100)
    assert parse_region("chr17:6010-31420(-)", lengths) == ("chr17:6010-31420(-)", 0, 50)
    with pytest.raises(FormatError, match="did you mean 'chr1'"):
        parse_region("chr11:1-5", lengths)
    with pytest.raises(ValueError, match="not in 'chr1'"):
        parse_region("chr1:101-200", lengths)
    path = write(tmp_path, "r.fa", b">chr1\nACGT\n")
    with pytest.raises(ValueError, match="by='residues'"):
        partition(str(path), n=2, region="chr1")
    with pytest.raises(ValueError, match="by must be"):
        partition(str(path), n=2, by="bases")


def test_residue_ranges_as_arrow(tmp_path):
    path, sequence = chromosome(tmp_path, length=5000)
    part = partition(str(path), n=2, by="residues", region="chr1")[1]
    assert isinstance(part.read()[0], SequenceSlice)
    frame = part.to_pandas()
    assert list(frame.columns) == ["name", "start", "end", "sequence"]
    assert frame.iloc[0]["sequence"] == sequence[2500:]
    assert get("fasta").table(part) != get("fasta").table(partition(str(path), n=1)[0])


def test_read_all_reads_residue_ranges_in_blocks(tmp_path):
    path, sequence = chromosome(tmp_path, length=300_000)
    parts = partition(str(path), n=17, by="residues", region="chr1")
    got = "".join(s[0].sequence for _, s in aifdata.formats.read_all(parts, block_bytes=65536))
    assert got == sequence


# -- bad input ---------------------------------------------------------------------------


def test_text_before_the_first_header(tmp_path):
    path = write(tmp_path, "pre.fa", b"ACGT\n>a\nACGT\n")
    with pytest.raises(FormatError, match=r"pre\.fa: byte 0: .*expected a header line"):
        partition(str(path), n=2, format="fasta")
    with pytest.raises(FormatError, match=r"pre\.fa: byte 0"):
        partition(str(path), n=2)


def test_a_nul_byte_names_its_offset(tmp_path):
    data = fasta_bytes(random_genome(12, 20))
    at = len(data) // 2
    path = write(tmp_path, "nul.fa", data[:at] + b"\x00" + data[at + 1 :])
    with pytest.raises(FormatError, match=rf"nul\.fa: byte {at}: .*NUL"):
        for n in COUNTS:
            [p.read() for p in partition(str(path), n=n)]
    head = write(tmp_path, "nul0.fa", b">a\nAC\x00GT\n")
    with pytest.raises(FormatError, match=r"nul0\.fa: byte 5: .*NUL"):
        partition(str(head), n=1)


@pytest.mark.parametrize("bad", [b"1", b" ", b";"])
def test_a_byte_that_is_no_residue_names_its_offset(tmp_path, bad):
    data = b">a x\nACGT\n>b\nAC" + bad + b"T\nGG\n"
    path = write(tmp_path, "bad.fa", data)
    with pytest.raises(FormatError, match=rf"bad\.fa: byte 15: expected residues .*{bad!r}"[:-1]):
        partition(str(path), n=1)[0].read()


def test_a_lone_carriage_return_is_refused(tmp_path):
    path = write(tmp_path, "cr.fa", b">a\nAC\rGT\n")
    with pytest.raises(FormatError, match=r"cr\.fa: byte 5: a carriage return"):
        partition(str(path), n=1)[0].read()


def test_a_truncated_gzip_or_bgzf_stream(tmp_path):
    data = fasta_bytes(random_genome(13, 200))
    gz = write(tmp_path, "t.fa.gz", gzip.compress(data)[:-5000])
    with pytest.raises(FormatError, match=r"t\.fa\.gz: byte \d+: .*ends early"):
        for p in partition(str(gz), n=3):
            p.read()
    plain = write(tmp_path, "t.fa", data)
    pysam.tabix_compress(str(plain), str(tmp_path / "b.fa.gz"))
    whole = (tmp_path / "b.fa.gz").read_bytes()
    cut = write(tmp_path, "b-cut.fa.gz", whole[: len(whole) - 3000])
    with pytest.raises(FormatError, match=r"b-cut\.fa\.gz: byte \d+"):
        for p in partition(str(cut), n=3):
            p.read()


def test_an_empty_file_has_no_partitions(tmp_path):
    path = write(tmp_path, "e.fa", b"")
    assert partition(str(path), n=3) == []
    assert partition(str(path), n=3, by="residues") == []


# -- real files --------------------------------------------------------------------------


@pytest.mark.parametrize("real", [CHR17, GENE, ISSUE_83], ids=lambda r: r.name)
def test_real_files_match_pyfaidx_for_every_count(real_file, tmp_path, real):
    path = tmp_path / real.name
    shutil.copyfile(real_file(real), path)
    reference = faidx(path)
    assert reference == kseq(path)
    for n in COUNTS:
        assert ours(path, n) == reference, n
    assert ours(path, target_bytes=300) == reference
    pysam.faidx(str(path))
    for n in COUNTS:
        assert ours(path, n) == reference, n


@pytest.mark.parametrize("fai", [True, False])
def test_real_chromosome_part_cut_by_residues_matches_pyfaidx(real_file, tmp_path, fai):
    path = tmp_path / CHR17.name
    shutil.copyfile(real_file(CHR17), path)
    if fai:
        pysam.faidx(str(path))
    reference = tmp_path / "ref" / CHR17.name
    reference.parent.mkdir()
    shutil.copyfile(path, reference)
    with pyfaidx.Fasta(str(reference), sequence_always_upper=False) as fa:
        whole = str(fa["chr17"][:])
        for n in COUNTS:
            parts = partition(str(path), n=n, by="residues", region="chr17")
            assert len(parts) == n
            for p in parts:
                (piece,) = p.read()
                assert piece.sequence == str(fa["chr17"][piece.start : piece.end])
            assert residues(parts) == whole
        region = partition(str(path), n=5, by="residues", region="chr17:1001-30000")
        assert residues(region) == str(fa["chr17"][1000:30000])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    blob=st.binary(max_size=300).map(lambda b: b">" + b)
    | st.lists(
        st.sampled_from([b">", b"\n", b"\r\n", b"\r", b"A", b"acgt", b" x", b"\x00", b";"]),
        max_size=60,
    ).map(lambda parts: b">" + b"".join(parts)),
    n=st.integers(min_value=1, max_value=9),
    by=st.sampled_from(["records", "residues"]),
)
def test_any_bytes_give_records_or_a_format_error(tmp_path, blob, n, by):
    path = write(tmp_path, "fuzz.fa", blob)
    try:
        for p in partition(str(path), n=n, by=by):
            p.read()
    except FormatError as exc:
        message = str(exc)
    else:
        return
    assert "fuzz.fa" in message and "byte" in message

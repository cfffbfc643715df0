"""VCF partitions: every record once (against pysam), the header with each, regions by index."""

from __future__ import annotations

import functools
import gzip
import io
import itertools
import pickle
import random
import shutil
import struct
from pathlib import Path

import pytest

pysam = pytest.importorskip("pysam")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.codecs import find_start  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.vcf import (  # noqa: E402
    first_record,
    header,
    parse_region,
    plan_region,
)

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)

# -- synthetic VCF ----------------------------------------------------------------------


def contigs(count: int) -> list[tuple[str, int]]:
    base = [("chr1", 5_000_000), ("chr2", 3_000_000), ("chrX", 2_000_000)]
    return base[:count] if count <= 3 else base + [(f"ctg{i}", 200_000) for i in range(count - 3)]


def header_lines(samples: int, extra_contigs: int = 0, n_contigs: int = 3) -> list[str]:
    lines = ["##fileformat=VCFv4.2"]
    lines += [f"##contig=<ID={c},length={n}>" for c, n in contigs(n_contigs)]
    lines += [f"##contig=<ID=unplaced_scaffold_{i},length=1000>" for i in range(extra_contigs)]
    lines += [
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">',
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End">',
        '##FILTER=<ID=q10,Description="Quality below 10">',
        '##FILTER=<ID=s50,Description="Few samples">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
    ]
    columns = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
    if samples:
        columns += "\tFORMAT\t" + "\t".join(f"S{i}" for i in range(samples))
    return [*lines, columns]


@functools.cache
def record_lines(seed: int, count: int, samples: int, n_contigs: int = 3) -> tuple[str, ...]:
    """Sorted records: multi-allelic ones, missing values ('.'), long END spans, flags."""
    rng = random.Random(seed)
    chosen = contigs(n_contigs)
    out = []
    for k, (contig, length) in enumerate(chosen):
        share = count // len(chosen) + (1 if k < count % len(chosen) else 0)
        for pos in sorted(rng.randint(1, length - 100) for _ in range(share)):
            ref = "".join(rng.choices("ACGT", k=rng.choice([1, 1, 1, 3])))
            n_alt = rng.choice([1, 1, 2, 3])
            alts = ",".join("".join(rng.choices("ACGT", k=rng.randint(1, 4))) for _ in range(n_alt))
            alts = "." if rng.random() < 0.05 else alts
            qual = "." if rng.random() < 0.2 else f"{rng.uniform(0, 99):.1f}"
            info_items = [f"DP={rng.randint(0, 500)}"]
            if rng.random() < 0.3:
                info_items.append("DB")
            if rng.random() < 0.05:
                info_items.append(f"END={pos + rng.randint(1, 50_000)}")
            info = ";".join(info_items) if rng.random() > 0.05 else "."
            ident = "." if rng.random() < 0.5 else f"rs{rng.randint(1, 10**8)}"
            filt = rng.choice(["PASS", ".", "q10", "q10;s50"])
            fields = [contig, str(pos), ident, ref, alts, qual, filt, info]
            if samples:
                alleles = alts.count(",") + 2 if alts != "." else 1
                fields.append("GT:DP")
                for _ in range(samples):
                    gt = rng.choice(["{a}|{b}", "{a}/{b}", "./.", ".", "{a}"]).format(
                        a=rng.randrange(alleles), b=rng.randrange(alleles)
                    )
                    fields.append(gt if rng.random() < 0.5 else f"{gt}:{rng.randint(0, 99)}")
            out.append("\t".join(fields))
    return tuple(out)


def vcf_bytes(
    seed: int = 1, count: int = 600, samples: int = 3, extra_contigs: int = 0,
    n_contigs: int = 3, newline: str = "\n", final_newline: bool = True,
) -> bytes:  # fmt: skip
    lines = header_lines(samples, extra_contigs, n_contigs)
    lines += record_lines(seed, count, samples, n_contigs)
    return (newline.join(lines) + (newline if final_newline else "")).encode()


def write(folder: Path, name: str, data: bytes, codec: str = "none") -> str:
    """The file, written plain, as one gzip member, or in BGZF blocks (pysam's bgzip)."""
    path = folder / name
    if codec == "gzip":
        path.write_bytes(gzip.compress(data))
    elif codec == "bgzf":
        plain = folder / (name + ".plain")
        plain.write_bytes(data)
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
    else:
        path.write_bytes(data)
    return str(path)


def _f32(q: float | None) -> float | None:
    return None if q is None else struct.unpack("f", struct.pack("f", q))[0]


def reference(path: str, region: str | None = None, args: tuple | None = None) -> list[tuple]:
    """pysam's view of each record (of ``region``, or of pysam's fetch ``args``)."""
    args = args or PYSAM_ARGS.get(region or "")
    with pysam.VariantFile(path) as vcf:
        rows = vcf.fetch(*args) if args else vcf.fetch(region=region) if region else vcf
        return [
            (r.chrom, r.pos, r.id, r.ref, r.alts, r.qual, list(r.filter.keys()),
             sorted(r.info.keys()), r.stop,
             [s.get("GT") if "GT" in r.format else () for s in r.samples.values()])
            for r in rows
        ]  # fmt: skip


def ours(records) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [
        (r.chrom, r.pos, r.id, r.ref, tuple(r.alts) or None, _f32(r.qual), r.filter,
         sorted(k for k in r.info if k != "END"), r.end, r.genotypes)
        for r in records
    ]  # fmt: skip


def read_plan(parts) -> list:  # type: ignore[no-untyped-def]
    return [r for p in parts for r in p.read()]


def plain_copy(path: str, folder: Path) -> str:
    """A plain copy of a compressed file (pysam cannot read a plain gzip one)."""
    with gzip.open(path, "rb") as src:
        data = src.read()
    return write(folder, Path(path).name + ".plain.vcf", data)


def assert_every_plan_exact(url: str, expected: list, target_bytes: int) -> None:
    for n in COUNTS:
        got = ours(read_plan(partition(url, n=n)))
        assert got == expected, f"n={n}: {len(got)} records, pysam {len(expected)}"
    got = ours(read_plan(partition(url, target_bytes=target_bytes)))
    assert got == expected, f"target_bytes={target_bytes}"


# -- exactness ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
def test_every_plan_gives_pysams_records(tmp_path, codec):
    data = vcf_bytes(seed=2, count=3000, samples=4)
    url = write(tmp_path, "calls.vcf" + ("" if codec == "none" else ".gz"), data, codec)
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert any(len(row[4] or ()) > 1 for row in expected)  # multi-allelic records are there
    assert any(row[5] is None for row in expected) and any(row[4] is None for row in expected)
    assert_every_plan_exact(url, expected, target_bytes=20_000)
    assert get("vcf").codec_of(partition(url, n=2)[0]).name == codec


@pytest.mark.parametrize("codec", ["none", "bgzf", "gzip"])
def test_a_long_header_is_read_whole_and_the_first_partition_starts_after_it(tmp_path, codec):
    data = vcf_bytes(seed=3, count=400, samples=2, extra_contigs=12_000)  # ~600 KB of ##
    head_length = data.index(b"\n#CHROM") + data[data.index(b"\n#CHROM") + 1 :].index(b"\n") + 2
    assert head_length > 500_000
    url = write(tmp_path, "long.vcf" + ("" if codec == "none" else ".gz"), data, codec)
    source = RangeSource(url)
    parts = get("vcf").plan(source, n=4)
    assert parts and all(p["header"] == head_length for p in parts)
    if codec != "bgzf":  # BGZF starts at the block that holds the header's last byte
        assert parts[0]["start"] == head_length
    if codec == "none":
        assert source.requests <= 4 + 3  # the header in growing windows, then 3 boundaries
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert ours(read_plan(parts)) == expected
    assert len(header(url).contigs) == 12_003
    assert all(len(pickle.dumps(p)) < 1024 for p in parts)  # the header is not in the spec


@pytest.mark.parametrize("codec", ["none", "bgzf"])
def test_sites_only_files_have_no_sample_columns(tmp_path, codec):
    data = vcf_bytes(seed=4, count=500, samples=0)
    url = write(tmp_path, "sites.vcf" + ("" if codec == "none" else ".gz"), data, codec)
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert_every_plan_exact(url, expected, target_bytes=5_000)
    records = partition(url, n=1)[0].read()
    assert records.samples == () and records[0].format == [] and records[0].samples == {}
    frame = partition(url, n=2)[-1].to_pandas()
    assert list(frame.columns) == ["chrom", "pos", "id", "ref", "alt", "qual", "filter", "info"]


def test_many_samples_make_lines_longer_than_bgzf_blocks(tmp_path):
    # lines of ~100 KB, each longer than a BGZF block (64 KiB of text): 20 records give n=8
    # partitions of ~2.5 records, so boundaries still fall inside lines that span blocks
    data = vcf_bytes(seed=5, count=20, samples=20_000)
    url = write(tmp_path, "wide.vcf.gz", data, "bgzf")
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert max(len(line) for line in data.split(b"\n")) > 65536
    for n in (1, 3, 8):
        assert ours(read_plan(partition(url, n=n))) == expected
    first = partition(url, n=2)[0].read()[0]
    assert len(first.sample_fields) == 20_000 and list(first.samples)[:2] == ["S0", "S1"]


def test_records_of_many_contigs(tmp_path):
    data = vcf_bytes(seed=6, count=2000, samples=1, n_contigs=60)
    url = write(tmp_path, "contigs.vcf.gz", data, "bgzf")
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert len({row[0] for row in expected}) == 60
    assert_every_plan_exact(url, expected, target_bytes=7_000)


@pytest.mark.parametrize("codec", ["none", "bgzf", "gzip"])
def test_no_final_newline(tmp_path, codec):
    data = vcf_bytes(seed=7, count=300, final_newline=False)
    assert not data.endswith(b"\n")
    url = write(tmp_path, "nofinal.vcf" + ("" if codec == "none" else ".gz"), data, codec)
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert_every_plan_exact(url, expected, target_bytes=3_000)


@pytest.mark.parametrize("codec", ["none", "bgzf"])
def test_crlf_line_ends_are_read_as_htslib_reads_them(tmp_path, codec):
    data = vcf_bytes(seed=8, count=400, newline="\r\n")
    url = write(tmp_path, "crlf.vcf" + ("" if codec == "none" else ".gz"), data, codec)
    expected = reference(write(tmp_path, "ref.vcf", data))
    assert expected == reference(write(tmp_path, "lf.vcf", data.replace(b"\r\n", b"\n")))
    assert_every_plan_exact(url, expected, target_bytes=4_000)
    assert header(url).samples == ("S0", "S1", "S2")


def test_records_know_their_header_and_samples(tmp_path):
    url = write(tmp_path, "calls.vcf", vcf_bytes(seed=9, count=50, samples=2))
    records = partition(url, n=3)[2].read()
    assert records.header.samples == ("S0", "S1") == records.samples
    record = records[0]
    assert set(record.samples) == {"S0", "S1"}
    assert all(set(fields) <= {"GT", "DP"} for fields in record.samples.values())
    assert record.header is records.header
    assert header(url).contigs == ("chr1", "chr2", "chrX")
    assert header(url).ids("FILTER") == ("q10", "s50")
    assert get("vcf").header(url).text.startswith("##fileformat=VCFv4.2\n##contig=<ID=chr1")


def test_arrow_and_pandas_columns(tmp_path):
    data = vcf_bytes(seed=10, count=200, samples=2)
    url = write(tmp_path, "calls.vcf", data)
    parts = partition(url, n=3)
    frame = parts[0].to_pandas()
    assert list(frame.columns) == [
        "chrom", "pos", "id", "ref", "alt", "qual", "filter", "info", "format", "S0", "S1"
    ]  # fmt: skip
    expected = reference(write(tmp_path, "ref.vcf", data))
    rows = list(frame.itertuples(index=False))
    assert [(r.chrom, r.pos) for r in rows] == [(e[0], e[1]) for e in expected[: len(rows)]]
    assert [tuple(r.alt) or None for r in rows] == [e[4] for e in expected[: len(rows)]]
    table = get("vcf").to_arrow(parts[1])
    assert table.num_rows == len(parts[1].read())
    kinds = {get("vcf").table(p) for p in parts}
    assert len(kinds) == 1 and kinds != {"vcf"}  # one table kind per set of columns
    other = write(tmp_path, "other.vcf", vcf_bytes(seed=10, count=20, samples=3))
    assert get("vcf").table(partition(other)[0]) not in kinds


def test_a_partition_is_small_frozen_and_picklable(tmp_path):
    url = write(tmp_path, "calls.vcf.gz", vcf_bytes(seed=11, count=500, samples=300), "bgzf")
    parts = partition(url, n=4)
    for p in parts:
        blob = pickle.dumps(p)
        assert len(blob) < 1024 and b"##" not in blob
        assert ours(pickle.loads(blob).read()) == ours(p.read())
    with pytest.raises(AttributeError):
        parts[0].url = "x"  # type: ignore[misc]


def test_the_header_is_read_once_per_process_and_file_version(tmp_path):
    url = write(tmp_path, "calls.vcf", vcf_bytes(seed=12, count=400))
    parts = partition(url, n=4)
    source = RangeSource(url)
    for p in parts:
        get("vcf").read(p, source)
    assert source.requests == 4  # one per partition: the header was kept from planning


def test_a_header_only_file_has_no_partitions(tmp_path):
    url = write(tmp_path, "empty.vcf", "\n".join(header_lines(2)).encode() + b"\n")
    assert partition(url, n=3) == []
    assert header(url).samples == ("S0", "S1")


# -- split points, any records (hypothesis) ---------------------------------------------

field_text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                            blacklist_characters="#;=,:"),
                     min_size=1, max_size=8)  # fmt: skip
record_strategy = st.tuples(
    st.sampled_from(["chr1", "chr2", "2", "HLA-A*01:01"]),
    st.integers(min_value=0, max_value=2**31),
    st.one_of(st.just("."), field_text),
    st.text(alphabet="ACGTN", min_size=1, max_size=6),
    st.lists(st.text(alphabet="ACGTN*", min_size=1, max_size=4), max_size=3),
    st.one_of(st.just("."), st.floats(0, 1e6).map(lambda q: f"{q:g}")),
    st.lists(field_text, max_size=2),
    st.lists(st.tuples(field_text, st.one_of(st.none(), field_text)), max_size=3),
    st.lists(st.sampled_from(["0|1", "./.", ".", "1/2", "0", "#"]), min_size=2, max_size=2),
)


def record_line(r) -> str:  # type: ignore[no-untyped-def]
    chrom, pos, ident, ref, alts, qual, filters, info, gts = r
    info_text = ";".join(k if v is None else f"{k}={v}" for k, v in info) or "."
    fields = [chrom, str(pos), ident, ref, ",".join(alts) or ".", qual,
              ";".join(filters) or ".", info_text, "GT", *gts]  # fmt: skip
    return "\t".join(fields)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=40),
    n=st.integers(min_value=1, max_value=20),
    codec=st.sampled_from(["none", "bgzf"]),
    final=st.booleans(),
)
def test_any_records_any_partition_count(tmp_path_factory, records, n, codec, final):
    lines = [record_line(r) for r in records]
    text = "\n".join([*header_lines(2), *lines]) + ("\n" if final else "")
    folder = tmp_path_factory.mktemp("vcf")
    url = write(folder, "any.vcf" + (".gz" if codec == "bgzf" else ""), text.encode(), codec)
    got = [as_line(r) for r in read_plan(partition(url, n=n))]
    assert got == [normal(line) for line in lines]


def as_line(r) -> str:  # type: ignore[no-untyped-def]
    """A parsed record written back as a line."""
    qual = "." if r.qual is None else f"{r.qual:g}"
    fields = [r.chrom, str(r.pos), r.id or ".", r.ref, ",".join(r.alts) or ".", qual,
              ";".join(r.filter) or ".", r.info_text, r.format_text, *r.sample_fields]  # fmt: skip
    return "\t".join(fields)


def normal(line: str) -> str:
    """A line as :func:`as_line` writes it back (QUAL through a float)."""
    fields = line.split("\t")
    fields[5] = "." if fields[5] == "." else f"{float(fields[5]):g}"
    return "\t".join(fields)


@settings(max_examples=80, deadline=None)
@given(
    records=st.lists(record_strategy, min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_points_snap_to_records(records, cuts):
    body = "".join(record_line(r) + "\n" for r in records).encode()
    data = "\n".join(header_lines(2)).encode() + b"\n" + body
    head = len(data) - len(body)

    class Reader:
        size = len(data)

        def read(self, start: int, end: int) -> bytes:
            return data[max(0, start) : end]

    starts = sorted({head} | {find_start(Reader(), head + c % (len(body) + 1), first_record)
                              for c in cuts})  # fmt: skip
    bounds = [s for s in starts if s < len(data)] + [len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert b"".join(pieces) == body
    assert all(p.startswith(b"\n") is False and p.endswith(b"\n") for p in pieces)
    assert sum(p.count(b"\n") for p in pieces) == len(records)


# -- malformed input -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_file_that_is_not_vcf_is_refused_at_byte_0(tmp_path):
    url = write(tmp_path, "calls.vcf", b"##fileformat=BCF\n#CHROM\tPOS\n")
    with pytest.raises(FormatError, match=r"calls\.vcf: byte 0: .*##fileformat=VCF"):
        partition(url)
    with pytest.raises(FormatError, match=r"byte 0"):
        partition(write(tmp_path, "x.txt", b"chr1\t1\t.\tA\tC\t.\t.\t.\n"), format="vcf")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", ["none", "bgzf"])
def test_a_record_with_the_wrong_number_of_columns_names_its_offset(tmp_path, codec):
    good = vcf_bytes(seed=13, count=200, samples=3)
    at = len(good)
    data = good + b"chr9\t5\t.\tA\tC\t.\t.\t.\tGT\t0|1\t1|1\n"  # a sample short
    url = write(tmp_path, "cols.vcf" + ("" if codec == "none" else ".gz"), data, codec)
    where = rf"byte {at}:" if codec == "none" else r"byte \d+ \(a BGZF block\), uncompressed byte"
    with pytest.raises(FormatError, match=rf"cols\.vcf(\.gz)?: {where}.*expected 12 .*found 11"):
        read_plan(partition(url, n=3))


@pytest.mark.timeout(60)
def test_a_bad_pos_and_a_bad_qual_name_their_offsets(tmp_path):
    good = vcf_bytes(seed=14, count=100, samples=0)
    url = write(tmp_path, "pos.vcf", good + b"chr9\t12x\t.\tA\tC\t.\t.\t.\n")
    with pytest.raises(FormatError, match=rf"pos\.vcf: byte {len(good)}: POS must be an integer"):
        read_plan(partition(url, n=2))
    url = write(tmp_path, "qual.vcf", good + b"chr9\t12\t.\tA\tC\thigh\t.\t.\n")
    with pytest.raises(FormatError, match=rf"byte {len(good)}: QUAL must be a number"):
        read_plan(partition(url, n=2))


@pytest.mark.timeout(60)
def test_a_header_without_the_chrom_line_is_refused(tmp_path):
    data = b"##fileformat=VCFv4.2\n##source=x\nchr1\t1\t.\tA\tC\t.\t.\t.\n"
    with pytest.raises(FormatError, match=r"head\.vcf: byte 32: expected the '#CHROM' line"):
        partition(write(tmp_path, "head.vcf", data))


@pytest.mark.timeout(60)
def test_a_truncated_bgzf_file_names_the_block(tmp_path):
    whole = Path(write(tmp_path, "full.vcf.gz", vcf_bytes(seed=15, count=4000), "bgzf"))
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(FormatError, match=r"cut\.vcf\.gz: byte \d+: .*BGZF block"):
        read_plan(partition(str(cut), n=3))


@pytest.mark.timeout(60)
def test_a_truncated_last_line_is_named(tmp_path):
    good = vcf_bytes(seed=16, count=50, samples=2)
    url = write(tmp_path, "trunc.vcf", good + b"chr9\t5\t.\tA\tC\t.\t")
    with pytest.raises(FormatError, match=rf"byte {len(good)}: .*truncated\?"):
        read_plan(partition(url, n=2))


def test_a_changed_file_is_not_read_with_an_old_plan(tmp_path):
    url = write(tmp_path, "calls.vcf", vcf_bytes(seed=17, count=100))
    part = partition(url, n=2)[1]
    write(tmp_path, "calls.vcf", vcf_bytes(seed=18, count=120))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


# -- regions through the index -----------------------------------------------------------

REGIONS = ("chr1", "chr2:1-1000000", "chrX:500,000-1,500,000", "chr2:2999000-", "chr1:1234")
#: The same regions as pysam's fetch takes them (contig, 0-based start, end): its parser
#: takes neither commas nor an open end, which tabix and bcftools take.
PYSAM_ARGS = {
    "chr2:1-1000000": ("chr2", 0, 1_000_000),
    "chrX:500,000-1,500,000": ("chrX", 499_999, 1_500_000),
    "chr2:2999000-": ("chr2", 2_998_999, None),
    "chr1:1234": ("chr1", 1233, None),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """One BGZF file with a .tbi, and a copy with a .csi (as pysam.tabix_index writes them)."""
    folder = tmp_path_factory.mktemp("indexed")
    data = vcf_bytes(seed=20, count=6000, samples=2)
    tbi = write(folder, "calls.vcf.gz", data, "bgzf")
    csi = str(folder / "csi.vcf.gz")
    shutil.copy(tbi, csi)
    pysam.tabix_index(tbi, preset="vcf", force=True)
    pysam.tabix_index(csi, preset="vcf", force=True, csi=True)
    return {"tbi": tbi, "csi": csi, "folder": folder, "data": data}


@pytest.mark.parametrize("kind", ["tbi", "csi"])
@pytest.mark.parametrize("region", REGIONS)
def test_region_plans_give_what_pysam_fetch_gives(indexed, kind, region):
    url = indexed[kind]
    expected = reference(url, region)
    for n in COUNTS:
        got = ours(read_plan(plan_region(url, region, n=n)))
        assert got == expected, f"{region} n={n}"
    got = ours(read_plan(plan_region(url, region, target_bytes=10_000)))
    assert got == expected


@pytest.mark.parametrize("kind", ["tbi", "csi"])
def test_a_region_plan_costs_at_most_two_requests_per_partition(indexed, kind):
    source = RangeSource(indexed[kind])
    parts = get("vcf").plan(source, n=8, region="chr1")
    assert len(parts) == 8
    assert source.requests <= 2 * len(parts)
    for p in parts:
        reading = RangeSource(indexed[kind])
        get("vcf").read(p, reading)
        assert reading.requests <= 2  # the header (once per process), the partition's bytes
    assert all(len(pickle.dumps(p)) < 1024 for p in parts)


def test_a_region_on_an_unknown_contig_has_no_partitions(indexed):
    assert plan_region(indexed["tbi"], "chr7:1-100", n=4) == []


def test_an_index_whose_contig_names_are_not_the_files_is_refused(indexed, tmp_path):
    """A contig missing from a damaged index is not taken as a contig without records."""
    url = str(tmp_path / "calls.vcf.gz")
    shutil.copy(indexed["tbi"], url)
    names = gzip.decompress(Path(indexed["tbi"] + ".tbi").read_bytes())
    assert names.count(b"chr2\0") == 1
    Path(url + ".tbi").write_bytes(gzip.compress(names.replace(b"chr2\0", b"bhr2\0")))
    with pytest.raises(FormatError, match=r"not of 'bhr2': the index belongs to another file"):
        plan_region(url, "chr2:100000-2000000", n=2)


def test_regions_are_parsed_as_tabix_does():
    assert (parse_region("chr1:1,000-2,000").beg, parse_region("chr1:1,000-2,000").end) == (
        999,
        2000,
    )
    assert parse_region("HLA-A*01:01", ("HLA-A*01:01",)).contig == "HLA-A*01:01"
    with pytest.raises(FormatError, match="its end is before its start"):
        parse_region("chr1:200-100")


def test_region_needs_an_index_and_bgzf(tmp_path):
    data = vcf_bytes(seed=21, count=100)
    plain = write(tmp_path, "plain.vcf", data)
    with pytest.raises(FormatError, match=r"plain\.vcf: region= needs a BGZF file"):
        plan_region(plain, "chr1")
    bgzf = write(tmp_path, "noindex.vcf.gz", data, "bgzf")
    with pytest.raises(FormatError, match=r"noindex\.vcf\.gz\.tbi or .*\.csi"):
        plan_region(bgzf, "chr1")


def test_an_index_of_another_file_is_refused_naming_the_index(indexed, tmp_path):
    other = write(tmp_path, "other.vcf.gz", vcf_bytes(seed=22, count=6000, samples=2), "bgzf")
    shutil.copy(indexed["tbi"] + ".tbi", other + ".tbi")  # same layout, other records
    with pytest.raises(FormatError, match=r"other\.vcf\.gz\.tbi: .*another file"):
        read_plan(plan_region(other, "chr2", n=4))
    small = write(tmp_path, "small.vcf.gz", vcf_bytes(seed=22, count=50, samples=2), "bgzf")
    shutil.copy(indexed["tbi"] + ".tbi", small + ".tbi")  # points past the end
    with pytest.raises(FormatError, match=r"small\.vcf\.gz\.tbi: points at byte .* another file"):
        plan_region(small, "chrX")


@pytest.mark.parametrize("damage", ["cut", "garbage", "not-gzip"])
def test_a_corrupt_index_is_refused_naming_it(indexed, tmp_path, damage):
    url = str(tmp_path / "calls.vcf.gz")
    shutil.copy(indexed["tbi"], url)
    blob = Path(indexed["tbi"] + ".tbi").read_bytes()
    raw = gzip.decompress(blob)
    bad = {
        "cut": gzip.compress(raw[: len(raw) // 2]),
        "garbage": gzip.compress(b"XYZ\x01" + raw[4:]),
        "not-gzip": raw,
    }[damage]
    Path(url + ".tbi").write_bytes(bad)
    with pytest.raises(FormatError, match=r"calls\.vcf\.gz\.tbi: "):
        plan_region(url, "chr1", n=3)


@pytest.mark.parametrize("kind", ["tbi", "csi"])
@pytest.mark.parametrize("change", [-1, 1])
def test_an_index_whose_name_count_differs_from_n_ref_is_refused(indexed, tmp_path, kind, change):
    url = str(tmp_path / "calls.vcf.gz")
    shutil.copy(indexed[kind], url)
    raw = bytearray(gzip.decompress(Path(indexed[kind] + "." + kind).read_bytes()))
    at = 4 if kind == "tbi" else 16 + struct.unpack_from("<i", raw, 12)[0]  # n_ref
    struct.pack_into("<i", raw, at, struct.unpack_from("<i", raw, at)[0] + change)
    Path(url + "." + kind).write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(FormatError, match=rf"calls\.vcf\.gz\.{kind}: uncompressed byte {at}: "
                       r"the index counts \d+ contigs \(n_ref\) but names 3"):  # fmt: skip
        plan_region(url, "chrX", n=2)


def test_an_index_named_explicitly(indexed, tmp_path):
    url = str(tmp_path / "calls.vcf.gz")
    shutil.copy(indexed["tbi"], url)
    elsewhere = tmp_path / "indexes" / "calls.tbi"
    elsewhere.parent.mkdir()
    shutil.copy(indexed["tbi"] + ".tbi", elsewhere)
    got = ours(read_plan(plan_region(url, "chrX", n=3, index=str(elsewhere))))
    assert got == reference(indexed["tbi"], "chrX")


# -- real files written by other people's tools --------------------------------------------


def pyvcf3(name: str, sha256: str) -> RealFile:
    """A test file of PyVCF3's sdist (written by bcftools, freebayes, tabix ...)."""
    return RealFile("pyvcf3", "1.0.4", f"vcf/test/{name}", sha256, "BSD-3-Clause (PyVCF)")


BCFTOOLS_VCF = pyvcf3(
    "bcftools.vcf", "c2cbc3fe92c3b8425d79a052076ab90d3e5f09ffccbb385d5e59d6ba8607a596"
)
FREEBAYES_VCF = pyvcf3(
    "freebayes.vcf", "2b2f21393395df4059f1c0f0cb7b1de6779f2481171ad213059b87a047c4ec54"
)
KG_GZIP = pyvcf3("1kg.vcf.gz", "370d4d798f75805810c488871055cfd04c635a4e28489c8e7d7ba536bd96dc5a")
TB_BGZF = pyvcf3("tb.vcf.gz", "186dd907ccde393e7e3357a17b595269adab6aa70a040d865b83244cf0a6e25a")
TB_TBI = pyvcf3("tb.vcf.gz.tbi", "78b274c3c1d26b3ce9c69dfb8bc9ea40e7bcc1a05a93845ade5857719975418c")
ISSUE_201 = pyvcf3(
    "issue-201.vcf.gz", "de86e7aad27fafe4a133abf90af26f5230cd459b2a704aad999025ef4099b46a"
)
ISSUE_201_TBI = pyvcf3(
    "issue-201.vcf.gz.tbi", "df640ba1fb00a55d0594662412c0d9fed65e81e8ee9c0d75cde0a9870f2d37f9"
)


@pytest.mark.parametrize("real", [BCFTOOLS_VCF, FREEBAYES_VCF], ids=lambda r: r.name)
def test_real_plain_files_match_pysam(real_file, real):
    path = str(real_file(real))
    expected = reference(path)
    assert len(expected) > 100
    assert_every_plan_exact(path, expected, target_bytes=8_000)


def test_a_real_gzip_file_of_629_samples_matches_pysam(real_file, tmp_path):
    path = str(real_file(KG_GZIP))
    expected = reference(plain_copy(path, tmp_path))  # pysam cannot seek in plain gzip
    assert len(expected) == 381 and len(expected[0][9]) == 629
    assert get("vcf").codec_of(partition(path)[0]).name == "gzip"
    assert_every_plan_exact(path, expected, target_bytes=100_000)


@pytest.mark.parametrize(("data", "index"), [(TB_BGZF, TB_TBI), (ISSUE_201, ISSUE_201_TBI)],
                         ids=["tb", "issue-201"])  # fmt: skip
def test_real_bgzf_files_with_their_tbi(real_file, data, index):
    path = str(real_file(data))
    real_file(index)  # fetched beside it
    expected = reference(path)
    assert_every_plan_exact(path, expected, target_bytes=200)
    source = RangeSource(path)
    contig = expected[0][0]
    first, last, second = expected[0][1], expected[-1][1], expected[1][1] + 1
    for region, args in [
        (contig, (contig,)),
        (f"{contig}:{first}-{last}", (contig, first - 1, last)),
        (f"{contig}:{second}-", (contig, second - 1, None)),
    ]:
        want = reference(path, args=args)
        assert want
        for n in COUNTS:
            assert ours(read_plan(get("vcf").plan(source, n=n, region=region))) == want


# -- through aif:// on S3 ------------------------------------------------------------------


def test_byte_range_and_region_plans_through_aif_on_s3(genomics_fs, tmp_path):
    data = vcf_bytes(seed=30, count=8000, samples=3)
    local = write(tmp_path, "calls.vcf.gz", data, "bgzf")
    pysam.tabix_index(local, preset="vcf", force=True)
    genomics_fs.pipe("genomics/run42/calls.vcf.gz", Path(local).read_bytes())
    genomics_fs.pipe("genomics/run42/calls.vcf.gz.tbi", Path(local + ".tbi").read_bytes())
    url = "aif://genomics/run42/calls.vcf.gz"
    parts = partition(url, n=5)
    assert len(parts) == 5 and all(len(pickle.dumps(p)) < 1024 for p in parts)
    assert ours(read_plan(parts)) == reference(local)
    regional = plan_region(url, "chr2:100000-2000000", n=4)
    assert len(regional) == 4
    assert ours(read_plan(regional)) == reference(local, "chr2:100000-2000000")
    assert header(url).samples == ("S0", "S1", "S2")
    frame = io.StringIO(parts[0].to_pandas().head(3).to_csv())
    assert "chrom" in frame.getvalue()


# -- fuzzing: mutated files and indexes give FormatError only ------------------------------


def test_fuzz_mutated_vcf_files(tmp_path):
    from .test_fuzz import fuzz_file, mutated

    seeds = [vcf_bytes(seed=40, count=30, samples=2), vcf_bytes(seed=41, count=20, samples=0)]
    packed = [
        Path(write(tmp_path, f"s{i}.vcf.gz", seed, "bgzf")).read_bytes()
        for i, seed in enumerate(seeds)
    ]
    blobs = st.sampled_from([*seeds, *packed]).flatmap(mutated)
    fuzz_file("VCF, mutated", blobs, ["calls.vcf", "calls.vcf.gz", "calls.bin"], [None, "vcf"])


def test_fuzz_mutated_indexes(indexed, tmp_path):
    """A damaged index is refused (FormatError), or gives records that tabix gives."""
    from .test_fuzz import mutated

    url = str(tmp_path / "calls.vcf.gz")
    shutil.copy(indexed["tbi"], url)
    inflated = gzip.decompress(Path(indexed["tbi"] + ".tbi").read_bytes())
    region = "chr2:100000-2000000"
    expected = reference(indexed["tbi"], region)

    @settings(max_examples=60, deadline=None, database=None)
    @given(blob=mutated(inflated), n=st.integers(min_value=1, max_value=5))
    def run(blob: bytes, n: int) -> None:
        Path(url + ".tbi").write_bytes(gzip.compress(blob))
        try:
            got = ours(read_plan(plan_region(url, region, n=n)))
        except FormatError:
            return
        assert got == expected

    run()


@pytest.mark.parametrize(
    "options",
    [{"samples": 3}, {"samples": 0}, {"newline": "\r\n"}, {"final_newline": False}],
    ids=["samples", "sites-only", "crlf", "no-final-newline"],
)
def test_arrows_csv_reader_gives_the_table_of_the_records(tmp_path, options):
    from aifdata.formats.vcf import to_arrow

    url = write(tmp_path, "calls.vcf.gz", vcf_bytes(seed=50, count=800, **options), "bgzf")
    for p in partition(url, n=3):
        assert p.read(as_arrow=True).equals(to_arrow(p.read()))


def test_the_arrow_path_names_a_bad_record_as_the_records_path_does(tmp_path):
    good = vcf_bytes(seed=51, count=100, samples=2)
    for bad, why in [(b"chr9\t5\t.\tA\tC\t.\t.\t.\tGT\t0\n", "expected 11"),
                     (b"chr9\t-5\t.\tA\tC\t.\t.\t.\tGT\t0\t1\n", "POS must be an integer"),
                     (b"chr9\t.\t.\tA\tC\t.\t.\t.\tGT\t0\t1\n", "POS must be an integer"),
                     (b"chr9\t5\t.\tA\tC\thi\t.\t.\tGT\t0\t1\n", "QUAL must be")]:  # fmt: skip
        url = write(tmp_path, "bad.vcf", good + bad)
        with pytest.raises(FormatError, match=rf"bad\.vcf: byte {len(good)}: {why}"):
            [p.read(as_arrow=True) for p in partition(url, n=2)]


def test_records_pickle_with_their_header(tmp_path):
    url = write(tmp_path, "calls.vcf", vcf_bytes(seed=52, count=20, samples=2))
    record = partition(url)[0].read()[3]
    again = pickle.loads(pickle.dumps(record))
    assert again == record and again.header.samples == ("S0", "S1")
    assert (again.chrom, again.pos, again.genotypes) == (record.chrom, record.pos, record.genotypes)

"""VCF records read fast: a record is its line, checked in bulk, exactly as line by line."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifdata import FormatError
from aifdata.codecs import Text
from aifdata.formats import partition
from aifdata.formats.vcf import parse, parse_header

pysam = pytest.importorskip("pysam")

HEAD = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000000>\n##contig=<ID=chr2,length=9000>\n"
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS0\tS1\n"
)
HEADER = parse_header(HEAD.encode(), "mem.vcf", "none")


def line(pos: str = "100", qual: str = "50", chrom: str = "chr1", samples: int = 2) -> str:
    fields = [chrom, pos, "rs1", "A", "C,G", qual, "PASS", "DP=3", "GT"]
    return "\t".join(fields + ["0|1"] * samples)


def records(body: str) -> list:
    return parse(Text("mem.vcf", body.encode(), len(HEAD), True), HEADER)


def test_a_record_is_its_line_and_its_fields_are_the_columns():
    text = line() + "\n" + line(pos="200", qual=".") + "\n"
    got = records(text)
    assert [str(r) for r in got] == text.splitlines()
    first = got[0]
    assert first.fields == tuple(line().split("\t", 9))
    assert (first.chrom, first.pos, first.id, first.ref, first.alts) == ("chr1", 100, "rs1", "A",
                                                                         ["C", "G"])  # fmt: skip
    assert (first.qual, first.filter, first.info, first.format) == (50.0, ["PASS"], {"DP": "3"},
                                                                    ["GT"])  # fmt: skip
    assert first.sample_fields == ["0|1", "0|1"] and first.genotypes == [(0, 1), (0, 1)]
    assert got[1].qual is None
    again = pickle.loads(pickle.dumps(first))
    assert again == first and again.header == HEADER and again.pos == 100


def test_a_record_pickled_as_its_columns_loads_as_its_line():
    from aifdata.formats.vcf import _record

    old = _record(tuple(line().split("\t", 9)), HEADER)  # how records pickled before
    assert str(old) == line() and old.pos == 100


@pytest.mark.parametrize("qual", ["1e-3", "nan", "inf", "-5", "1_0", "5.", ".5", "007"])
def test_a_qual_python_reads_as_a_number_is_taken(qual):
    (record,) = records(line(qual=qual) + "\n")
    assert record.qual == float(qual) or qual == "nan"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (line(qual="abc"), "QUAL must be a number or '.', found 'abc'"),
        (line(qual=""), "QUAL must be a number or '.', found ''"),
        (line(qual="1.2.3"), "QUAL must be a number or '.', found '1.2.3'"),
        (line(pos="12a"), "POS must be an integer, found '12a'"),
        (line(pos=""), "POS must be an integer, found ''"),
        (line(pos="-5"), "POS must be an integer, found '-5'"),
        (line(pos="\u0661\u0662"), "POS must be an integer"),  # digits, not ASCII ones
        (line(samples=1), "expected 11 tab-separated columns"),
        (line(samples=3), "expected 11 tab-separated columns"),
        ("#" + line(), "a '#' line among the records"),
    ],
)
def test_a_bad_record_among_good_ones_is_named_by_its_offset(bad, why):
    good = line() + "\n"
    body = good * 3 + bad + "\n" + good
    with pytest.raises(FormatError, match=rf"mem\.vcf: byte {len(HEAD) + 3 * len(good)}: "
                                          + re.escape(why)):  # fmt: skip
        records(body)


def test_a_pos_too_long_to_read_in_bulk_is_still_an_integer():
    digits = "1" * 30
    (record,) = records(line(pos=digits) + "\n")
    assert record.pos == int(digits)


def test_crlf_and_blank_lines_are_read_as_before():
    body = line() + "\r\n\r\n" + line(pos="7") + "\r\n\n"
    assert [r.pos for r in records(body)] == [100, 7]
    assert all("\r" not in str(r) for r in records(body))


FIELD = st.text(alphabet="0123456789.-eE_naf#x \u0661", max_size=6)


def expected_error(lines: list[str]) -> int | None:
    """The index of the first line a careful reader refuses (None: all are good)."""
    for i, text in enumerate(lines):
        fields = text.split("\t")
        if len(fields) != 11 or text.startswith("#"):
            return i
        pos, qual = fields[1], fields[5]
        if not (pos.isdigit() and pos.isascii()):
            return i
        if qual != ".":
            try:
                float(qual)
            except ValueError:
                return i
    return None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(FIELD, FIELD, st.integers(1, 3), st.booleans()), min_size=1, max_size=8))
def test_the_bulk_check_refuses_exactly_what_a_line_by_line_check_refuses(rows):
    lines = [("#" if hashed else "") + line(pos, qual, samples=samples)
             for pos, qual, samples, hashed in rows]  # fmt: skip
    body = "".join(f"{text}\n" for text in lines)
    wrong = expected_error(lines)
    if wrong is None:
        assert [str(r) for r in records(body)] == lines
        return
    at = len(HEAD) + sum(len(text.encode()) + 1 for text in lines[:wrong])
    with pytest.raises(FormatError, match=rf"mem\.vcf: byte {at}: "):
        records(body)


def test_region_reads_keep_records_that_reach_in_from_before(tmp_path):
    """A record that starts before the region and reaches into it (its REF, or INFO END)
    is in it, as tabix says; one on another contig or past its end is not."""
    rows = [
        ("chr1", 100, "A", "."),
        ("chr1", 900, "ACGTACGTAC", "."),  # REF covers 900..909
        ("chr1", 950, "A", "END=1500"),  # reaches far in
        ("chr1", 990, "A", "END=1005"),
        ("chr1", 995, "A", "."),
        ("chr1", 1000, "A", "."),
        ("chr1", 1400, "A", "."),
        ("chr1", 2000, "A", "."),
        ("chr1", 2001, "A", "."),
        ("chr2", 1200, "A", "."),
    ]
    body = "".join(f"{c}\t{p}\t.\t{ref}\tC\t10\tPASS\t{info}\tGT\t0|1\t1|1\n"
                   for c, p, ref, info in rows)  # fmt: skip
    plain = tmp_path / "reach.vcf"
    plain.write_text(HEAD + body)
    packed = tmp_path / "reach.vcf.gz"
    pysam.tabix_compress(str(plain), str(packed), force=True)
    pysam.tabix_index(str(packed), preset="vcf", force=True)
    for region in ("chr1:1000-2000", "chr1:905-905", "chr1:1501-1999", "chr2", "chr1"):
        with pysam.VariantFile(str(packed)) as f:
            expected = [(r.chrom, r.pos) for r in f.fetch(region=region)]
        got = [(r.chrom, r.pos) for n in (1, 2, 3) for p in partition(str(packed), n=n,
               region=region) for r in p.read()]  # fmt: skip
        assert got == expected * 3, region
        arrow = [p.read(as_arrow=True) for p in partition(str(packed), n=2, region=region)]
        assert [pos for t in arrow for pos in t["pos"].to_pylist()] == [p for _, p in expected]

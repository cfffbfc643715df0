"""SAM partitions as Arrow tables built column by column (formats/_sam_arrow.py).

Every table must equal the one the record-by-record reading gives (``to_arrow`` of
the records ``parse`` reads): same schema, same values. Lines the columnar pass
cannot take make it answer None, and the reading then names the bad line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.codecs import Text  # noqa: E402
from aifdata.formats import RangeSource, _sam_arrow, get, partition  # noqa: E402
from aifdata.formats.bam import to_arrow  # noqa: E402
from aifdata.formats.sam import _columns, parse  # noqa: E402

from .test_sam_real import BWA_SAM, EX1_HEADER_SAM, compressed  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
REFS = ("chr1", "chr2", "contig_3")
HEADER = "@HD\tVN:1.6\n" + "".join(f"@SQ\tSN:{r}\tLN:100000\n" for r in REFS)
SEQ, QUAL = "ACGTACGTAC", "IIIII#####"


def text(data: bytes, last: bool = True) -> Text:
    return Text("mem.sam", data, 0, last)


def old_table(t: Text, references: tuple[str, ...] = REFS):
    return to_arrow([_columns(parse(t, references), references)])


def check(data: bytes, last: bool = True, references: tuple[str, ...] = REFS):
    t = text(data, last)
    new = _sam_arrow.table(t, references)
    assert new is not None, data[:200]
    old = old_table(t, references)
    assert new.schema == old.schema
    assert new.equals(old), (new.to_pylist()[:3], old.to_pylist()[:3])
    return new


def line(*fields: object) -> str:
    return "\t".join(map(str, fields)) + "\n"


HARD = [
    line("r1", 99, "chr1", 100, 60, "10M", "=", 300, 210, SEQ, QUAL, "NM:i:0", "MD:Z:10"),
    line("r2", 147, "chr1", 300, 60, "3S7M", "=", 100, -210, SEQ, QUAL, "AS:i:-7"),
    line("r3", 4, "*", 0, 0, "*", "*", 0, 0, SEQ, QUAL),  # unmapped, unplaced
    line("r4", 73, "chr2", 5, 0, "*", "=", 5, 0, SEQ, "*"),  # no CIGAR, no QUAL
    line("r5", 0, "contig_3", 1, 255, "2M1000N8M", "chr1", 1, 0, "*", "*", "RG:Z:grp 1"),
    line("r6", 16, "chr2", 1, 3, "4M2D6M", "contig_3", 7, 0, SEQ, QUAL),
    line("r7", 69, "chr1", 100, 0, "10M", "=", 100, 0, SEQ, QUAL),  # unmapped, placed
    line("*", 0, "chr1", 1, 0, "0M", "*", 0, 0, "*", "*"),  # a CIGAR of no bases
    line("r9", 0, "chr1", 1, 0, "5H10M5H", "*", 0, 0, SEQ, "!!!!!~~~~~"),
]
TAGS = [
    "XA:A:x", "XI:i:0", "XI:i:-1", "XI:i:300", "XI:i:-300", "XI:i:70000", "XI:i:-70000",
    "XI:i:4294967295", "XF:f:1.5", "XF:f:-0.25", "XF:f:1e-10", "XZ:Z:", "XZ:Z:a b:c",
    "XZ:Z:héllo", "XH:H:1AE3", "XB:B:c,-1,2", "XB:B:C,1,255", "XB:B:s,-300",
    "XB:B:S,65535", "XB:B:i,-5,5", "XB:B:I,7", "XB:B:f,1.5,-2", "XB:B:c",
    "XI:i:+5", "XI:i:007", "XF:f:1.50", "XI:i:-0", "XI:i:-2147483648", "XI:i:2147483648",
    "AB:i:77", "XI:i:-00", "1 :Z:x", "a;:i:5", "~!:Z:a:b",
]  # fmt: skip


def test_hard_cases_equal_the_record_reading():
    table = check((HEADER + "".join(HARD)).encode())
    assert len(table) == len(HARD)
    row = table.to_pylist()
    assert row[0]["next_reference_name"] == "chr1" and row[0]["reference_start"] == 99
    assert row[2]["reference_name"] is None and row[2]["reference_start"] == -1
    assert row[3]["query_qualities"] is None and row[3]["next_reference_name"] == "chr2"
    assert row[4]["query_sequence"] is None and row[4]["reference_end"] == 1010
    assert row[6]["reference_end"] is None


@pytest.mark.parametrize("tag", TAGS)
def test_tags_of_every_type(tag):
    body = line("r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, tag, "NM:i:1")
    table = check(body.encode())
    assert table["tags"][0].as_py().endswith("NM:i:1")


def test_all_tag_types_in_one_partition():
    body = "".join(
        line(f"r{i}", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, tag)
        for i, tag in enumerate(TAGS)
    )
    check(body.encode())


def test_crlf_line_ends():
    data = (HEADER + "".join(HARD)).replace("\n", "\r\n").encode()
    assert len(check(data)) == len(HARD)


@pytest.mark.parametrize(
    "data", [b"", b"\n", HEADER.encode(), b"\n\n", (HEADER + "\n".join([""] * 3)).encode()]
)
def test_empty_partitions(data):
    assert len(check(data)) == 0


@pytest.mark.parametrize("last", [True, False])
def test_a_last_line_without_its_newline(last):
    data = ("".join(HARD)).rstrip("\n").encode()
    table = check(data, last)
    assert len(table) == len(HARD) - (not last)


BAD = {
    "too few fields": line("r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ),
    "a non-integer": line("r1", "x", "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL),
    "a hex integer": line("r1", 0, "chr1", "0x10", 0, "10M", "*", 0, 0, SEQ, QUAL),
    "an unknown reference": line("r1", 0, "chrX", 1, 0, "10M", "*", 0, 0, SEQ, QUAL),
    "an unknown mate reference": line("r1", 0, "chr1", 1, 0, "10M", "chrX", 0, 0, SEQ, QUAL),
    "a bad CIGAR": line("r1", 0, "chr1", 1, 0, "10Q", "*", 0, 0, SEQ, QUAL),
    "a CIGAR of other length": line("r1", 0, "chr1", 1, 0, "9M", "*", 0, 0, SEQ, QUAL),
    "a QUAL of other length": line("r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL[:-1]),
    "a bad tag": line("r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, "NM:q:1"),
    "a tag of no name": line("r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, "::Z:1"),
    "an integer tag out of range": line(
        "r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, "XI:i:4294967296"
    ),
    "an integer tag below range": line(
        "r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, "XI:i:-2147483649"
    ),
    "an empty tag": line("r1", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, ""),
}


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_a_bad_record_is_refused_and_named_with_its_offset(tmp_path, bad):
    good = "".join(HARD)
    data = (HEADER + good + BAD[bad] + good).encode()
    assert _sam_arrow.table(text(data), REFS) is None
    path = tmp_path / "bad.sam"
    path.write_bytes(data)
    offset = len((HEADER + good).encode())
    with pytest.raises(FormatError, match=rf"bad\.sam: byte {offset}: not a SAM record"):
        for p in partition(str(path), n=1):
            get("sam").to_arrow(p)


@pytest.mark.parametrize("pos", [2**63 - 1, -(2**63), 2**63])
def test_positions_past_int64_are_left_to_the_record_reading(pos):
    data = line("r1", 0, "chr1", pos, 0, "10M", "*", 0, 0, SEQ, QUAL).encode()
    assert _sam_arrow.table(text(data), REFS) is None


def test_bytes_that_are_not_utf8_are_refused(tmp_path):
    data = (HEADER + line("r\xff", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL)).encode("latin-1")
    assert _sam_arrow.table(text(data), REFS) is None


names = st.text("abcXYZ:_0123456789", min_size=1, max_size=6).filter(lambda s: s[0] != "@")
bases = st.text("ACGTN", min_size=1, max_size=12)


@st.composite
def records(draw) -> str:
    seq = draw(bases)
    kind = draw(st.sampled_from(["mapped", "unmapped", "nocigar", "noseq"]))
    ref = draw(st.sampled_from(REFS))
    qual = draw(st.sampled_from(["*", "".join(chr(33 + (i * 7) % 90) for i in range(len(seq)))]))
    mate = draw(st.sampled_from(["*", "=", *REFS]))
    tags = draw(st.lists(st.sampled_from([*TAGS, "NM:i:3", "MD:Z:5A4", "RG:Z:g"]), max_size=3))
    flag = draw(st.sampled_from([0, 4, 16, 99, 147, 77]))
    pos, pnext = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    if kind == "unmapped":
        ref, cigar, flag = "*", "*", flag | 4
    elif kind == "nocigar":
        cigar = "*"
    else:
        cigar = draw(st.sampled_from([f"{len(seq)}M", f"1S{len(seq) - 1}M" if len(seq) > 1
                                      else "1M", f"{len(seq)}M3D"]))  # fmt: skip
    if kind == "noseq":
        seq, qual = "*", "*"
    fields = [draw(names), flag, ref, pos, draw(st.integers(0, 255)), cigar, mate, pnext,
              draw(st.integers(-1000, 1000)), seq, qual, *tags]  # fmt: skip
    return line(*fields)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), max_size=30), st.data(), st.booleans())
def test_any_records_any_split(lines, data, crlf):
    body = HEADER + "".join(lines)
    if crlf:
        body = body.replace("\n", "\r\n")
    raw = body.encode()
    check(raw)
    cut = data.draw(st.integers(0, len(raw)))
    cut = raw.find(b"\n", cut) + 1 or len(raw)  # a partition ends after a line
    first, second = check(raw[:cut], last=False), check(raw[cut:])
    whole = check(raw)
    assert pa.concat_tables([first, second]).equals(whole)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=40), st.sampled_from(COUNTS), st.booleans())
def test_any_records_any_partition_count(lines, n, crlf):
    """Through the format's plan: the partitions' tables, joined, are the whole file's."""
    body = HEADER + "".join(lines)
    raw = (body.replace("\n", "\r\n") if crlf else body).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.sam"
        path.write_bytes(raw)
        tables = [get("sam").to_arrow(p) for p in partition(str(path), n=n)]
    assert pa.concat_tables(tables).equals(old_table(text(raw)))


def read_both(path: Path, n: int):
    """Every partition's table by the columnar pass and by the records."""
    sam = get("sam")
    for part in partition(str(path), format="sam", n=n):
        new = sam.to_arrow(part)
        refs = sam.references(RangeSource(str(path)))
        old = to_arrow([_columns(sam.read(part), refs)])
        yield new, old


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
@pytest.mark.parametrize("real", [EX1_HEADER_SAM, BWA_SAM], ids=["samtools-maq", "bwa"])
def test_real_sam_tables_equal_the_record_reading(real_file, tmp_path, real, codec, n):
    path = compressed(real_file(real), codec, tmp_path)
    total = 0
    for new, old in read_both(path, n):
        assert new.schema == old.schema
        assert new.equals(old)
        total += len(new)
    assert total >= 200


def test_the_columnar_pass_takes_the_real_files_whole(real_file):
    for real in (EX1_HEADER_SAM, BWA_SAM):
        path = real_file(real)
        data = path.read_bytes()
        refs = get("sam").references(RangeSource(str(path)))
        check(data, references=refs)


def test_to_arrow_makes_no_record_objects(tmp_path, monkeypatch):
    """The format's to_arrow takes the columnar pass: the record reading is not called."""
    from aifdata.formats import sam as sam_module

    path = tmp_path / "a.sam"
    path.write_bytes((HEADER + "".join(HARD) * 50).encode())
    expected = [old_table(text(path.read_bytes()))]

    def refuse(*args, **kwargs):
        raise AssertionError("the record reading was called")

    monkeypatch.setattr(sam_module, "parse", refuse)
    tables = [get("sam").to_arrow(p) for p in partition(str(path), n=3)]
    assert pa.concat_tables(tables).equals(expected[0])


def test_arrow_tables_of_a_sam_on_s3_through_aif(genomics_fs, tmp_path):
    """Planned and read through ``aif://`` over S3: the same tables as the local file's."""
    raw = (HEADER + "".join(HARD) * 200).encode()
    genomics_fs.pipe("genomics/run7/reads.sam", raw)
    parts = partition("aif://genomics/run7/reads.sam", n=5)
    assert len(parts) == 5
    tables = [get("sam").to_arrow(p) for p in parts]
    assert pa.concat_tables(tables).equals(old_table(text(raw)))


def test_tags_rewritten_among_lines_without_tags():
    """A char tag reads back as a string tag: those lines' tags are rewritten, the others
    (no tags, or tags that read back as written) kept."""
    with_char = line("rA", 0, "chr1", 1, 0, "10M", "*", 0, 0, SEQ, QUAL, "XT:A:U", "NM:i:0")
    table = check((HEADER + "".join(HARD) + with_char + "".join(HARD)).encode())
    assert table["tags"][len(HARD)].as_py() == "XT:Z:U\tNM:i:0"
    assert table["tags"][2].as_py() == ""

"""SAM records read column by column: the same records as line by line, or line by line."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifdata import FormatError
from aifdata.codecs import Text
from aifdata.formats import sam

REFS = ("chr1", "chr2")
GOOD = [
    "r1\t99\tchr1\t100\t60\t4M\t=\t300\t204\tACGT\tIIII\tNM:i:0\tRG:Z:g1",
    "r2\t147\tchr1\t300\t60\t2S2M\t=\t100\t-204\tACGT\t#+5I\tAS:i:-300\tXF:f:1.5\tXA:A:x",
    "r3\t0\tchr2\t5\t0\t1M1I1D1M\t*\t0\t0\tACG\t*\tZB:B:c,-1,2,3\tZH:H:1AE3",
    "r4\t4\t*\t0\t0\t*\t*\t0\t0\tACGTAC\tIIIIII",
    "r5\t0\tchr2\t9\t7\t10S\tchr1\t4\t0\tACGTACGTAC\t*\tXI:i:70000\tXS:i:4000000000",
    "r6\t4\tchr2\t9\t0\t5H\t*\t0\t0\t*\t*",
]


def text(lines: list[str], last: bool = True, end: str = "\n") -> Text:
    return Text("mem.sam", "".join(f"{line}{end}" for line in lines).encode(), 0, last)


def test_columns_give_the_records_lines_give():
    for lines in (GOOD, GOOD[::-1], GOOD[:1], ["@HD\tVN:1.6", *GOOD], [*GOOD[:2], "", *GOOD]):
        got = sam._parse_columns(text(lines), REFS)
        assert got is not None
        assert got == sam._parse_lines(text(lines), REFS)
        assert [r.query_name for r in got] == [x.split("\t")[0] for x in lines if x[:1] not in "@"]


def test_a_last_line_without_its_line_end_counts_only_at_the_end_of_the_file():
    data = ("\n".join(GOOD)).encode()
    whole = sam.parse(Text("mem.sam", data, 0, True), REFS)
    assert [r.query_name for r in whole] == [f"r{i}" for i in range(1, 7)]
    cut = sam.parse(Text("mem.sam", data, 0, False), REFS)
    assert [r.query_name for r in cut] == [f"r{i}" for i in range(1, 6)]


def test_crlf_lines_are_read_line_by_line():
    assert sam._parse_columns(text(GOOD, end="\r\n"), REFS) is None
    assert sam.parse(text(GOOD, end="\r\n"), REFS) == sam.parse(text(GOOD), REFS)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("r9\t0\tchr3\t1\t0\t1M\t*\t0\t0\tA\tI", "reference 'chr3' is not in the header"),
        ("r9\t0\tchr1\t1\t0\t1M\tchr9\t0\t0\tA\tI", "reference 'chr9' is not in the header"),
        ("r9\t0\tchr1\tx\t0\t1M\t*\t0\t0\tA\tI", "invalid literal for int"),
        ("r9\t0\tchr1\t1\t0\t2M\t*\t0\t0\tA\tI", "CIGAR 2M covers 2 query bases, SEQ has 1"),
        ("r9\t0\tchr1\t1\t0\t1M\t*\t0\t0\tA\tII", "SEQ has 1 bases, QUAL 2"),
        ("r9\t0\tchr1\t1\t0\t1Q\t*\t0\t0\tA\tI", "bad CIGAR '1Q'"),
        ("r9\t0\tchr1\t1\t0\t1M\t*\t0\t0\tA", "10 tab-separated fields"),
        ("r9\t0\tchr1\t1\t0\t1M\t*\t0\t0\tA\tI\tXX:q:1", "unknown tag type 'q'"),
        ("r9\t0\tchr1\t1\t0\t1M\t*\t0\t0\tA\tI\t", "not enough values"),  # an empty tag
        ("r9\t0\tchr1\t1\t0\t1M\t*\t0\t0\tA\t\u00e9", "codec can't encode"),
    ],
)
def test_a_bad_line_is_named_by_its_offset(bad, why):
    lines = [*GOOD, bad, GOOD[0]]
    at = sum(len(x) + 1 for x in GOOD)
    with pytest.raises(FormatError, match=rf"mem\.sam: byte {at}: not a SAM record \(.*{why}"):
        sam.parse(text(lines), REFS)


LINE = st.builds(
    lambda name, flag, ref, pos, cigar, seq, qual, tags: "\t".join(
        [name, flag, ref, pos, "30", cigar, "=", "1", "0", seq, qual, *tags]
    ),
    st.sampled_from(["q", "@q", "r"]),
    st.sampled_from(["0", "4", "16", "x", "-1"]),
    st.sampled_from(["chr1", "chr2", "*", "chrZ"]),
    st.sampled_from(["1", "0", "99", "1_0", "-"]),
    st.sampled_from(["*", "3M", "1S2M", "2M", "3Q", "1M1I1M"]),
    st.sampled_from(["ACG", "*", "AC"]),
    st.sampled_from(["III", "*", "II", "I\u00e9I"]),
    st.lists(st.sampled_from(["NM:i:1", "XS:Z:a b", "XB:B:S,1,2", "XQ:q:1", "XF:f:x", ""]),
             max_size=3),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=6), st.booleans())
def test_columns_and_lines_agree_on_any_lines(lines, last):
    data = text(lines, last=last)
    try:
        expected = sam._parse_lines(data, REFS)
    except FormatError as exc:
        with pytest.raises(FormatError, match="^" + re.escape(str(exc)) + "$"):
            sam.parse(data, REFS)
        return
    assert sam.parse(data, REFS) == expected

"""Tab-separated lines seen in bulk (aifdata.formats._tsv): exact, or it says it cannot tell."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numpy")

from aifdata.formats._tsv import layout


def test_lines_fields_and_their_spans():
    data = b"a\t12\tx\n\tbb\t-7\ty\nccc\t0\t\n"
    found = layout(data, 2)
    assert found is not None and len(found) == 3
    assert found.counts.tolist() == [2, 3, 2]
    assert [found.field(0, i) for i in range(3)] == [b"a", b"", b"ccc"]
    assert [found.field(1, i) for i in range(3)] == [b"12", b"bb", b"0"]  # up to the next tab
    assert [found.field(2, i) for i in range(3)] == [b"x", b"-7\ty", b""]  # the rest
    assert layout(data, 3) is None  # a line with fewer tabs
    some = layout(data, 3, least=2)
    assert some.counts.tolist() == [2, 3, 2] and some.field(2, 1) == b"-7"
    assert [some.field(3, i) for i in range(3)] == [b"", b"y", b""]
    assert layout(data + b"last\t1\t2", 2) is not None  # a last line without its line end
    assert layout(b"a\t1\n\nb\t2\n", 1) is None  # an empty line has no tab


def test_integers_are_read_or_refused_whole():
    found = layout(b"x\t12\tq\ny\t0\tq\nz\t987654321012345678\tq\n", 2)
    assert found.integers(1).tolist() == [12, 0, 987654321012345678]
    assert layout(b"x\t12\nx\t1a\n", 1).integers(1) is None
    assert layout(b"x\t12\nx\t\n", 1).integers(1) is None  # empty
    assert layout(b"x\t-12\n", 1).integers(1) is None  # a sign only when asked
    assert layout(b"x\t-12\nx\t7\n", 1).integers(1, signed=True).tolist() == [-12, 7]
    assert layout(b"x\t-\n", 1).integers(1, signed=True) is None
    assert layout(b"x\t" + b"9" * 19 + b"\n", 1).integers(1) is None  # too long for int64


def test_decimals_and_equals():
    found = layout(b"a\t.\nb\t1.5\nc\t1e3\nd\t\ne\t1.2.3\nf\t007\n", 1)
    assert found.decimals(1).tolist() == [True, True, False, False, False, True]
    assert found.equals(0, b"c").tolist() == [False, False, True, False, False, False]
    assert layout(b"chr1\t1\nchr10\t2\nchr\t3\n", 1).equals(0, b"chr1").tolist() == [
        True, False, False,
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-+a .", max_size=21), min_size=1, max_size=10),
       st.booleans())  # fmt: skip
def test_integers_agree_with_python(values, signed):
    data = "".join(f"k\t{v}\tz\n" for v in values).encode()
    found = layout(data, 2).integers(1, signed=signed)
    pattern = ("-?" if signed else "") + "[0-9]+"
    if all(re.fullmatch(pattern, v) and len(v) <= 18 for v in values):
        assert found is not None and found.tolist() == [int(v) for v in values]
    elif found is not None:  # it may decline what it could read, never read a wrong one
        assert found.tolist() == [int(v) for v in values]

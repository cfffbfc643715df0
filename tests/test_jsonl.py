"""JSON lines partitions: every value exactly once, compared with json and pyarrow.json."""

from __future__ import annotations

import gzip
import itertools
import json
import pickle
import random

import pytest

pa = pytest.importorskip("pyarrow")
pj = pytest.importorskip("pyarrow.json")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402

from ._realdata import RealFile  # noqa: E402
from .test_bgzf import bgzf  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
#: JSON lines from csvkit's sdist (MIT), the input of its csvjson tests.
REAL = RealFile(
    "csvkit", "2.2.0", "examples/testjson_multiline.json",
    "e2c47b834a258904d7b7b25d050a75f302d3e2f19396a2709be83e66de1a6dc0", "MIT",
)  # fmt: skip


def reference(data: bytes) -> list:
    """``json.loads`` of every non-blank line."""
    return [json.loads(line) for line in data.split(b"\n") if line.strip()]


def values(url: str, **plan) -> list:
    return [v for p in partition(url, **plan) for v in p.read()]


def hard_values(count: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        text = "".join(rng.choices(["a", "é", "\n", "\u2028", '"', "\\", "😀", "\t"], k=i % 9))
        value = {"i": i, "text": text, "nested": {"list": [i, {"deep": [text]}], "none": None}}
        if i % 50 == 7:
            value["long"] = "x" * 200_000  # a line longer than the boundary window
        out.append(value)
    return out


def jsonl(values: list, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    lines = []
    for v in values:
        lines.append(json.dumps(v, ensure_ascii=rng.random() < 0.5).encode())
        if rng.random() < 0.1:
            lines.append(rng.choice([b"", b"  ", b"\r"]))  # blank lines are skipped
    return b"\n".join(lines) + b"\n"


def test_hard_cases_union_equals_json_for_every_count(tmp_path):
    expected = hard_values(300)
    data = jsonl(expected)
    path = tmp_path / "hard.jsonl"
    path.write_bytes(data)
    assert reference(data) == expected
    for n in COUNTS:
        parts = partition(str(path), n=n)
        assert len(parts) == n or n > 5  # long lines: several nominal splits snap together
        assert [v for p in parts for v in p.read()] == expected, n
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))
    assert values(str(path), target_bytes=100_000) == expected
    assert len(partition(str(path), target_bytes=100_000)) >= 6


def test_arrow_tables_equal_pyarrow_json_on_the_whole_file(tmp_path):
    rows = [{"i": i, "s": "é\n" * (i % 3), "o": {"a": [i, i + 1], "b": None}} for i in range(500)]
    data = jsonl(rows, seed=4)
    path = tmp_path / "t.ndjson"
    path.write_bytes(data)
    whole = pj.read_json(str(path))
    for n in COUNTS:
        tables = [p.read(as_arrow=True, schema=whole.schema) for p in partition(str(path), n=n)]
        assert pa.concat_tables(tables).equals(whole)
    frame = partition(str(path), n=3)[1].to_pandas()
    assert list(frame.columns) == ["i", "s", "o"]


def test_no_final_newline_bom_and_gzip_bgzf(tmp_path):
    expected = hard_values(120, seed=3)
    data = b"\xef\xbb\xbf" + jsonl(expected, seed=3).rstrip(b"\n")
    for name, blob in (("a.jsonl", data), ("a.jsonl.gz", gzip.compress(data)),
                       ("b.jsonl.gz", bgzf(data, block=7000))):  # fmt: skip
        path = tmp_path / name
        path.write_bytes(blob)
        for n in COUNTS:
            assert values(str(path), n=n) == expected, (name, n)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=6),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                          max_size=3),
            max_leaves=6,
        ),
        max_size=30,
    ),
    blanks=st.lists(st.sampled_from(["", " ", "\r", "\t "]), max_size=5),
    n=st.integers(min_value=1, max_value=25),
    ascii_only=st.booleans(),
)  # fmt: skip
def test_any_values_any_split_never_lose_or_repeat_a_line(tmp_path, items, blanks, n, ascii_only):
    lines = [json.dumps(v, ensure_ascii=ascii_only) for v in items]
    for i, blank in enumerate(blanks):
        lines.insert(min(len(lines), i * 3), blank)
    data = "\n".join(lines).encode()
    path = tmp_path / "h.jsonl"
    path.write_bytes(data)
    if not data.strip():
        assert values(str(path), n=n) == []
        return
    if items and not isinstance(items[0], (dict, list)):
        return  # a file must start like JSON lines (an object or an array) to be sniffed
    assert values(str(path), n=n) == items


def test_a_small_picklable_partition(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(jsonl(hard_values(40)))
    part = partition(str(path), n=3)[1]
    blob = pickle.dumps(part)
    assert len(blob) < 1024
    assert pickle.loads(blob).read() == part.read()


def test_planning_reads_a_window_per_boundary(tmp_path):
    path = tmp_path / "plan.jsonl"
    data = jsonl([{"i": i, "pad": "p" * 50} for i in range(100_000)])
    path.write_bytes(data)
    source = RangeSource(str(path))
    parts = get("jsonl").plan(source, n=8)
    assert len(parts) == 8
    assert source.requests <= 8 and source.bytes_read <= 8 * 65 * 2**10


# -- bad input ----------------------------------------------------------------


def test_a_bad_line_names_file_line_start_and_json_error(tmp_path):
    good = jsonl([{"i": i} for i in range(100)])
    data = good + b'{"i": 100, "broken": }\n' + b'{"i": 101}\n'
    path = tmp_path / "bad.jsonl"
    path.write_bytes(data)
    for n in (1, 4):
        with pytest.raises(FormatError) as info:
            values(str(path), n=n)
        message = str(info.value)
        assert f"bad.jsonl: byte {len(good)}: this line is not JSON: Expecting value" in message
    with pytest.raises(FormatError, match=f"byte {len(good)}: this line is not JSON"):
        [p.read(as_arrow=True) for p in partition(str(path), n=2)]


def test_a_truncated_file_says_so(tmp_path):
    data = jsonl([{"i": i} for i in range(20)])
    path = tmp_path / "cut.jsonl"
    path.write_bytes(data[:-5])
    with pytest.raises(FormatError, match="ends in the middle of this line: truncated"):
        values(str(path), n=3)


def test_not_json_lines_is_refused_at_byte_0(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"hello\nworld\n")
    with pytest.raises(FormatError, match=r"x.jsonl: byte 0: this is not jsonl data"):
        partition(str(path), n=2)


def test_real_file_from_csvkit(real_file):
    path = real_file(REAL)
    expected = reference(path.read_bytes())
    assert expected == [{"a": 2, "b": 3}, {"b": 2, "d": 4}]
    for n in COUNTS:
        assert values(str(path), n=n, format="jsonl") == expected
    assert values(str(path), target_bytes=10, format="jsonl") == expected


# -- review fixes ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["blank.jsonl", "blank.jsonl.gz", "blank.ndjson.bgz"])
def test_a_partition_of_blank_lines_gets_the_first_values_schema(tmp_path, name):
    data = (
        b'\xef\xbb\xbf{"a": 1, "b": "x"}\n' + b"\n" * 15 + b" \r\n" * 3000 + b'{"a": 2, "b": "y"}\n'
    )
    blob = {"blank.jsonl": data, "blank.jsonl.gz": gzip.compress(data)}.get(name)
    path = tmp_path / name
    path.write_bytes(bgzf(data, block=500) if blob is None else blob)
    for n in (3, 5, 17):
        tables = [p.read(as_arrow=True) for p in partition(str(path), n=n)]
        assert any(t.num_rows == 0 for t in tables), n  # some partition holds blank lines only
        whole = pa.concat_tables(tables)  # one schema: the partitions join
        assert whole.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], n


def test_a_file_of_blank_lines_only_gives_empty_tables(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n \n\r\n" * 2000)
    tables = [p.read(as_arrow=True) for p in partition(str(path), n=4)]
    assert pa.concat_tables(tables).num_rows == 0


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(min_value=1, max_value=40),
    n=st.integers(min_value=1, max_value=40),
    blank_every=st.integers(min_value=2, max_value=7),
)
def test_crlf_line_ends_split_anywhere(tmp_path, count, n, blank_every):
    rows = [{"i": i, "s": "\r\n" * (i % 3)} for i in range(count)]  # escaped CR LF inside values
    lines = []
    for i, row in enumerate(rows):
        lines.append(json.dumps(row).encode())
        if i % blank_every == 0:
            lines.append(b"")
    data = b"\r\n".join(lines) + b"\r\n"
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(data)
    parts = partition(str(path), n=n)
    assert [v for p in parts for v in p.read()] == rows
    tables = [p.read(as_arrow=True) for p in parts]
    assert pa.concat_tables(tables).to_pylist() == rows

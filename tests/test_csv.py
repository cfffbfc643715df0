"""CSV partitions: every row exactly once, quoted newlines included, compared with pyarrow."""

from __future__ import annotations

import gzip
import io
import itertools
import pickle
import random

import pytest

pa = pytest.importorskip("pyarrow")
pc = pytest.importorskip("pyarrow.csv")
pd = pytest.importorskip("pandas")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.codecs import find_start  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.csv import build_index, record_start_rule  # noqa: E402

from ._realdata import RealFile  # noqa: E402
from .test_bgzf import bgzf  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
#: Real CSV files from csvkit's and agate's sdists (MIT licence), written by their authors
#: from public data sets (Kansas 1033 program, census excerpts, US exonerations).
REAL = [
    RealFile("csvkit", "2.2.0", "examples/realdata/ks_1033_data.csv",
             "d6a0b1310a571ec11313e0525fea24ecdd0d27518c237779b421aeda0e440547", "MIT"),
    RealFile("csvkit", "2.2.0", "examples/realdata/census_2010/ilgeo2010_excerpt.csv",
             "3ff3fba9ee2409d996e5365642d4cb603b07537c67228bf681df6ff9fc3fe17a", "MIT"),
    RealFile("csvkit", "2.2.0", "examples/realdata/census_2000/determination.csv",
             "a7dc3e0777d1a2be62b9f74ec54038f88fedba9d046e72127b2bad973db22c0c", "MIT"),
    RealFile("csvkit", "2.2.0", "examples/mac_newlines.csv",
             "3b53e23dafeff16890b5500bb1dceb9b5c274e56c5bc190ac931314fda714df8", "MIT"),
    RealFile("csvkit", "2.2.0", "examples/test_header_newline.csv",
             "036880c80a5e95fc5340995669f20d7e285817f91ae08e1fcd5f30d055253e47", "MIT"),
    RealFile("csvkit", "2.2.0", "examples/dummy.tsv",
             "dc90bf06aa2636ea0201d3d26f485a78e65c630818f025f77bf6dc04023a3317", "MIT"),
    RealFile("agate", "1.14.2", "examples/realdata/exonerations-20150828.csv",
             "8fdac80ea0e7990e32ecde0dab537d2f83b8527ab1573a12347ddcb4bf2df29d", "MIT"),
]  # fmt: skip


def reference(data: bytes, delimiter: str = ",") -> pa.Table:
    """pyarrow.csv on the whole file, every column a string (as partitions read it)."""
    parse = pc.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    names = pc.read_csv(io.BytesIO(data), parse_options=parse).column_names
    convert = pc.ConvertOptions(
        column_types={name: pa.string() for name in names}, strings_can_be_null=False
    )
    return pc.read_csv(io.BytesIO(data), parse_options=parse, convert_options=convert)


def union(url: str, **plan) -> pa.Table:
    return pa.concat_tables([p.read() for p in partition(url, **plan)])


def quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def csv_bytes(rows: list[list[str]], endings: list[str], final: bool = True) -> bytes:
    """Rows joined by the given line endings, fields quoted where RFC 4180 needs it."""
    lines = []
    for row in rows:
        fields = [quoted(f) if any(c in f for c in ',"\r\n') or not f else f for f in row]
        lines.append(",".join(fields))
    out = "".join(line + end for line, end in zip(lines, endings, strict=True))
    if not final:
        out = out[: -len(endings[-1])]
    return out.encode()


def hard_rows(count: int, seed: int = 3) -> list[list[str]]:
    rng = random.Random(seed)
    pieces = ["a", "é", " ", ",", '"', "\n", "\r\n", "\r", "x" * 40, "", '""', "ß,\n"]
    return [["".join(rng.choices(pieces, k=rng.randint(0, 6))) for _ in range(3)]
            for _ in range(count)]  # fmt: skip


def hard_file(count: int = 400, seed: int = 3, bom: bool = False, final: bool = True) -> bytes:
    rows = [["id", "text, with comma", 'q"uote'], *hard_rows(count, seed)]
    for i, row in enumerate(rows[1:]):
        row[0] = f"{i}{row[0]}"  # no blank row: pyarrow would skip it
    endings = ["\r\n" if i % 3 else "\n" for i in range(len(rows))]
    data = csv_bytes(rows, endings, final)
    return b"\xef\xbb\xbf" + data if bom else data


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("final", [True, False])
def test_hard_cases_union_equals_pyarrow_for_every_count(tmp_path, bom, final):
    data = hard_file(bom=bom, final=final)
    path = tmp_path / "hard.csv"
    path.write_bytes(data)
    expected = reference(data)
    assert expected.num_rows == 400
    for n in COUNTS:
        parts = partition(str(path), n=n)
        assert len(parts) == n
        assert union(str(path), n=n).equals(expected), n
        assert parts[0]["start"] == 0 and parts[-1]["end"] == len(data)
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))
    assert union(str(path), target_bytes=1000).equals(expected)
    assert len(partition(str(path), target_bytes=1000)) > 10


def test_pandas_agrees_and_to_pandas_has_the_header_columns(tmp_path):
    data = hard_file(200, seed=8)
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    frames = [p.to_pandas() for p in partition(str(path), n=5)]
    got = pd.concat(frames, ignore_index=True)
    expected = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(got, expected)
    assert list(got.columns) == ["id", "text, with comma", 'q"uote']


def test_every_offset_snaps_to_the_next_record_start(tmp_path):
    rows = [["h1", "h2"], *hard_rows(120, seed=5)]
    rows = [[f"{i}{r[0]}", r[1]] for i, r in enumerate(rows)]
    endings = ["\r\n" if i % 2 else "\n" for i in range(len(rows))]
    data = csv_bytes(rows, endings)
    starts = [0]
    for row, end in zip(rows, endings, strict=True):
        starts.append(starts[-1] + len(csv_bytes([row], [end])))
    assert starts[-1] == len(data)
    path = tmp_path / "offsets.csv"
    path.write_bytes(data)
    source = RangeSource(str(path))
    following = iter(starts)
    expected = next(following)
    for offset in range(1, len(data)):
        while expected < offset:
            expected = next(following)
        parity = data[:offset].count(b'"') & 1
        assert find_start(source, offset, record_start_rule(parity)) == expected, offset


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.lists(st.text(alphabet='ab,"\r\n é', max_size=8), min_size=2, max_size=2),
        min_size=0, max_size=40,
    ),
    endings=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=41, max_size=41),
    final=st.booleans(),
    n=st.integers(min_value=1, max_value=25),
)  # fmt: skip
def test_any_content_any_split_never_loses_or_repeats_a_row(tmp_path, rows, endings, final, n):
    table = [["a", "b"], *rows]
    data = csv_bytes(table, endings[: len(table)], final)
    path = tmp_path / "h.csv"
    path.write_bytes(data)
    got = union(str(path), n=n)
    assert got.to_pylist() == [{"a": a, "b": b} for a, b in rows]
    if rows:  # pyarrow refuses a lone header without a final newline ("empty CSV file")
        assert got.equals(reference(data))


def test_header_only_no_final_newline_and_empty_file(tmp_path):
    for data, names in ((b"a,b,c", ["a", "b", "c"]), (b"a,b,c\r\n", ["a", "b", "c"]),
                        (b'"a\nb",c\n', ["a\nb", "c"])):  # fmt: skip
        path = tmp_path / "h.csv"
        path.write_bytes(data)
        parts = partition(str(path), n=3)
        tables = [p.read() for p in parts]
        assert sum(t.num_rows for t in tables) == 0
        assert tables[0].column_names == names
        assert tables[0].schema == pa.schema([(name, pa.string()) for name in names])
    (tmp_path / "e.csv").write_bytes(b"")
    assert partition(str(tmp_path / "e.csv"), n=4) == []


def test_empty_fields_and_blank_lines(tmp_path):
    data = b"\n\na,b,c\n,,\n\n1,,\r\n\r\n,,3\n"
    path = tmp_path / "blank.csv"
    path.write_bytes(data)
    for n in COUNTS:
        assert union(str(path), n=n).equals(reference(data))
    assert union(str(path)).to_pylist()[0] == {"a": "", "b": "", "c": ""}


def test_tsv_by_name_and_tab_separated_text_by_content(tmp_path):
    data = b'x\ty\n1\t"a\tb"\n2\tc\n'
    for name in ("t.tsv", "t.txt"):
        path = tmp_path / name
        path.write_bytes(data)
        parts = partition(str(path), n=2, format="csv" if name.endswith("txt") else None)
        assert parts[0]["delimiter"] == "\t"
        assert pa.concat_tables([p.read() for p in parts]).equals(reference(data, "\t"))


def test_header_false_and_column_types(tmp_path):
    data = b"1,2.5,x\n3,4,y\n"
    path = tmp_path / "nh.csv"
    path.write_bytes(data)
    parts = partition(str(path), n=2)
    rows = [r for p in parts for r in p.read(header=False).to_pylist()]
    assert rows == [{"f0": "1", "f1": "2.5", "f2": "x"}, {"f0": "3", "f1": "4", "f2": "y"}]
    data = b"i,f\n1,2.5\n3,4\n"
    path.write_bytes(data)
    typed = [p.read(column_types={"i": pa.int64(), "f": pa.float64()}) for p in
             partition(str(path), n=2)]  # fmt: skip
    assert all(t.schema == pa.schema([("i", pa.int64()), ("f", pa.float64())]) for t in typed)
    assert pa.concat_tables(typed).equals(pc.read_csv(io.BytesIO(data)))


def test_gzip_and_bgzf_split_exactly(tmp_path):
    data = hard_file(600, seed=11)
    expected = reference(data)
    gz = tmp_path / "g.csv.gz"
    gz.write_bytes(gzip.compress(data))
    for n in COUNTS:
        parts = partition(str(gz), n=n)
        assert parts[0]["codec"] == "gzip"
        assert union(str(gz), n=n).equals(expected)
    bgz = tmp_path / "b.csv.gz"
    bgz.write_bytes(bgzf(data, block=5000))
    assert union(str(bgz), n=5).equals(expected)  # BGZF is read as gzip


def test_a_partition_is_small_picklable_and_refuses_a_changed_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(hard_file(100))
    part = partition(str(path), n=3)[1]
    blob = pickle.dumps(part)
    assert len(blob) < 1024
    assert pickle.loads(blob).read().equals(part.read())
    path.write_bytes(hard_file(101))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


def test_planning_reads_the_file_once_then_a_window_per_boundary(tmp_path):
    path = tmp_path / "plan.csv"
    data = hard_file(3000, seed=2)
    path.write_bytes(data)
    source = RangeSource(str(path))
    get("csv").plan(source, n=1)
    assert source.bytes_read < 70_000  # one partition: the head and the header only
    source = RangeSource(str(path))
    parts = get("csv").plan(source, n=8)
    assert len(parts) == 8
    assert source.bytes_read < len(data) + 9 * 70_000
    again = RangeSource(str(path))
    assert get("csv").plan(again, n=8) == parts  # the quote index is kept per version
    assert again.bytes_read < 9 * 70_000


def test_the_quote_index_is_stored_and_never_trusted_for_another_version(tmp_path, monkeypatch):
    import aifdata.formats.csv as csv_format
    from aifdata.formats._base import KeptMetadata

    path = tmp_path / "stored.csv"
    data = hard_file(2000, seed=6)
    path.write_bytes(data)
    parts = partition(str(path), n=6)
    monkeypatch.setattr(csv_format, "_KEPT", KeptMetadata())  # a fresh process's memory
    source = RangeSource(str(path))
    assert get("csv").plan(source, n=6) == parts
    assert source.bytes_read < 7 * 70_000  # from the stored index, no pass over the file
    stored = list((aifdata._config.aifdata_home() / "csvindex").glob("*.json"))
    assert len(stored) == 1
    stored[0].write_text(stored[0].read_text()[:50])  # damaged: built again
    monkeypatch.setattr(csv_format, "_KEPT", KeptMetadata())
    source = RangeSource(str(path))
    assert get("csv").plan(source, n=6) == parts
    assert source.bytes_read >= len(data)
    other = hard_file(2000, seed=7)[: len(data)]  # same size, other bytes, other quotes
    path.write_bytes(other)
    monkeypatch.setattr(csv_format, "_KEPT", KeptMetadata())
    try:
        got = union(str(path), n=6)
    except FormatError:
        return  # cut mid-field: refused, never read with the old index
    assert got.equals(reference(other))


# -- bad input ----------------------------------------------------------------


def test_a_row_with_the_wrong_number_of_fields_names_file_offset_and_line(tmp_path):
    good = hard_file(50, seed=4)
    bad_row = b"only,two\n"
    data = good + bad_row + b"1,2,3\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    for n in (1, 3):
        with pytest.raises(FormatError) as info:
            for p in partition(str(path), n=n):
                p.read()
        line = data[: len(good)].count(b"\n") + 1
        assert f"bad.csv: byte {len(good)} (line {line}): expected 3 fields" in str(info.value)
        assert "found 2" in str(info.value)


def test_quotes_inside_unquoted_fields_split_as_pyarrow_reads_them(tmp_path):
    data = b"a,b\n" + b'1,5" screen\n2,"x\ny"\n3,"q"z"\n4,""""\n' * 30
    path = tmp_path / "stray.csv"
    path.write_bytes(data)
    expected = reference(data)
    assert expected.num_rows == 120
    for n in COUNTS:
        assert union(str(path), n=n).equals(expected), n
    assert partition(str(path), n=3)[1]["lenient"] is True


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.lists(st.sampled_from(['5" x', '"a"b"c"', '"x\ny"', '"say ""hi"""', "p", '""', 'q"',
                                  '"m\r\nn"x', '"', '"a,b"', "", '"\r"']),
                 min_size=2, max_size=2),
        min_size=1, max_size=30,
    ),
    n=st.integers(min_value=1, max_value=25),
)  # fmt: skip
def test_any_quotes_pyarrow_accepts_split_as_pyarrow_reads_them(tmp_path, rows, n):
    data = "\n".join(["a,b", *(",".join(row) for row in rows)]).encode() + b"\n"
    try:
        expected = reference(data)
    except pa.ArrowInvalid:
        return  # pyarrow refuses it too (a quote that never closes, a short row)
    path = tmp_path / "lenient.csv"
    path.write_bytes(data)
    try:
        got = union(str(path), n=n)
    except FormatError as exc:
        error = str(exc)
    else:
        assert got.equals(expected)
        return
    assert "never closes" in error  # pyarrow reads an open quote to the end; we refuse


def test_a_quote_that_never_closes_is_refused(tmp_path):
    data = b'a,b\n1,x\n2,"never closed\n3,y\n'
    path = tmp_path / "open.csv"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=r"open.csv: byte 10: a quoted field opens here"):
        partition(str(path), n=2)


def test_a_plan_that_does_not_match_the_quotes_is_refused_at_read(tmp_path):
    data = b'a,b\n1,"x\ny"\n2,z\n'
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    part = partition(str(path), n=1)[0]
    wrong = aifdata.formats.Partition.make(
        part.url, "csv", 0, part.fingerprint, **{**part.options, "end": 9}
    )
    with pytest.raises(FormatError, match="ends inside a quoted field"):
        wrong.read()


def test_binary_data_is_not_csv(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n\x00\x01\x02")
    with pytest.raises(FormatError, match=r"x.csv: byte 4: .*NUL byte"):
        partition(str(path), n=2)


def test_the_quote_index_counts_quotes_and_falls_back_to_pyarrows_rules(tmp_path):
    ok = build_index(RangeSource(str(_write(tmp_path, b'a,"b""c"\n"",""\n'))), 16, b",", "u")
    assert ok.parity[0] == 0 and not ok.lenient
    for stray in (b'a,b"c\n', b'a,"b"c\n', b'a,"b" \n'):
        source = RangeSource(str(_write(tmp_path, stray)))
        assert build_index(source, len(stray), b",", "u").lenient
    quoted = b'x,"a""b"\n'  # grid of one byte: the state on each one, 2 on the escaped quote
    lenient = b'1,5" x\n' + quoted
    index = build_index(RangeSource(str(_write(tmp_path, lenient))), len(lenient), b",", "u")
    assert index.lenient and index.grid == 1
    assert list(index.parity[len(lenient) - len(quoted) :]) == [0, 0, 0, 1, 1, 2, 1, 1, 0]


def _write(tmp_path, data: bytes):
    path = tmp_path / "q.csv"
    path.write_bytes(data)
    return path


# -- real files ----------------------------------------------------------------


@pytest.mark.parametrize("real", REAL, ids=lambda r: r.name)
def test_real_files_equal_pyarrow_for_every_count(real_file, real):
    path = real_file(real)
    data = path.read_bytes()
    expected = reference(data, "\t" if path.suffix == ".tsv" else ",")
    for n in COUNTS:
        assert union(str(path), n=n).equals(expected), n
    assert union(str(path), target_bytes=max(1, len(data) // 7)).equals(expected)


# -- review fixes ---------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
def test_a_header_after_more_than_the_head_of_blank_lines(tmp_path, codec):
    data = b"\xef\xbb\xbf" + b"\n\r\n" * 1800 + b"a,b\n1,2\n\n3,4\n"  # 5.3 KiB of blank lines
    blob = {"none": data, "gzip": gzip.compress(data), "bgzf": bgzf(data, block=1000)}[codec]
    path = tmp_path / ("late.csv" + ("" if codec == "none" else ".gz"))
    path.write_bytes(blob)
    expected = reference(data)
    assert expected.column_names == ["a", "b"] and expected.num_rows == 2
    for n in COUNTS:
        got = union(str(path), n=n)
        assert got.column_names == ["a", "b"], n
        assert got.equals(expected), n


def test_a_failed_index_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import json

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    path = tmp_path / "full.csv"
    data = hard_file(2000, seed=8)
    path.write_bytes(data)
    monkeypatch.setattr(json, "dump", full_disk)
    assert union(str(path), n=4).equals(reference(data))  # no index stored costs nothing else
    home = aifdata._config.aifdata_home() / "csvindex"
    assert list(home.glob(".building-*")) == []
    assert list(home.glob("*.json")) == []


def test_another_delimiters_index_of_the_same_version_stays(tmp_path, monkeypatch):
    import aifdata.formats.csv as csv_format
    from aifdata.formats._base import KeptMetadata

    path = tmp_path / "both.txt"
    path.write_bytes(b"a,b\tc\n" + b"1,2\t3\n" * 50_000)
    source = RangeSource(str(path))
    comma = csv_format.index_path(source.url, source.version, b",")
    tab = csv_format.index_path(source.url, source.version, b"\t")
    assert comma != tab
    for delimiter in (b",", b"\t", b","):
        monkeypatch.setattr(csv_format, "_KEPT", KeptMetadata())
        csv_format._index(source, source, source.size, delimiter)
    assert comma.exists() and tab.exists()

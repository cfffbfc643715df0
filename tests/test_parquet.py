"""Parquet partitions: whole row groups, planned from the footer, compared with pyarrow."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.parquet import group_row_groups  # noqa: E402

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
_PQ = "pyarrow/tests/data/parquet"
#: Parquet files written by parquet-cpp 1.3 (pyarrow 0.7.1), shipped in pyarrow's wheel
#: (Apache-2.0): pandas indexes stored as columns, column metadata.
REAL = [
    RealFile("pyarrow", "26.0.1", f"{_PQ}/v0.7.1.parquet",
             "be6773848ce905b99192adc68f0c3b2aabab7d214db50b92a52203790566ab2b", "Apache-2.0",
             wheel=True),
    RealFile("pyarrow", "26.0.1", f"{_PQ}/v0.7.1.all-named-index.parquet",
             "60f1945edc3e4ec38f6e234389e647a1b369de8afb9c7840c491a39880c0caa1", "Apache-2.0",
             wheel=True),
    RealFile("pyarrow", "26.0.1", f"{_PQ}/v0.7.1.column-metadata-handling.parquet",
             "eec79b660a5f75c3f7ed092c4f71610cbeaf380f6047a1816aae3834256d398c", "Apache-2.0",
             wheel=True),
]  # fmt: skip


def sample(rows: int = 1000) -> pa.Table:
    return pa.table(
        {
            "i": pa.array(range(rows), pa.int64()),
            "s": [f"row {i} " * (i % 4) for i in range(rows)],
            "nested": [{"x": i, "y": [i, None, i * 2]} for i in range(rows)],
            "maybe": [None if i % 3 else float(i) for i in range(rows)],
        }
    )


def write(tmp_path, table: pa.Table, name: str = "t.parquet", **options) -> str:
    path = tmp_path / name
    pq.write_table(table, path, **options)
    return str(path)


def union(url: str, columns=None, **plan) -> pa.Table:
    parts = partition(url, **plan)
    return pa.concat_tables([p.read(columns=columns) for p in parts])


def covered(parts) -> list[int]:
    return [g for p in parts for g in range(p["first"], p["stop"])]


def test_many_small_row_groups_union_equals_read_table(tmp_path):
    url = write(tmp_path, sample(), row_group_size=37)
    expected = pq.read_table(url)
    groups = pq.read_metadata(url).num_row_groups
    assert groups == 28
    for n in COUNTS:
        parts = partition(url, n=n)
        assert len(parts) == n
        assert covered(parts) == list(range(groups))  # whole groups, each once, in order
        assert union(url, n=n).equals(expected), n
        assert sum(p["rows"] for p in parts) == expected.num_rows
    assert len(partition(url, n=100)) == groups  # a row group is never split
    parts = partition(url, target_bytes=5000)
    assert 1 < len(parts) < groups
    assert union(url, target_bytes=5000).equals(expected)


def test_one_row_group_and_a_zero_row_file(tmp_path):
    url = write(tmp_path, sample(50))
    assert len(partition(url, n=8)) == 1
    assert union(url, n=8).equals(pq.read_table(url))
    empty = write(tmp_path, sample(0), "empty.parquet")
    parts = partition(empty, n=4)
    assert len(parts) == 1
    table = parts[0].read()
    assert table.num_rows == 0 and table.schema == pq.read_table(empty).schema


def test_columns_are_passed_down_and_only_their_chunks_fetched(tmp_path):
    url = write(tmp_path, sample(20_000), row_group_size=2000, compression="none")
    parts = partition(url, n=4)
    everything, chosen = RangeSource(url), RangeSource(url)
    parts[1].read(source=everything)  # the footer is kept after this: only chunks count
    full = RangeSource(url)
    parts[1].read(source=full)
    narrow = parts[1].read(source=chosen, columns=["i"])
    assert narrow.column_names == ["i"]
    assert chosen.bytes_read < full.bytes_read / 4
    assert union(url, columns=["i", "nested"], n=5).equals(
        pq.read_table(url, columns=["i", "nested"])
    )


def test_planning_reads_the_footer_in_one_or_two_requests(tmp_path):
    url = write(tmp_path, sample(), row_group_size=100)
    source = RangeSource(url)
    source.head(4)  # what sniffing reads before a plan
    before = source.requests
    get("parquet").plan(source, n=3)
    assert source.requests - before == 1
    wide = pa.table({f"column_{i}": list(range(300)) for i in range(200)})
    big = write(tmp_path, wide, "wide.parquet", row_group_size=10)  # a footer past 64 KiB
    source = RangeSource(big)
    source.head(4)
    before = source.requests
    parts = get("parquet").plan(source, n=3)
    assert source.requests - before == 2
    assert pa.concat_tables([p.read() for p in parts]).equals(pq.read_table(big))


def test_grouping_rules():
    assert group_row_groups([]) == [(0, 0)]
    assert group_row_groups([10] * 6, n=3) == [(0, 2), (2, 4), (4, 6)]
    assert group_row_groups([10] * 3, n=10) == [(0, 1), (1, 2), (2, 3)]
    assert group_row_groups([100, 1, 1, 1, 100], target_bytes=50) == [(0, 1), (1, 4), (4, 5)]
    for sizes, n in itertools.product(([5, 1, 9, 3, 3, 7, 1], [0, 0, 0]), range(1, 9)):
        runs = group_row_groups(sizes, n=n)
        assert len(runs) <= n
        assert [g for a, b in runs for g in range(a, b)] == list(range(len(sizes)))


def test_a_small_picklable_partition_refuses_a_changed_file(tmp_path):
    url = write(tmp_path, sample(), row_group_size=100)
    part = partition(url, n=3)[1]
    blob = pickle.dumps(part)
    assert len(blob) < 1024
    assert pickle.loads(blob).read().equals(part.read())
    write(tmp_path, sample(999), row_group_size=100)
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


# -- bad input ----------------------------------------------------------------


def test_wrong_magic_at_the_start(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR0" + b"\x00" * 100)
    with pytest.raises(FormatError, match=r"bad.parquet: byte 0: this is not Parquet data"):
        partition(str(path))


def test_truncated_file_has_no_closing_magic(tmp_path):
    url = write(tmp_path, sample(), row_group_size=100)
    data = Path(url).read_bytes()
    path = tmp_path / "cut.parquet"
    path.write_bytes(data[:-100])
    with pytest.raises(FormatError, match=rf"cut.parquet: byte {len(data) - 104}: expected the"):
        partition(str(path))


def test_a_footer_length_past_the_start(tmp_path):
    path = tmp_path / "long.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 20 + (10_000).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(FormatError, match=r"long.parquet: byte 24: the footer length says 10000"):
        partition(str(path))


def test_a_corrupt_footer(tmp_path):
    url = write(tmp_path, sample(), row_group_size=100)
    data = bytearray(Path(url).read_bytes())
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    data[start : start + 40] = b"\xff" * 40
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"corrupt.parquet: byte {start}: the Parquet footer"):
        partition(str(path))


def test_a_corrupt_column_chunk_names_its_row_group(tmp_path):
    url = write(tmp_path, sample(), row_group_size=500, compression="snappy")
    parts = partition(url, n=2)
    data = bytearray(Path(url).read_bytes())
    chunk = pq.read_metadata(url).row_group(1).column(1)
    at = chunk.data_page_offset
    data[at : at + chunk.total_compressed_size] = b"\x07" * chunk.total_compressed_size
    Path(url).write_bytes(bytes(data))  # same size; read it through a fresh plan
    fresh = partition(url, n=2)
    assert [p.options["first"] for p in fresh] == [p.options["first"] for p in parts]
    with pytest.raises(FormatError, match=r"t.parquet: byte \d+: row groups 1..1 do not decode"):
        fresh[1].read()


@pytest.mark.parametrize("real", REAL, ids=lambda r: r.name)
def test_real_files_equal_read_table(real_file, real):
    path = str(real_file(real))
    expected = pq.read_table(path)
    for n in COUNTS:
        assert union(path, n=n).equals(expected)
    assert union(path, target_bytes=1000).equals(expected)
    first = expected.column_names[0]
    assert union(path, columns=[first], n=2).equals(pq.read_table(path, columns=[first]))

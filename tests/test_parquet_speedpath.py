"""Parquet partitions read together: their bytes fetched in large blocks, not one by one."""

from __future__ import annotations

import itertools

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from aifdata import FormatError  # noqa: E402
from aifdata.formats import Partition, get, partition, read_all  # noqa: E402


@pytest.fixture
def requests(range_reads):
    return range_reads


def write(tmp_path, groups: int = 8, rows: int = 1000) -> tuple[str, pa.Table]:
    count = groups * rows
    table = pa.table({"id": list(range(count)), "x": [i * 0.5 for i in range(count)],
                      "s": [f"v{i % 37}" for i in range(count)]})  # fmt: skip
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=rows)
    return str(path), table


def test_all_partitions_are_fetched_as_one_stream_of_blocks(tmp_path, requests):
    path, table = write(tmp_path)
    parts = partition(path, n=8)
    assert len(parts) == 8
    # neighbours (pyarrow before 18 writes a copy of each chunk's metadata after it: a gap)
    assert all(0 <= q["span"][0] - p["span"][1] < 256 for p, q in itertools.pairwise(parts))
    requests.clear()
    got = pa.concat_tables([t for _, t in read_all(parts)])
    assert got.equals(table)
    data = [r for r in requests if r[0] < parts[-1]["footer"]]
    assert data == [(parts[0]["span"][0], parts[-1]["span"][1])]  # one read, not eight
    requests.clear()
    small = pa.concat_tables([t for _, t in read_all(parts, block_bytes=4096)])
    assert small.equals(table) and len(requests) > 8  # blocks on a grid: several per partition


def test_some_columns_read_only_their_chunks(tmp_path, requests):
    path, table = write(tmp_path)
    parts = partition(path, n=4)
    whole = sum(p["span"][1] - p["span"][0] for p in parts)
    requests.clear()
    got = pa.concat_tables([t for _, t in read_all(parts, columns=["s"])])
    assert got.equals(table.select(["s"]))
    assert sum(b - a for a, b in requests if a < parts[-1]["footer"]) < whole / 2


def test_partitions_planned_without_spans_are_read_one_by_one(tmp_path):
    path, table = write(tmp_path)
    old = [Partition(p.url, p.format, p.ordinal,
                     tuple((k, v) for k, v in p.spec if k != "span"), p.fingerprint)
           for p in partition(path, n=3)]  # fmt: skip
    assert get("parquet").byte_span(old[0]) is None
    assert pa.concat_tables([t for _, t in read_all(old)]).equals(table)


def test_a_damaged_row_group_names_its_offset_when_read_in_blocks(tmp_path):
    path, _ = write(tmp_path, groups=3)
    parts = partition(path, n=3)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    start, end = parts[1]["span"]
    data[start:end] = b"\xff" * (end - start)
    with open(path, "r+b") as f:  # the same size and mtime would not do: replan after
        f.write(bytes(data))
    parts = partition(path, n=3)
    with pytest.raises(FormatError, match=rf"t\.parquet: byte {start}: row groups 1\.\.1"):
        list(read_all(parts))

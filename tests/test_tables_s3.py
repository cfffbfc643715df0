"""CSV, JSON lines and Parquet planned and read through ``aif://`` over S3 (SeaweedFS)."""

from __future__ import annotations

import io
import json

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import aifdata  # noqa: E402
from aifdata.formats import RangeSource, read_all  # noqa: E402

from .test_csv import hard_file, reference  # noqa: E402


def test_csv_jsonl_and_parquet_through_aif_over_s3(genomics_fs):
    data = hard_file(500, seed=21)
    genomics_fs.pipe("genomics/tables/rows.csv", data)
    parts = aifdata.partition("aif://genomics/tables/rows.csv", n=5)
    assert len(parts) == 5
    assert pa.concat_tables([t for _, t in read_all(parts)]).equals(reference(data))

    values = [{"i": i, "text": "é\n" * (i % 4)} for i in range(2000)]
    genomics_fs.pipe("genomics/tables/v.jsonl", b"".join(json.dumps(v).encode() + b"\n"
                                                         for v in values))  # fmt: skip
    parts = aifdata.partition("aif://genomics/tables/v.jsonl", n=8)
    assert [v for _, got in read_all(parts) for v in got] == values

    table = pa.table({"i": range(10_000), "s": [str(i) for i in range(10_000)]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=1000)
    genomics_fs.pipe("genomics/tables/t.parquet", buffer.getvalue())
    url = "aif://genomics/tables/t.parquet"
    source = RangeSource(url)
    source.head()
    before = source.requests
    parts = aifdata.formats.get("parquet").plan(source, n=3)
    assert source.requests - before == 1  # the footer, from the end of the object
    assert pa.concat_tables([p.read() for p in parts]).equals(table)
    assert parts[2].read(columns=["s"]).column_names == ["s"]

"""read_all's blocks: each one request of the S3 connector, never split into parts."""

from __future__ import annotations

import pytest

from aifdata.connectors._s3_native import FIRST_REQUEST
from aifdata.formats import BLOCK_BYTES, partition, read_all


def test_a_block_is_at_most_one_request_of_the_s3_connector():
    # a larger range is fetched as a first request and parallel parts copied together:
    # about twice the CPU per byte (see BLOCK_BYTES)
    assert BLOCK_BYTES <= FIRST_REQUEST


def test_a_long_run_of_partitions_is_read_in_blocks_of_that_size(tmp_path, range_reads):
    pytest.importorskip("pyarrow")
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b'{"a": 1, "b": "xyz"}\n' * (BLOCK_BYTES * 5 // 2 // 21))
    parts = partition(str(path), n=7)
    seen = range_reads
    seen.clear()
    rows = sum(t.num_rows for _, t in read_all(parts, as_arrow=True))
    assert rows == BLOCK_BYTES * 5 // 2 // 21
    assert len(seen) == 3 and all(b - a <= BLOCK_BYTES for a, b in seen)

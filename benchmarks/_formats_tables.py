"""CSV, JSON lines and Parquet on S3: planning cost, and all partitions vs pyarrow on the whole.

Called by ``bench_formats.py`` (``bench_csv``, ``bench_jsonl``, ``bench_parquet``), each
with the running SeaweedFS, a scratch directory and the parsed arguments; each returns
``(rows, plans)``: result rows ``(measure, case, value, unit, note)`` and plan rows
``(format, case, partitions, requests, bytes_read, seconds)``. Sizes come from
``args.csv_mib`` / ``args.jsonl_mib`` / ``args.parquet_mib`` when given (defaults 128,
32, 64 MiB). The peer is pyarrow on one core (``use_threads=False``), the whole object
fetched by the same client first: partitions read in one process are measured against it.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path
from typing import Any

import aifdata
from aifdata import _seaweedfs
from aifdata.formats import RangeSource, get, read_all

BUCKET = "aifdata-bench-formats"


def bench_csv(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    import pyarrow as pa
    import pyarrow.csv as pc

    data, rows_n = csv_payload(_mib(args, "csv_mib", _size(args)) * 2**20)
    url = _upload(server, "tables/rows.csv", data)
    n = _partitions(args)
    plans, rows = [], []
    for case in ("first plan (quote index)", "index kept"):
        source = RangeSource(url)
        seconds, _, parts = _timed(lambda s=source: get("csv").plan(s, n=n))
        plans.append(("csv", case, len(parts), source.requests, source.bytes_read, seconds))
    names = ["id", "name", "value", "note"]

    def ours() -> int:
        return sum(t.num_rows for _, t in read_all(parts, prefetch=_prefetch(args)))

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        return int(
            pc.read_csv(
                pa.BufferReader(whole),  # zero-copy, as ours: the peer at its fastest
                read_options=pc.ReadOptions(use_threads=False),
                parse_options=pc.ParseOptions(newlines_in_values=True),
                convert_options=pc.ConvertOptions(
                    column_types={c: pa.string() for c in names}, strings_can_be_null=False
                ),
            ).num_rows
        )

    rows += _compare("CSV", "pyarrow.csv", len(data), rows_n, ours, peer, len(parts), args)
    return rows, plans


def bench_jsonl(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    import pyarrow as pa
    import pyarrow.json as pj

    data, rows_n = jsonl_payload(_mib(args, "jsonl_mib", max(1, _size(args) // 4)) * 2**20)
    url = _upload(server, "tables/values.jsonl", data)
    source = RangeSource(url)
    seconds, _, parts = _timed(lambda: get("jsonl").plan(source, n=_partitions(args)))
    plans = [("jsonl", f"{len(data) >> 20} MiB", len(parts), source.requests,
              source.bytes_read, seconds)]  # fmt: skip
    schema = pj.read_json(io.BytesIO(data[: data.index(b"\n") + 1])).schema

    def ours() -> int:
        done = read_all(parts, prefetch=_prefetch(args), as_arrow=True, schema=schema)
        return sum(t.num_rows for _, t in done)

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        options = pj.ReadOptions(use_threads=False)
        parse = pj.ParseOptions(explicit_schema=schema)
        return int(pj.read_json(pa.BufferReader(whole), options, parse).num_rows)

    rows = _compare("JSONL", "pyarrow.json", len(data), rows_n, ours, peer, len(parts), args)
    return rows, plans


def bench_parquet(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows_n = _mib(args, "parquet_mib", max(1, _size(args) // 2)) * 2**20 // 24
    rng = np.random.default_rng(7)
    table = pa.table({
        "id": np.arange(rows_n, dtype="int64"),
        "x": rng.normal(size=rows_n),
        "k": rng.integers(0, 1000, rows_n, dtype="int64"),
    })  # fmt: skip
    local = home / "t.parquet"
    pq.write_table(table, local, row_group_size=128 * 1024, compression="snappy")
    url = _upload(server, "tables/t.parquet", local.read_bytes())
    size = local.stat().st_size
    source = RangeSource(url)
    source.head()  # what choosing the format reads first
    before = source.requests, source.bytes_read
    seconds, _, parts = _timed(lambda: get("parquet").plan(source, n=_partitions(args)))
    plans = [("parquet", f"{pq.read_metadata(local).num_row_groups} row groups", len(parts),
              source.requests - before[0], source.bytes_read - before[1], seconds)]  # fmt: skip

    def ours() -> int:
        return sum(t.num_rows for _, t in read_all(parts, prefetch=_prefetch(args)))

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        return int(pq.read_table(pa.BufferReader(whole), use_threads=False).num_rows)

    rows = _compare("Parquet", "pyarrow.parquet", size, rows_n, ours, peer, len(parts), args)
    narrow = RangeSource(url)
    parts[0].read(source=narrow, columns=["x"])
    rows.append(("Parquet one partition, columns=['x']", "1 of 3 columns", narrow.bytes_read / 2**10,
                 "KiB", f"{narrow.requests} requests (footer kept)"))  # fmt: skip
    return rows, plans


def csv_payload(size: int, seed: int = 1) -> tuple[bytes, int]:
    """About ``size`` bytes of CSV: quoted names with commas and doubled quotes, and one
    row in ten with a note spanning lines (CRLF inside quotes)."""
    rng = random.Random(seed)
    pool = []
    for i in range(1000):
        name = rng.choice(['"Smith, J."', "plain", '"say ""hi"""', "Ωmega"])
        note = '"line one\r\nline two, more"' if i % 10 == 0 else "ok"
        pool.append(f",{name},{rng.random():.6f},{note}\n")
    chunks, total, count = ["id,name,value,note\n"], 0, 0
    while total < size:
        block = "".join(f"{count + i}{pool[(count + i) % 1000]}" for i in range(20_000))
        chunks.append(block)
        total += len(block)
        count += 20_000
    return "".join(chunks).encode(), count


def jsonl_payload(size: int, seed: int = 2) -> tuple[bytes, int]:
    """About ``size`` bytes of JSON lines: nested objects, lists, unicode."""
    rng = random.Random(seed)
    pool = [json.dumps({"name": rng.choice(["a", "é\n", "😀"]) * 3, "vals": [rng.random()] * 3,
                        "nested": {"k": i, "ok": i % 2 == 0}})[1:] for i in range(1000)]  # fmt: skip
    chunks, total, count = [], 0, 0
    while total < size:
        block = "".join(f'{{"i": {count + i}, {pool[(count + i) % 1000]}\n' for i in range(20_000))
        chunks.append(block)
        total += len(block)
        count += 20_000
    return "".join(chunks).encode(), count


def _compare(
    label: str, peer_name: str, size: int, records: int, ours: Any, peer: Any, parts: int,
    args: argparse.Namespace,
) -> list[tuple]:  # fmt: skip
    """Rows: ours and the peer in records/s, the cores each kept busy (CPU seconds of this
    process, all threads, over wall seconds), and the ratio per core-second (a run costs
    its wall time, or its CPU time when threads ran in parallel for longer)."""
    repeat = getattr(args, "repeat", 2)
    peer_s, peer_cpu, peer_n = min((_timed(peer) for _ in range(repeat)), key=lambda r: r[0])
    ours_s, ours_cpu, ours_n = min((_timed(ours) for _ in range(repeat)), key=lambda r: r[0])
    assert ours_n == peer_n == records, (label, ours_n, peer_n, records)
    ratio = max(peer_s, peer_cpu) / max(ours_s, ours_cpu)
    print(f"  {label.lower()}: {parts} partitions {records / ours_s:,.0f} rec/s"
          f" ({ours_cpu / ours_s:.2f} cores), {peer_name} whole {records / peer_s:,.0f} rec/s"
          f" ({peer_cpu / peer_s:.2f} cores): {ratio:.2f}x per core")  # fmt: skip
    return [
        (f"{label} partitions, all", f"{parts} partitions", records / ours_s, "rec/s",
         f"{size / ours_s / 1e6:.0f} MB/s, 1 process, {ours_cpu / ours_s:.2f} cores busy"),
        (f"{label} {peer_name} whole file", "peer", records / peer_s, "rec/s",
         f"{size / peer_s / 1e6:.0f} MB/s, one thread, {peer_cpu / peer_s:.2f} cores busy"),
        (f"  ratio partitions / {peer_name}", "target >= 0.8", ratio, "x",
         "per core-second"),
        ("  ratio per CPU-second", "", peer_cpu / max(ours_cpu, 1e-9), "x",
         "work only: not slowed by other processes, blind to I/O waits"),
    ]  # fmt: skip


def _upload(server: _seaweedfs.SeaweedFS, key: str, data: bytes) -> str:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)
    return f"aif://bench/{key}"


def _timed(fn: Any) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds, and what ``fn`` gave."""
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - t0, time.process_time() - c0, value


def _mib(args: argparse.Namespace, name: str, default: int) -> int:
    value = getattr(args, name, None)
    return int(value) if value else default


def _size(args: argparse.Namespace) -> int:
    """MiB of CSV (JSON lines a quarter, Parquet half): bench_formats' --formats-mib."""
    return int(getattr(args, "formats_mib", 128))


def _partitions(args: argparse.Namespace) -> int:
    return int(getattr(args, "tables_partitions", None) or 64)


def _prefetch(args: argparse.Namespace) -> int:
    return int(getattr(args, "prefetch", 4))

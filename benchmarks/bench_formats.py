"""Format partitions benchmark: planning cost, read speed against the reference readers.

    python benchmarks/bench_formats.py [--fastq-mib 1024] [--partitions 256]

Starts SeaweedFS on loopback (or uses ``$AIFDATA_BENCH_S3_ENDPOINT``), writes
a seeded plain FASTQ through ``aif://``, then measures, in one run:

* planning ``--partitions`` partitions: time, bytes and requests;
* reading every partition in one process vs dnaio parsing the whole object
  (fetched whole by the same fast path), records/s and the ratio;
* a Dask bag count with 2 worker processes vs 1 (the speed-up);
* a PyTorch DataLoader with 2 workers, records/s.

Targets (issue 4): partitions read >= 0.8x dnaio's whole-file speed; Dask on 2
workers >= 1.6x one worker.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import aifdata
from aifdata import _seaweedfs
from aifdata.formats import RangeSource, get

BUCKET = "aifdata-bench-formats"
KEY = "reads/run.fastq"
URL = f"aif://bench/{KEY}"


def fastq_payload(size: int, seed: int = 42) -> tuple[bytes, int]:
    """About ``size`` bytes of FASTQ (150 bp reads, half the quality lines start with '@')."""
    rng = random.Random(seed)
    pool = []
    for _ in range(2000):
        sequence = "".join(rng.choices("ACGT", k=150))
        quality = "".join(chr(rng.randint(35, 74)) for _ in range(150))
        if rng.random() < 0.5:
            quality = "@" + quality[1:]
        pool.append(f"\n{sequence}\n+\n{quality}\n")
    chunks, total, count = [], 0, 0
    while total < size:
        block = "".join(f"@read{count + i} lane=1{pool[(count + i) % 2000]}" for i in range(10_000))
        data = block.encode()
        chunks.append(data)
        total += len(data)
        count += 10_000
    return b"".join(chunks), count


def write_config(server: _seaweedfs.SeaweedFS, home: Path) -> Path:
    lines = [f'url = "s3://{BUCKET}"'] + [f'{k} = "{v}"' for k, v in server.storage_options.items()]
    path = home / "config.toml"
    path.write_text("[mounts.bench.s3]\n" + "\n".join(lines) + "\n")
    return path


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def bench_fastq(server: _seaweedfs.SeaweedFS, args: argparse.Namespace) -> list[tuple]:
    rows = []
    print(f"writing {args.fastq_mib} MiB of FASTQ ...", flush=True)
    data, records = fastq_payload(args.fastq_mib * 2**20)
    from boto3.s3.transfer import TransferConfig

    server.client().upload_fileobj(
        io.BytesIO(data), BUCKET, KEY,
        Config=TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4),
    )  # fmt: skip
    size = len(data)
    del data

    source = RangeSource(URL)
    plan_s, parts = timed(lambda: get("fastq").plan(source, n=args.partitions))
    print(f"  plan: {len(parts)} partitions in {plan_s * 1e3:.0f} ms, "
          f"{source.bytes_read / 2**10:.0f} KiB in {source.requests} requests")  # fmt: skip
    rows.append(("FASTQ plan", f"{len(parts)} partitions", plan_s * 1e3, "ms",
                 f"{source.bytes_read / 2**10:.0f} KiB read, {source.requests} requests"))  # fmt: skip

    def ours() -> int:
        return sum(len(p.read()) for p in parts)

    def dnaio_whole() -> int:
        import dnaio

        whole = aifdata.filesystem(catalog=False).cat_file(URL)
        with dnaio.open(io.BytesIO(whole), fileformat="fastq") as reader:
            return sum(1 for _ in reader)

    peer_s, peer_n = min((timed(dnaio_whole) for _ in range(args.repeat)), key=lambda r: r[0])
    ours_s, ours_n = min((timed(ours) for _ in range(args.repeat)), key=lambda r: r[0])
    assert ours_n == peer_n == records, (ours_n, peer_n, records)
    print(f"  read: partitions {records / ours_s:,.0f} rec/s, dnaio whole {records / peer_s:,.0f}")
    rows.append(("FASTQ read, all partitions", "1 process", records / ours_s, "rec/s",
                 f"{size / ours_s / 1e6:.0f} MB/s"))  # fmt: skip
    rows.append(("FASTQ read, dnaio whole file", "peer", records / peer_s, "rec/s",
                 f"{size / peer_s / 1e6:.0f} MB/s"))  # fmt: skip
    rows.append(("  ratio partitions / dnaio", "target >= 0.8", peer_s / ours_s, "x", ""))

    bag = aifdata.dask.to_bag(parts)
    dask_runs = {}
    for workers in (1, 2):
        seconds, counted = min(
            (timed(lambda w=workers: bag.count().compute(scheduler="processes", num_workers=w))
             for _ in range(args.repeat)),
            key=lambda r: r[0],
        )  # fmt: skip
        assert counted == records
        dask_runs[workers] = seconds
        print(f"  dask bag count, {workers} worker(s): {seconds:.2f} s")
        rows.append((f"Dask bag count, {workers} worker(s)", "processes", records / seconds,
                     "rec/s", f"{seconds:.2f} s"))  # fmt: skip
    rows.append(("  speed-up 2 workers / 1", "target >= 1.6", dask_runs[1] / dask_runs[2], "x", ""))

    try:
        from torch.utils.data import DataLoader

        from aifdata.torch import PartitionDataset
    except ImportError:
        print("  (torch is not installed: no DataLoader numbers)")
    else:
        loader = DataLoader(PartitionDataset(parts), num_workers=2, batch_size=None)
        seconds, counted = timed(lambda: sum(1 for _ in loader))
        assert counted == records
        print(f"  torch DataLoader, 2 workers: {records / seconds:,.0f} rec/s")
        rows.append(("PyTorch DataLoader, 2 workers", "batch_size=None", records / seconds,
                     "rec/s", f"{seconds:.2f} s"))  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastq-mib", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    endpoint = os.environ.get("AIFDATA_BENCH_S3_ENDPOINT")
    server = _seaweedfs.SeaweedFS.existing(endpoint) if endpoint else _seaweedfs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="aifdata-bench-formats-") as home:
            os.environ["AIFDATA_HOME"] = home
            os.environ["AIFDATA_CONFIG"] = str(write_config(server, Path(home)))
            server.make_bucket(BUCKET)
            rows = bench_fastq(server, args)
    finally:
        server.stop()
    print()
    print(f"{'measure':<36} {'case':<18} {'value':>14} {'unit':<6} note")
    print("-" * 100)
    for name, case, value, unit, note in rows:
        print(f"{name:<36} {case:<18} {value:14,.2f} {unit:<6} {note}")
    by_name = {name.strip(): value for name, _, value, _, _ in rows}
    print()
    print(
        f"targets: partitions vs dnaio >= 0.8: {by_name['ratio partitions / dnaio']:.2f}; "
        f"Dask 2 vs 1 workers >= 1.6: {by_name['speed-up 2 workers / 1']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

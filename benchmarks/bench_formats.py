"""Format partitions benchmark: planning cost, read speed against the reference readers.

    python benchmarks/bench_formats.py [--fastq-mib 1024] [--partitions 256]

Starts SeaweedFS on loopback (or uses ``$AIFDATA_BENCH_S3_ENDPOINT``), writes
a seeded plain FASTQ through ``aif://``, then measures, in one run:

* planning ``--partitions`` partitions: time, bytes and requests;
* reading every partition in one process vs dnaio parsing the whole object
  (fetched whole by the same fast path), records/s and the ratio;
* a Dask bag count with 2 worker processes vs 1 (the speed-up);
* a PyTorch DataLoader with 2 workers, records/s;
* a gzip FASTQ: building its index once, planning from the stored index, and
  reading all partitions vs dnaio reading the whole object;
* a BGZF FASTQ (``bgzip``'s blocks): planning, and reading all partitions vs
  dnaio reading the whole object;
* a tiled GeoTIFF: all windows stitched vs one tifffile read of the whole object;
* a ROOT TTree: all entry-range partitions vs one uproot read of the whole object;
* what planning costs per format: requests, bytes, time.

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
from collections.abc import Callable
from pathlib import Path

import aifdata
from aifdata import _seaweedfs
from aifdata.formats import RangeSource, choose, get, read_all

BUCKET = "aifdata-bench-formats"
#: (format, case, partitions, requests, bytes read, seconds) of every plan measured.
PLANS: list[tuple[str, str, int, int, int, float]] = []
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


def read_length(record) -> int:  # type: ignore[no-untyped-def]
    """A stand-in for a tokenizer: what the model would get from a record."""
    return len(record.sequence)


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
    PLANS.append(("fastq", f"{args.fastq_mib} MiB", len(parts), source.requests,
                  source.bytes_read, plan_s))  # fmt: skip
    print(f"  plan: {len(parts)} partitions in {plan_s * 1e3:.0f} ms, "
          f"{source.bytes_read / 2**10:.0f} KiB in {source.requests} requests")  # fmt: skip
    rows.append(("FASTQ plan", f"{len(parts)} partitions", plan_s * 1e3, "ms",
                 f"{source.bytes_read / 2**10:.0f} KiB read, {source.requests} requests"))  # fmt: skip

    def ours() -> int:
        return sum(len(records) for _, records in read_all(parts, prefetch=args.prefetch))

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
        dataset = PartitionDataset(parts, transform=read_length)
        loader = DataLoader(dataset, num_workers=2, batch_size=1024)
        seconds, counted = timed(lambda: sum(int(batch.shape[0]) for batch in loader))
        assert counted == records
        print(f"  torch DataLoader, 2 workers: {records / seconds:,.0f} rec/s")
        rows.append(("PyTorch DataLoader, 2 workers", "batches of 1024", records / seconds,
                     "rec/s", f"{seconds:.2f} s"))  # fmt: skip
    return rows


def bench_fastq_gzip(server: _seaweedfs.SeaweedFS, args: argparse.Namespace) -> list[tuple]:
    import zlib

    data, records = fastq_payload(args.gzip_mib * 2**20, seed=7)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip, fast level
    packed = compressor.compress(data) + compressor.flush()
    size = len(data)
    del data
    upload(server, "reads/run.fastq.gz", packed)
    url = "aif://bench/reads/run.fastq.gz"
    n = max(1, args.partitions // 4)
    plugin = choose(RangeSource(url))  # detected: the format reads the codec's bytes
    first = RangeSource(url)
    build_s, parts = timed(lambda: plugin.plan(first, n=n))
    again = RangeSource(url)
    plan_s, parts = timed(lambda: plugin.plan(again, n=n))
    PLANS.append(("fastq, gzip", "index stored", len(parts), again.requests, again.bytes_read,
                  plan_s))  # fmt: skip
    print(f"  gzip: index built in {build_s:.1f} s ({first.bytes_read / 2**20:.0f} MiB read),"
          f" then a plan in {plan_s * 1e3:.0f} ms")  # fmt: skip
    ours_s, peer_s = compare_with_dnaio(url, parts, records, args)
    print(f"  gzip read: partitions {records / ours_s:,.0f} rec/s, dnaio {records / peer_s:,.0f}")
    return [
        ("gzip FASTQ index build (once)", f"{len(packed) >> 20} MiB gz", build_s, "s",
         f"{first.requests} requests, then stored under $AIFDATA_HOME"),
        ("gzip FASTQ plan (index stored)", f"{len(parts)} partitions", plan_s * 1e3, "ms",
         f"{again.bytes_read / 2**10:.0f} KiB read, {again.requests} requests"),
        ("gzip FASTQ read, all partitions", f"{len(parts)} partitions", records / ours_s,
         "rec/s", f"{size / ours_s / 1e6:.0f} MB/s uncompressed"),
        ("gzip FASTQ read, dnaio whole file", "peer", records / peer_s, "rec/s",
         f"{size / peer_s / 1e6:.0f} MB/s uncompressed"),
        ("  ratio partitions / dnaio (gzip)", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip


def bgzf_blocks(data: bytes, block: int = 65280, level: int = 1) -> bytes:
    """``data`` in BGZF blocks, as ``bgzip`` writes them (with its empty last block)."""
    import struct
    import zlib

    out = []
    pieces = [data[pos : pos + block] for pos in range(0, len(data), block)]
    for chunk in [*pieces, b""]:  # the empty block last: BGZF's end-of-file marker
        deflate = zlib.compressobj(level, zlib.DEFLATED, -15)
        body = deflate.compress(chunk) + deflate.flush()
        header = b"\x1f\x8b\x08\x04" + struct.pack("<IBBH", 0, 0, 255, 6) + b"BC"
        out.append(header + struct.pack("<HH", 2, len(body) + 25) + body)
        out.append(struct.pack("<II", zlib.crc32(chunk), len(chunk)))
    return b"".join(out)


def bench_fastq_bgzf(server: _seaweedfs.SeaweedFS, args: argparse.Namespace) -> list[tuple]:
    data, records = fastq_payload(args.bgzf_mib * 2**20, seed=9)
    packed = bgzf_blocks(data)
    size = len(data)
    del data
    upload(server, "reads/run.bgzf.fastq.gz", packed)
    url = "aif://bench/reads/run.bgzf.fastq.gz"
    plugin = choose(RangeSource(url))
    source = RangeSource(url)
    plan_s, parts = timed(lambda: plugin.plan(source, n=args.partitions))
    PLANS.append(("fastq, bgzf", f"{len(packed) >> 20} MiB bgzf", len(parts), source.requests,
                  source.bytes_read, plan_s))  # fmt: skip
    print(f"  bgzf: a plan in {plan_s * 1e3:.0f} ms")
    ours_s, peer_s = compare_with_dnaio(url, parts, records, args)
    print(f"  bgzf read: partitions {records / ours_s:,.0f} rec/s, dnaio {records / peer_s:,.0f}")
    return [
        ("BGZF FASTQ plan", f"{len(parts)} partitions", plan_s * 1e3, "ms",
         f"{source.bytes_read / 2**10:.0f} KiB read, {source.requests} requests"),
        ("BGZF FASTQ read, all partitions", f"{len(parts)} partitions", records / ours_s,
         "rec/s", f"{size / ours_s / 1e6:.0f} MB/s uncompressed"),
        ("BGZF FASTQ read, dnaio whole file", "peer", records / peer_s, "rec/s",
         f"{size / peer_s / 1e6:.0f} MB/s uncompressed"),
        ("  ratio partitions / dnaio (bgzf)", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip


def compare_with_dnaio(url: str, parts: list, records: int, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Best seconds of reading every partition, and of dnaio reading the whole gzip object."""
    import dnaio

    def ours() -> int:
        return sum(len(r) for _, r in read_all(parts, prefetch=args.prefetch))

    def peer() -> int:
        from isal import igzip  # what dnaio itself decompresses with (through xopen)

        whole = aifdata.filesystem(catalog=False).cat_file(url)
        with (
            igzip.GzipFile(fileobj=io.BytesIO(whole)) as stream,
            dnaio.open(stream, fileformat="fastq") as reader,
        ):
            return sum(1 for _ in reader)

    peer_s, peer_n = best(peer, args.repeat)
    ours_s, ours_n = best(ours, args.repeat)
    assert ours_n == peer_n == records, (ours_n, peer_n, records)
    return ours_s, peer_s


def upload(server: _seaweedfs.SeaweedFS, key: str, data: bytes) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)


def best(fn, repeat: int):  # type: ignore[no-untyped-def]
    return min((timed(fn) for _ in range(repeat)), key=lambda r: r[0])


def bench_geotiff(server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace) -> list:
    import numpy as np
    import tifffile

    side = args.geotiff_side
    rng = np.random.default_rng(3)
    image = (rng.normal(1000, 200, (side, side)).astype("uint16")) // 8 * 8
    local = home / "image.tif"
    tifffile.imwrite(local, image, tile=(512, 512), compression="zlib")
    upload(server, "raster/image.tif", local.read_bytes())
    url = "aif://bench/raster/image.tif"
    source = RangeSource(url)
    plan_s, parts = timed(lambda: get("geotiff").plan(source, n=args.partitions // 4))
    PLANS.append(("geotiff", "tiled, tifffile", len(parts), source.requests, source.bytes_read,
                  plan_s))  # fmt: skip

    def ours() -> int:
        out = np.empty_like(image)
        for _, raster in read_all(parts, prefetch=args.prefetch):
            h, w = raster.data.shape[:2]
            out[raster.row : raster.row + h, raster.col : raster.col + w] = raster.data
        assert np.array_equal(out, image)
        return out.size

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        return int(tifffile.imread(io.BytesIO(whole)).size)

    peer_s, _ = best(peer, args.repeat)
    ours_s, _ = best(ours, args.repeat)
    mpix = image.size / 1e6
    print(
        f"  geotiff: {len(parts)} windows {mpix / ours_s:.1f} Mpx/s, tifffile {mpix / peer_s:.1f}"
    )
    return [
        ("GeoTIFF windows, all", f"{len(parts)} windows", mpix / ours_s, "Mpx/s",
         f"{side}x{side} uint16 zlib tiles 512"),
        ("GeoTIFF one tifffile read", "peer", mpix / peer_s, "Mpx/s", "whole object, then decode"),
        ("  ratio windows / tifffile", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip


def bench_root(server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace) -> list:
    import numpy as np
    import uproot

    entries = args.root_entries
    rng = np.random.default_rng(5)
    local = home / "events.root"
    with uproot.recreate(local) as f:
        f.mktree("events", {"px": "f8", "py": "f8", "pz": "f8", "n": "i4"})
        step = 100_000
        for lo in range(0, entries, step):
            k = min(step, entries - lo)
            f["events"].extend({"px": rng.normal(size=k), "py": rng.normal(size=k),
                                "pz": rng.normal(size=k), "n": rng.integers(0, 9, k, dtype="i4")})  # fmt: skip
    upload(server, "hep/events.root", local.read_bytes())
    url = "aif://bench/hep/events.root"
    source = RangeSource(url)
    plan_s, parts = timed(lambda: get("root").plan(source, n=16))
    PLANS.append(("root", f"{entries:,} entries", len(parts), source.requests, source.bytes_read,
                  plan_s))  # fmt: skip

    def ours() -> int:
        return sum(len(arrays) for _, arrays in read_all(parts, prefetch=args.prefetch))

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        with uproot.open(io.BytesIO(whole)) as f:
            return len(f["events"].arrays(library="ak"))  # the same output type as partitions

    peer_s, peer_n = best(peer, args.repeat)
    ours_s, ours_n = best(ours, args.repeat)
    assert peer_n == ours_n == entries
    print(f"  root: {len(parts)} partitions {entries / ours_s:,.0f} entries/s, "
          f"uproot {entries / peer_s:,.0f}")  # fmt: skip
    return [
        ("ROOT partitions, all", f"{len(parts)} partitions", entries / ours_s, "ent/s",
         "4 branches, awkward arrays"),
        ("ROOT one uproot read", "peer", entries / peer_s, "ent/s", "whole object, awkward"),
        ("  ratio partitions / uproot", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip


def more_benches() -> dict[str, Callable[..., tuple[list[tuple], list[tuple]]]]:
    """The other formats' benchmarks: ``bench_NAME(server, home, args)`` in each
    ``benchmarks/_formats_*.py``, returning (result rows, planning rows)."""
    import importlib

    found = {}
    for path in sorted(Path(__file__).parent.glob("_formats_*.py")):
        module = importlib.import_module(path.stem)  # this script's folder is on sys.path
        for name in dir(module):  # public bench_NAME functions; helpers start with "_"
            if name.startswith("bench_") and callable(getattr(module, name)):
                found[name.removeprefix("bench_")] = getattr(module, name)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fastq-mib", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=256)
    parser.add_argument("--gzip-mib", type=int, default=256, help="uncompressed FASTQ")
    parser.add_argument(
        "--bgzf-mib", type=int, default=None, help="uncompressed FASTQ (default: --gzip-mib)"
    )
    parser.add_argument("--geotiff-side", type=int, default=8192, help="pixels per side")
    parser.add_argument("--root-entries", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=4, help="requests read ahead")
    parser.add_argument(
        "--formats-mib", type=int, default=128,
        help="size of each synthetic file of the other formats (benchmarks/_formats_*.py)",
    )  # fmt: skip
    more = more_benches()
    parser.add_argument(
        "--skip", choices=["fastq", "gzip", "bgzf", "geotiff", "root", *more], action="append",
        default=[],
    )  # fmt: skip
    args = parser.parse_args()
    args.bgzf_mib = args.gzip_mib if args.bgzf_mib is None else args.bgzf_mib
    endpoint = os.environ.get("AIFDATA_BENCH_S3_ENDPOINT")
    server = _seaweedfs.SeaweedFS.existing(endpoint) if endpoint else _seaweedfs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="aifdata-bench-formats-") as home:
            os.environ["AIFDATA_HOME"] = home
            os.environ["AIFDATA_CONFIG"] = str(write_config(server, Path(home)))
            server.make_bucket(BUCKET)
            rows = [] if "fastq" in args.skip else bench_fastq(server, args)
            if "gzip" not in args.skip:
                rows += bench_fastq_gzip(server, args)
            if "bgzf" not in args.skip:
                rows += bench_fastq_bgzf(server, args)
            if "geotiff" not in args.skip:
                rows += bench_geotiff(server, Path(home), args)
            if "root" not in args.skip:
                rows += bench_root(server, Path(home), args)
            for name, bench in more.items():
                if name not in args.skip:
                    got, plans = bench(server, Path(home), args)
                    rows += got
                    PLANS.extend(plans)
    finally:
        server.stop()
    print()
    print(f"{'measure':<36} {'case':<18} {'value':>14} {'unit':<6} note")
    print("-" * 100)
    for name, case, value, unit, note in rows:
        print(f"{name:<36} {case:<18} {value:14,.2f} {unit:<6} {note}")
    if PLANS:
        print()
        print(f"{'planning cost':<14} {'case':<18} {'parts':>6} {'requests':>9} {'KiB read':>10}"
              f" {'KiB/part':>9} {'ms':>9}")  # fmt: skip
        for fmt, case, parts, requests, nbytes, seconds in PLANS:
            print(f"{fmt:<14} {case:<18} {parts:>6} {requests:>9} {nbytes / 2**10:>10,.0f}"
                  f" {nbytes / 2**10 / max(parts, 1):>9,.1f} {seconds * 1e3:>9,.0f}")  # fmt: skip
    by_name = {name.strip(): value for name, _, value, _, _ in rows}
    if "ratio partitions / dnaio" in by_name:
        print()
        print(
            f"targets: partitions vs dnaio >= 0.8: {by_name['ratio partitions / dnaio']:.2f}; "
            f"Dask 2 vs 1 workers >= 1.6: {by_name['speed-up 2 workers / 1']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

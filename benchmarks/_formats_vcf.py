"""VCF rows of the formats benchmark: planning cost, and every partition read vs pysam.

    python benchmarks/_formats_vcf.py [--vcf-mib 100] [--partitions 16]

``bench_vcf(server, home, args)`` writes a seeded VCF (10 samples, three contigs,
multi-allelic records, missing values) plain and as BGZF with a tabix index to the
``bench`` mount (S3 on SeaweedFS), then measures:

* planning a byte-range plan (plain and BGZF) and a region plan over one contig through
  the ``.tbi``: requests and bytes per partition;
* reading every partition from S3 (records, and ``as_arrow=True``) vs pysam reading the
  whole file. pysam does not read this S3 endpoint (htslib's S3 plug-in wants AWS
  settings), so the object is downloaded once, untimed, and pysam reads the local copy;
  the partitions' times include their S3 reads;
* reading the region's partitions vs pysam's ``fetch`` of the region (local copy).

Run alone, it starts SeaweedFS on loopback (or uses ``$AIFDATA_BENCH_S3_ENDPOINT``).
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
from typing import Any

BUCKET = "aifdata-bench-formats"
SAMPLES = 10
CONTIGS = (("chr1", 120_000_000), ("chr2", 100_000_000), ("chr3", 80_000_000))


def vcf_payload(size: int, seed: int = 7) -> tuple[bytes, int]:
    """About ``size`` bytes of sorted VCF with ``SAMPLES`` samples; and its record count."""
    rng = random.Random(seed)
    gts = ["0|0", "0|1", "1|0", "1|1", "./.", "0/1", "1/2", "."]
    pool = []
    for _ in range(4000):
        alts = ",".join(
            rng.choice("ACGT") * rng.randint(1, 3) for _ in range(rng.choice([1, 1, 2]))
        )
        qual = "." if rng.random() < 0.1 else f"{rng.uniform(1, 99):.1f}"
        info = f"DP={rng.randint(1, 400)};AF={rng.random():.3f}" + (
            ";DB" if rng.random() < 0.3 else ""
        )
        samples = "\t".join(f"{rng.choice(gts)}:{rng.randint(0, 60)}" for _ in range(SAMPLES))
        filt = rng.choice(["PASS", "PASS", ".", "q10"])
        pool.append((rng.choice("ACGT"), alts, qual, filt, info, samples))
    head = ["##fileformat=VCFv4.2"]
    head += [f"##contig=<ID={c},length={n}>" for c, n in CONTIGS]
    head += ['##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
             '##INFO=<ID=AF,Number=A,Type=Float,Description="Frequency">',
             '##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">',
             '##FILTER=<ID=q10,Description="Quality below 10">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                        *(f"S{i}" for i in range(SAMPLES))])]  # fmt: skip
    per_record = sum(len("\t".join(p)) + 30 for p in pool[:100]) // 100
    total = max(3, size // per_record)
    chunks, count = ["\n".join(head) + "\n"], 0
    for contig, length in CONTIGS:
        k = total // len(CONTIGS)
        step = length // (k + 1)
        lines = []
        for i in range(k):
            ref, alts, qual, filt, info, samples = pool[(count + i) % len(pool)]
            lines.append(f"{contig}\t{(i + 1) * step}\trs{count + i}\t{ref}\t{alts}\t{qual}\t"
                         f"{filt}\t{info}\tGT:DP\t{samples}\n")  # fmt: skip
        chunks.append("".join(lines))
        count += k
    return "".join(chunks).encode(), count


def upload(server: Any, key: str, data: bytes) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    return min((timed(fn) for _ in range(repeat)), key=lambda r: r[0])


def bench_vcf(server: Any, home: Path, args: argparse.Namespace) -> tuple[list[tuple], list[tuple]]:
    """(result rows, plan rows) in ``benchmarks/bench_formats.py``'s shapes."""
    import pysam

    from aifdata.formats import RangeSource, get, read_all

    mib = getattr(args, "vcf_mib", None) or getattr(args, "formats_mib", 100)
    count = getattr(args, "vcf_partitions", None) or getattr(args, "partitions", 16)
    repeat, prefetch = getattr(args, "repeat", 2), getattr(args, "prefetch", 4)
    rows: list[tuple] = []
    plans: list[tuple] = []
    print(f"writing {mib} MiB of VCF ({SAMPLES} samples), plain and BGZF + tbi ...", flush=True)
    data, records = vcf_payload(mib * 2**20)
    local = home / "calls.vcf"
    local.write_bytes(data)
    packed = home / "calls.vcf.gz"
    pysam.tabix_compress(str(local), str(packed), force=True)
    pysam.tabix_index(str(packed), preset="vcf", force=True)
    upload(server, "vcf/calls.vcf", data)
    upload(server, "vcf/calls.vcf.gz", packed.read_bytes())
    upload(server, "vcf/calls.vcf.gz.tbi", Path(str(packed) + ".tbi").read_bytes())
    del data
    vcf = get("vcf")
    plain_url, bgzf_url = "aif://bench/vcf/calls.vcf", "aif://bench/vcf/calls.vcf.gz"

    def plan(case: str, url: str, **options: Any) -> list:
        source = RangeSource(url)
        seconds, parts = timed(lambda: vcf.plan(source, **options))
        plans.append(("vcf", case, len(parts), source.requests, source.bytes_read, seconds))
        rows.append((f"VCF plan, {case}", f"{len(parts)} partitions",
                     source.requests / max(len(parts), 1), "req/part",
                     f"{source.bytes_read / 2**10 / max(len(parts), 1):.0f} KiB/part,"
                     f" {seconds * 1e3:.0f} ms"))  # fmt: skip
        return parts

    plain_parts = plan(f"plain {mib} MiB", plain_url, n=count)
    bgzf_parts = plan(f"BGZF {mib} MiB", bgzf_url, n=count)
    region = CONTIGS[1][0]
    region_parts = plan(f"BGZF region {region} (tbi)", bgzf_url, n=count, region=region)

    def ours(parts: list, **options: Any) -> int:
        return sum(len(r) for _, r in read_all(parts, prefetch=prefetch, **options))

    def peer(path: Path, fetch: str | None = None) -> int:
        with pysam.VariantFile(str(path)) as f:
            return sum(1 for _ in (f.fetch(fetch) if fetch else f))

    peer_s, peer_n = best(lambda: peer(local), repeat)
    for case, parts in (("plain", plain_parts), ("BGZF", bgzf_parts)):
        ours_s, ours_n = best(lambda p=parts: ours(p), repeat)
        arrow_s, arrow_n = best(lambda p=parts: ours(p, as_arrow=True), repeat)
        assert ours_n == arrow_n == peer_n == records, (ours_n, arrow_n, peer_n, records)
        print(f"  {case}: records {records / ours_s:,.0f}/s, arrow {records / arrow_s:,.0f}/s,"
              f" pysam whole file {records / peer_s:,.0f}/s")  # fmt: skip
        rows += [
            (f"VCF read {case}, all partitions", "records", records / ours_s, "rec/s",
             f"{len(parts)} partitions from S3"),
            (f"VCF read {case}, all partitions", "as_arrow", records / arrow_s, "rec/s",
             "Arrow's CSV reader, 1 thread"),
            ("  ratio records / pysam", "target >= 0.8", peer_s / ours_s, "x", ""),
            ("  ratio as_arrow / pysam", "target >= 0.8", peer_s / arrow_s, "x", ""),
        ]  # fmt: skip
    rows.append(("VCF pysam whole file", "peer", records / peer_s, "rec/s",
                 "local copy (pysam does not read this S3), plain VCF"))  # fmt: skip
    fetch_s, fetch_n = best(lambda: peer(packed, region), repeat)
    region_s, region_n = best(lambda: ours(region_parts), repeat)
    assert fetch_n == region_n, (fetch_n, region_n)
    rows += [
        (f"VCF region {region}, all partitions", "records", region_n / region_s, "rec/s",
         f"{len(region_parts)} partitions from S3"),
        (f"VCF region {region}, pysam fetch", "peer", fetch_n / fetch_s, "rec/s", "local copy"),
        ("  ratio region / pysam fetch", "", fetch_s / region_s, "x", ""),
    ]  # fmt: skip
    return rows, plans


def main() -> int:
    from aifdata import _seaweedfs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcf-mib", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=4)
    args = parser.parse_args()
    endpoint = os.environ.get("AIFDATA_BENCH_S3_ENDPOINT")
    server = _seaweedfs.SeaweedFS.existing(endpoint) if endpoint else _seaweedfs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="aifdata-bench-vcf-") as home:
            lines = [f'url = "s3://{BUCKET}"']
            lines += [f'{k} = "{v}"' for k, v in server.storage_options.items()]
            config = Path(home) / "config.toml"
            config.write_text("[mounts.bench.s3]\n" + "\n".join(lines) + "\n")
            os.environ["AIFDATA_HOME"] = home
            os.environ["AIFDATA_CONFIG"] = str(config)
            server.make_bucket(BUCKET)
            rows, plans = bench_vcf(server, Path(home), args)
    finally:
        server.stop()
    print(f"\n{'measure':<40} {'case':<22} {'value':>12} {'unit':<9} note")
    for name, case, value, unit, note in rows:
        print(f"{name:<40} {case:<22} {value:12,.2f} {unit:<9} {note}")
    print(f"\n{'planning cost':<34} {'parts':>6} {'requests':>9} {'KiB read':>10} {'ms':>8}")
    for _, case, parts, requests, nbytes, seconds in plans:
        print(f"{case:<34} {parts:>6} {requests:>9} {nbytes / 2**10:>10,.0f}"
              f" {seconds * 1e3:>8,.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

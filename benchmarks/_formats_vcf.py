"""VCF rows of the formats benchmark: planning cost, and every partition read vs pysam.

    python benchmarks/_formats_vcf.py [--vcf-mib 100] [--sam-mib 50] [--partitions 16]

``bench_vcf(server, home, args)`` writes a seeded VCF (10 samples, three contigs,
multi-allelic records, missing values) plain and as BGZF with a tabix index to the
``bench`` mount (S3 on SeaweedFS), then measures:

* planning a byte-range plan (plain and BGZF) and a region plan over one contig through
  the ``.tbi``: requests and bytes per partition;
* reading every partition from S3 (records, and ``as_arrow=True``) vs pysam reading the
  whole file, both touching CHROM, POS and ALT of every record (pysam parses each line
  in C; ours checks each in bulk and reads those columns when asked). pysam does not
  read this S3 endpoint (htslib's S3 plug-in wants AWS settings), so its timing
  includes fetching the whole object to a local file, as a user without partitions
  would; the same again with both sides reading a local file;
* reading the region's partitions (local and from S3) vs pysam's ``fetch`` of the
  region (local);
* ``bench_sam``: a seeded SAM, every partition (S3 and local) vs ``pysam.AlignmentFile``
  on the same text, both touching name, CIGAR, sequence, qualities and position.

Every comparison gives the cores each side kept busy (this process's CPU seconds over
wall seconds) and the ratio per core-second: a run costs its wall time, or its CPU time
when threads ran in parallel for longer. Partitions are read by ``read_all`` with its
prefetch threads (the I/O overlaps the parsing; the parsing runs in one thread).

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


def timed(fn: Any) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds (all its threads), and what ``fn`` gave."""
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - t0, time.process_time() - c0, value


def best(fn: Any, repeat: int) -> tuple[float, float, Any]:
    """The fastest of ``repeat`` runs (by wall time): wall, CPU seconds, value."""
    return min((timed(fn) for _ in range(repeat)), key=lambda r: r[0])


def core_seconds(run: tuple[float, float, Any]) -> float:
    """What a run cost in cores: its wall time, or its CPU time when threads ran in
    parallel for longer (two cores busy for one second cost two)."""
    return max(run[0], run[1])


def compare(
    label: str, case: str, n: int, ours: tuple[float, float, Any], peer: tuple[float, float, Any],
    note: str, peer_note: str,
) -> list[tuple]:  # fmt: skip
    """Rows: ours and the peer in records/s (with the cores each used), and the ratio per
    core (records per core-second, see :func:`core_seconds`)."""
    ratio = core_seconds(peer) / core_seconds(ours)
    print(f"  {label} {case}: {n / ours[0]:,.0f} rec/s ({ours[1] / ours[0]:.2f} cores),"
          f" peer {n / peer[0]:,.0f} rec/s ({peer[1] / peer[0]:.2f} cores): {ratio:.2f}x per core")  # fmt: skip
    return [
        (label, case, n / ours[0], "rec/s", f"{note}; {ours[1] / ours[0]:.2f} cores busy"),
        (f"{label}, peer", "peer", n / peer[0], "rec/s",
         f"{peer_note}; {peer[1] / peer[0]:.2f} cores busy"),
        ("  ratio per core", "target >= 0.8", ratio, "x", "records per core-second"),
        ("  ratio per CPU-second", "", peer[1] / max(ours[1], 1e-9), "x",
         "work only: not slowed by other processes, blind to I/O waits"),
    ]  # fmt: skip


def touch_ours(parts: list, prefetch: int, **options: Any) -> int:
    """Read every partition and touch each record's CHROM, POS and ALT (an Arrow table
    holds them already); the record count."""
    from aifdata.formats import read_all

    count = 0
    for _, records in read_all(parts, prefetch=prefetch, **options):
        if options.get("as_arrow"):
            count += records.num_rows
            continue
        for r in records:
            r.chrom, r.pos, r.alts  # noqa: B018 - the same work as the peer's
        count += len(records)
    return count


def touch_pysam(path: Path | str, region: str | None = None) -> int:
    """pysam parses every record (in C) and touches its CHROM, POS and ALT."""
    import pysam

    count = 0
    with pysam.VariantFile(str(path)) as f:
        for r in f.fetch(region) if region else f:
            r.chrom, r.pos, r.alts  # noqa: B018 - the same work as ours
            count += 1
    return count


def fetched(url: str, suffix: str, peer: Any) -> Any:
    """A peer that first fetches the whole object (one request, as a user without
    partitions would) to a local file, since htslib does not read this S3 endpoint."""
    import aifdata

    def run() -> Any:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
            copy.write(whole)
            copy.flush()
            del whole
            return peer(copy.name)

    return run


def bench_vcf(server: Any, home: Path, args: argparse.Namespace) -> tuple[list[tuple], list[tuple]]:
    """(result rows, plan rows) in ``benchmarks/bench_formats.py``'s shapes."""
    import pysam

    from aifdata.formats import RangeSource, get

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
        seconds, _, parts = timed(lambda: vcf.plan(source, **options))
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
    local_parts = vcf.plan(RangeSource(str(local)), n=count)
    local_region = vcf.plan(RangeSource(str(packed)), n=count, region=region)

    def ours(parts: list, **options: Any) -> tuple[float, float, int]:
        return best(lambda: touch_ours(parts, prefetch, **options), repeat)

    def peer(fn: Any) -> tuple[float, float, int]:
        return best(fn, repeat)

    what = "chrom, pos, alts of each record"
    cases = (("plain", plain_parts, plain_url, ".vcf"), ("BGZF", bgzf_parts, bgzf_url, ".vcf.gz"))
    for case, parts, url, suffix in cases:
        theirs = peer(fetched(url, suffix, touch_pysam))
        mine, arrow = ours(parts), ours(parts, as_arrow=True)
        assert mine[2] == arrow[2] == theirs[2] == records, (mine[2], arrow[2], theirs[2])
        peer_note = f"pysam, whole object fetched to a local file, {what}"
        rows += compare(f"VCF read {case}, S3", "records", records, mine, theirs,
                        f"{len(parts)} partitions from S3, {what}", peer_note)  # fmt: skip
        rows += compare(f"VCF read {case}, S3", "as_arrow", records, arrow, theirs,
                        f"{len(parts)} partitions from S3, Arrow tables", peer_note)  # fmt: skip
    theirs, mine = peer(lambda: touch_pysam(local)), ours(local_parts)
    assert mine[2] == theirs[2] == records
    rows += compare("VCF read plain, local file", "records", records, mine, theirs,
                    f"{len(local_parts)} partitions, {what}", f"pysam, {what}")  # fmt: skip
    theirs = peer(lambda: touch_pysam(packed, region))
    mine, remote = ours(local_region), ours(region_parts)
    assert mine[2] == remote[2] == theirs[2], (mine[2], remote[2], theirs[2])
    rows += compare(f"VCF region {region}, local file", "records", theirs[2], mine, theirs,
                    f"{len(local_region)} partitions, {what}", f"pysam fetch, {what}")  # fmt: skip
    rows += compare(f"VCF region {region}, S3", "records", theirs[2], remote, theirs,
                    f"{len(region_parts)} partitions from S3, {what}",
                    f"pysam fetch of a local copy, {what}")  # fmt: skip
    return rows, plans


SAM_REFS = (("chr1", 200_000_000), ("chr2", 150_000_000), ("chr3", 100_000_000))


def sam_payload(size: int, seed: int = 11) -> tuple[bytes, int]:
    """About ``size`` bytes of SAM: 150 bp pairs on three references (five CIGAR shapes,
    soft clips, a deletion, a splice), four tags, then unmapped reads; and the count."""
    rng = random.Random(seed)
    shapes = ["150M", "100M2I48M", "20S130M", "75M1000N75M", "70M3D80M"]
    pool = []
    for i in range(2000):
        seq = "".join(rng.choices("ACGT", k=150))
        qual = "".join(chr(rng.randint(35, 74)) for _ in range(150))
        tags = (f"NM:i:{rng.randint(0, 5)}\tMD:Z:{rng.randint(1, 149)}A0\tAS:i:{rng.randint(-50, 150)}"
                "\tRG:Z:grp1")  # fmt: skip
        pool.append((shapes[i % len(shapes)], seq, qual, tags))
    head = ["@HD\tVN:1.6\tSO:coordinate"]
    head += [f"@SQ\tSN:{name}\tLN:{length}" for name, length in SAM_REFS]
    head += ["@RG\tID:grp1\tSM:sample1", "@PG\tID:bench\tPN:aifdata-bench"]
    total = max(len(SAM_REFS), size // 420)
    lines, count = ["\n".join(head) + "\n"], 0
    per_ref = total * 9 // 10 // len(SAM_REFS)
    for name, _ in SAM_REFS:
        pos = 1
        for _ in range(per_ref):
            cigar, seq, qual, tags = pool[count % len(pool)]
            pos += rng.randint(0, 60)
            flag, mate = rng.choice(((99, 200), (147, -200), (83, -200), (163, 200), (0, 0)))
            next_pos, tlen = (max(pos + mate, 1), mate + 150) if mate else (0, 0)
            rnext = "=" if mate else "*"
            lines.append(f"r{count}\t{flag}\t{name}\t{pos}\t{rng.randint(0, 60)}\t{cigar}\t"
                         f"{rnext}\t{max(next_pos, 0)}\t{tlen}\t{seq}\t{qual}\t{tags}\n")  # fmt: skip
            count += 1
    for _ in range(total - count):
        _, seq, qual, _ = pool[count % len(pool)]
        lines.append(f"u{count}\t4\t*\t0\t0\t*\t*\t0\t0\t{seq}\t{qual}\tRG:Z:grp1\n")
        count += 1
    return "".join(lines).encode(), count


def touch_sam_ours(parts: list, prefetch: int) -> int:
    """Read every partition and touch each record's name, CIGAR, sequence, qualities and
    position (what the BAM benchmark touches)."""
    from aifdata.formats import read_all

    count = 0
    for _, records in read_all(parts, prefetch=prefetch):
        for r in records:
            r.query_name, r.cigarstring, r.query_sequence, r.query_qualities  # noqa: B018
            r.reference_start  # noqa: B018
        count += len(records)
    return count


def touch_sam_pysam(path: Path | str) -> int:
    """pysam parses every SAM line (in C) and touches the same fields as ours."""
    import pysam

    count = 0
    with pysam.AlignmentFile(str(path), "r", check_sq=False) as f:
        for r in f:
            r.query_name, r.cigarstring, r.query_sequence, r.query_qualities  # noqa: B018
            r.reference_start  # noqa: B018
            count += 1
    return count


def touch_sam_arrow(parts: list, prefetch: int) -> int:
    """Read every partition as an Arrow table (all 11 fields and the tags, as columns:
    building the table is the work); the record count."""
    from aifdata.formats import read_all

    return sum(table.num_rows for _, table in read_all(parts, prefetch=prefetch, as_arrow=True))


def touch_sam_pysam_all(path: Path | str) -> int:
    """pysam parses every SAM line (in C) and touches all 11 fields (as pysam gives them:
    0-based positions, reference names, the end from the CIGAR) and the tags."""
    import pysam

    count = 0
    with pysam.AlignmentFile(str(path), "r", check_sq=False) as f:
        for r in f:
            r.query_name, r.flag, r.reference_name, r.reference_start  # noqa: B018
            r.reference_end, r.mapping_quality, r.cigarstring, r.next_reference_name  # noqa: B018
            r.next_reference_start, r.template_length, r.query_sequence  # noqa: B018
            r.query_qualities, r.get_tags()
            count += 1
    return count


def bench_sam(server: Any, home: Path, args: argparse.Namespace) -> tuple[list[tuple], list[tuple]]:
    """SAM text: planning cost, and every partition read vs pysam reading the whole file
    (both touch the same fields), from S3 and from a local file: as records (five fields
    touched), and as Arrow tables (all fields and tags) vs pysam touching all of them."""
    from aifdata.formats import RangeSource, get

    mib = getattr(args, "sam_mib", None) or max(1, getattr(args, "formats_mib", 100) // 2)
    count = getattr(args, "partitions", 16)
    repeat, prefetch = getattr(args, "repeat", 2), getattr(args, "prefetch", 4)
    print(f"writing {mib} MiB of SAM ...", flush=True)
    data, records = sam_payload(mib * 2**20)
    local = home / "reads.sam"
    local.write_bytes(data)
    upload(server, "sam/reads.sam", data)
    del data
    url = "aif://bench/sam/reads.sam"
    sam = get("sam")
    source = RangeSource(url)
    seconds, _, parts = timed(lambda: sam.plan(source, n=count))
    plans = [("sam", f"plain {mib} MiB", len(parts), source.requests, source.bytes_read, seconds)]
    local_parts = sam.plan(RangeSource(str(local)), n=count)
    what, every = "name, CIGAR, sequence, qualities, position", "all 11 fields and the tags"
    cases = [  # (measure, case, ours, our partitions, pysam's, what each side does)
        ("SAM read, S3", "records", touch_sam_ours, parts, fetched(url, ".sam", touch_sam_pysam),
         f"{len(parts)} partitions from S3, {what}",
         f"pysam, whole object fetched to a local file, {what}"),
        ("SAM read, local file", "records", touch_sam_ours, local_parts,
         lambda: touch_sam_pysam(local), f"{len(local_parts)} partitions, {what}",
         f"pysam, {what}"),
        ("SAM as Arrow, S3", "records", touch_sam_arrow, parts,
         fetched(url, ".sam", touch_sam_pysam_all),
         f"{len(parts)} partitions from S3, read(as_arrow=True): {every} as columns",
         f"pysam, whole object fetched to a local file, {every} touched"),
        ("SAM as Arrow, local file", "records", touch_sam_arrow, local_parts,
         lambda: touch_sam_pysam_all(local),
         f"{len(local_parts)} partitions, read(as_arrow=True): {every} as columns",
         f"pysam, {every} touched"),
    ]  # fmt: skip
    rows = []
    for measure, case, ours, ours_parts, peer, ours_note, peer_note in cases:
        theirs = best(peer, repeat)
        mine = best(lambda f=ours, p=ours_parts: f(p, prefetch), repeat)
        assert mine[2] == theirs[2] == records, (measure, mine[2], theirs[2], records)
        rows += compare(measure, case, records, mine, theirs, ours_note, peer_note)
    return rows, plans


def main() -> int:
    from aifdata import _seaweedfs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vcf-mib", type=int, default=100)
    parser.add_argument("--sam-mib", type=int, default=50)
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
            sam_rows, sam_plans = bench_sam(server, Path(home), args)
            rows, plans = rows + sam_rows, plans + sam_plans
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

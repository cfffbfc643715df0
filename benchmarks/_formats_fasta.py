"""FASTA: planning cost with and without a ``.fai``, and reading every partition against pyfaidx.

A seeded, genome-like FASTA (a few chromosomes wrapped at 60, soft-masked runs and N
runs, then many short contigs) of ``--formats-mib`` MiB is written through ``aif://`` with
the ``.fai`` samtools makes for it. Measured:

* planning by records, without and with the ``.fai`` (requests and bytes per partition);
* planning residue ranges of the longest chromosome, with the ``.fai`` and without it
  (then planning reads the whole file once, as samtools faidx does);
* reading every record partition (``read_all``) vs pyfaidx on the whole file (the object
  fetched whole, then ``pyfaidx.Fasta`` indexes it and reads every sequence);
* reading every residue range of the chromosome vs pyfaidx slicing it whole;
* a protein FASTA (many short records, a quarter of the size): planning with and without
  its ``.fai``, reading every partition vs pyfaidx.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import aifdata
from aifdata import _seaweedfs
from aifdata.formats import RangeSource, get, read_all

KEY = "genome/genome.fa"
URL = f"aif://bench/{KEY}"
WIDTH = 60


def genome(size: int, seed: int = 15) -> tuple[bytes, int, str, int]:
    """About ``size`` bytes of FASTA: (data, records, longest name, its length)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chromosomes = max(1, min(8, size // 2**20))
    contig_share = size // 10
    sizes = [int((size - contig_share) * w) for w in _weights(chromosomes)]
    pieces, records = [], 0
    for k, length in enumerate(sizes):
        pieces.append(
            f">chr{k + 1} synthetic chromosome {k + 1}\n".encode() + _wrapped(rng, length)
        )
        records += 1
    made = 0
    while made < contig_share:
        length = int(rng.integers(200, 20_000))
        pieces.append(f">contig{records} len={length}\n".encode() + _wrapped(rng, length))
        made += length
        records += 1
    return b"".join(pieces), records, "chr1", sizes[0]


def proteins(size: int, seed: int = 16) -> tuple[bytes, int]:
    """About ``size`` bytes of protein FASTA (records of 50-1000 residues, wrapped at 60)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
    pieces, made, count = [], 0, 0
    while made < size:
        length = int(rng.integers(50, 1000))
        residues = alphabet[rng.integers(0, 20, length)].tobytes()
        body = b"\n".join(residues[i : i + WIDTH] for i in range(0, length, WIDTH))
        piece = (
            b">sp|P%05d|PROT%d_HUMAN synthetic protein %d\n" % (count, count, count) + body + b"\n"
        )
        pieces.append(piece)
        made += len(piece)
        count += 1
    return b"".join(pieces), count


def _weights(count: int) -> list[float]:
    raw = [1 / (k + 1) for k in range(count)]
    return [w / sum(raw) for w in raw]


def _wrapped(rng: Any, length: int) -> bytes:
    """``length`` residues (ACGT, lower-case runs, N runs) in lines of ``WIDTH``."""
    import numpy as np

    residues = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, length)]
    for start in rng.integers(0, max(1, length), max(1, length // 50_000)):
        residues[start : start + 2000] |= 0x20  # soft-masked: lower case
    for start in rng.integers(0, max(1, length), max(1, length // 200_000)):
        residues[start : start + 5000] = ord("N")
    full = length // WIDTH * WIDTH
    lines = np.empty((full // WIDTH, WIDTH + 1), dtype=np.uint8)
    lines[:, :WIDTH] = residues[:full].reshape(-1, WIDTH)
    lines[:, WIDTH] = 10
    tail = residues[full:].tobytes()
    return lines.tobytes() + (tail + b"\n" if tail else b"")


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def best(fn, repeat: int):  # type: ignore[no-untyped-def]
    return min((timed(fn) for _ in range(max(1, repeat))), key=lambda r: r[0])


def plan(name: str, case: str, plans: list, **options: Any) -> tuple[list, tuple]:
    return _plan_once(URL, case, plans, name=name, **options)


def _plan_once(url: str, case: str, plans: list, name: str = "", **options: Any) -> tuple:
    """Plan ``url`` once; its row of results and its planning row (kept in ``plans``)."""
    name = name or case
    source = RangeSource(url)
    seconds, parts = timed(lambda: get("fasta").plan(source, **options))
    plans.append(("fasta", case, len(parts), source.requests, source.bytes_read, seconds))
    per = source.bytes_read / max(1, len(parts)) / 2**10
    row = (f"FASTA plan, {name}", f"{len(parts)} partitions", seconds * 1e3, "ms",
           f"{source.requests} requests, {per:.1f} KiB per partition")  # fmt: skip
    print(f"  fasta plan {name}: {len(parts)} partitions, {source.requests} requests,"
          f" {source.bytes_read / 2**10:,.0f} KiB in {seconds * 1e3:.0f} ms")  # fmt: skip
    return parts, row


def bench_fasta(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    import pyfaidx
    import pysam

    size = max(1, args.formats_mib) * 2**20
    print(f"writing {size / 2**20:.0f} MiB of FASTA ...", flush=True)
    data, records, chrom, chrom_length = genome(size)
    local = home / "genome.fa"
    local.write_bytes(data)
    pysam.faidx(str(local))
    fs = aifdata.filesystem(catalog=False)
    fs.pipe(f"bench/{KEY}", data)
    del data
    rows: list[tuple] = []
    plans: list[tuple] = []
    n = args.partitions

    _, row = plan("records, no .fai", "records, no .fai", plans, n=n, index=False)
    rows.append(row)
    fs.pipe(f"bench/{KEY}.fai", (home / "genome.fa.fai").read_bytes())
    parts, row = plan("records, .fai", "records, .fai", plans, n=n)
    rows.append(row)
    ranges, row = plan("residues, .fai", f"{chrom} residues, .fai", plans, n=n // 4 or 1,
                       by="residues", region=chrom)  # fmt: skip
    rows.append(row)
    _, row = plan("residues, scan", f"{chrom} residues, scan", plans, n=n // 4 or 1,
                  by="residues", region=chrom, index=False)  # fmt: skip
    rows.append(row)

    def ours() -> int:
        return sum(len(rs) for _, rs in read_all(parts, prefetch=args.prefetch))

    def peer() -> int:
        return pyfaidx_read_all(fs, URL, home / "peer" / "genome.fa")

    peer_s, peer_n = best(peer, args.repeat)
    ours_s, ours_n = best(ours, args.repeat)
    assert ours_n == peer_n == records, (ours_n, peer_n, records)
    mb = size / 1e6
    print(f"  fasta read: {len(parts)} partitions {records / ours_s:,.0f} rec/s"
          f" ({mb / ours_s:.0f} MB/s), pyfaidx whole {records / peer_s:,.0f} rec/s"
          f" ({mb / peer_s:.0f} MB/s)")  # fmt: skip
    rows += [
        ("FASTA read, all partitions", f"{len(parts)} partitions", records / ours_s, "rec/s",
         f"{mb / ours_s:.0f} MB/s, read_all"),
        ("FASTA read, pyfaidx whole file", "peer", records / peer_s, "rec/s",
         f"{mb / peer_s:.0f} MB/s, fetch + index + read"),
        ("  ratio partitions / pyfaidx", "target >= 0.8", peer_s / ours_s, "x", ""),
    ]  # fmt: skip

    rows += _bench_proteins(fs, home, args, plans)

    def ours_residues() -> int:
        return sum(len(s[0].sequence) for _, s in read_all(ranges, prefetch=args.prefetch))

    def peer_residues() -> int:
        whole = home / "peer" / "genome.fa"
        whole.parent.mkdir(exist_ok=True)
        whole.write_bytes(fs.cat_file(URL))
        with pyfaidx.Fasta(str(whole), sequence_always_upper=False, rebuild=True) as fa:
            length = len(str(fa[chrom][:]))
        for leftover in whole.parent.iterdir():
            leftover.unlink()
        return length

    peer_s, peer_n = best(peer_residues, args.repeat)
    ours_s, ours_n = best(ours_residues, args.repeat)
    assert ours_n == peer_n == chrom_length, (ours_n, peer_n, chrom_length)
    mres = chrom_length / 1e6
    print(f"  fasta residues: {len(ranges)} ranges {mres / ours_s:.0f} Mres/s,"
          f" pyfaidx {mres / peer_s:.0f} Mres/s")  # fmt: skip
    rows += [
        ("FASTA residue ranges, all", f"{len(ranges)} ranges", mres / ours_s, "Mres/s", chrom),
        ("FASTA pyfaidx, whole chromosome", "peer", mres / peer_s, "Mres/s",
         "fetch + index + slice"),
        ("  ratio ranges / pyfaidx", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip
    return rows, plans


def _bench_proteins(fs: Any, home: Path, args: argparse.Namespace, plans: list) -> list[tuple]:
    """Many short records: planning with and without a ``.fai``, reading vs pyfaidx."""
    import pysam

    size = max(1, args.formats_mib // 4) * 2**20
    data, records = proteins(size)
    local = home / "proteins.fa"
    local.write_bytes(data)
    pysam.faidx(str(local))
    key = "genome/proteins.fa"
    url = f"aif://bench/{key}"
    fs.pipe(f"bench/{key}", data)
    del data
    rows = []
    parts: list = []
    for case, options in (("no .fai", {"index": False}), (".fai", {})):
        if not options:
            fs.pipe(f"bench/{key}.fai", (home / "proteins.fa.fai").read_bytes())
        parts, row = _plan_once(url, f"proteins, {case}", plans, n=args.partitions, **options)
        rows.append(row)

    def ours() -> int:
        return sum(len(rs) for _, rs in read_all(parts, prefetch=args.prefetch))

    def peer() -> int:
        return pyfaidx_read_all(fs, url, home / "peer" / "proteins.fa")

    peer_s, peer_n = best(peer, args.repeat)
    ours_s, ours_n = best(ours, args.repeat)
    assert ours_n == peer_n == records, (ours_n, peer_n, records)
    print(f"  fasta proteins: {len(parts)} partitions {records / ours_s:,.0f} rec/s,"
          f" pyfaidx whole {records / peer_s:,.0f} rec/s")  # fmt: skip
    return [
        *rows,
        ("FASTA proteins, all partitions", f"{len(parts)} partitions", records / ours_s, "rec/s",
         f"{records:,} records, read_all"),
        ("FASTA proteins, pyfaidx whole", "peer", records / peer_s, "rec/s",
         "fetch + index + read"),
        ("  ratio partitions / pyfaidx", "target >= 0.8", peer_s / ours_s, "x", "proteins"),
    ]  # fmt: skip


def pyfaidx_read_all(fs: Any, url: str, whole: Path) -> int:
    """The peer: the object fetched whole to ``whole``, indexed by pyfaidx and read all;
    the number of records (the local copy is removed after)."""
    import pyfaidx

    whole.parent.mkdir(exist_ok=True)
    whole.write_bytes(fs.cat_file(url))
    with pyfaidx.Fasta(str(whole), sequence_always_upper=False, rebuild=True) as fa:
        count = sum(1 for key in fa.keys() if len(str(fa[key][:])) >= 0)  # noqa: SIM118
    for leftover in whole.parent.iterdir():
        leftover.unlink()
    return count

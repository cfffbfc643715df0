"""Catalog benchmark: ingest rate, search latency at scale, replica point lookups.

    python benchmarks/bench_catalog.py                  # the issue's sizes
    python benchmarks/bench_catalog.py --files 2000 --datasets 2000   # a quick look

1. **Ingest** ``--files`` small files (seeded, 256 B to 4 KiB) from a PFS tier
   through ``aif://``, with and without SHA-256 hashing, into a fresh catalog.
   Peers: a plain ``os.scandir`` walk with ``stat`` (what listing alone costs)
   and a plain walk that reads and hashes every file in one thread.
2. **Search** at ``--datasets`` datasets with ``--files-per-dataset`` files each
   (1,000,000 file rows by default), built straight into the tables: p50/p95
   of ``Catalog.search`` over seeded queries, as the admin and as a user who
   may read one domain. Peer: Intake's approach, a linear substring scan.
3. **Replica lookup**: ``Catalog.replica_records([url])`` for random files.

Targets (issue 3): >= 20,000 files/s without hashing; search p95 < 50 ms and
replica lookup < 1 ms at 1,000,000 file rows and 100,000 datasets.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aifdata
from aifdata import Catalog

DOMAINS = ("genomics", "climate", "physics", "imaging", "materials", "astro", "neuro", "chem")
FORMATS = ("fastq", "geotiff", "root", "hdf5", "parquet", "netcdf", "zarr", "csv")
SITES = ("bsc", "cineca", "csc", "juelich", "lrz", "cea", "surf", "kth")


def words(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct pronounceable words."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    out: set[str] = set()
    while len(out) < n:
        length = rng.randint(2, 4)
        out.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length)))
    return sorted(out)


# -- 1. ingest ---------------------------------------------------------------


def make_files(root: Path, count: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        folder = root / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(256, 4096))
        (folder / f"f{i:07d}.bin").write_bytes(data)
        total += len(data)
    return total


def walk_stat(root: Path) -> int:
    count = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def walk_hash(root: Path) -> int:
    count = 0
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                hashlib.sha256(f.read()).hexdigest()
            count += 1
    return count


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, n


def bench_ingest(work: Path, count: int) -> list[tuple[str, str, float, str]]:
    pfs = work / "pfs"
    print(f"writing {count:,} small files ...", flush=True)
    make_files(pfs / "ingest", count)
    config = aifdata.Config((aifdata.Mount("bench", (aifdata.Tier.pfs(pfs),)),))
    rows = []
    cases = [
        ("without hashing", False, "os.scandir + stat", lambda: walk_stat(pfs / "ingest")),
        ("with SHA-256", True, "os.walk + read + sha256", lambda: walk_hash(pfs / "ingest")),
    ]
    for label, hashing, peer_name, peer in cases:
        peer_s, peer_n = timed(peer)
        catalog = Catalog(work / f"ingest-{hashing}.db", config=config)

        def ingest(catalog: Catalog = catalog, hashing: bool = hashing) -> int:
            ds = catalog.ingest("aif://bench/ingest", "bench/files", checksum=hashing)
            return len(ds.files)

        ours_s, ours_n = timed(ingest)
        assert ours_n == peer_n == count, (ours_n, peer_n, count)
        rate, peer_rate = count / ours_s, count / peer_s
        print(f"  ingest {label:<16} aif {rate:10,.0f} files/s   {peer_name} {peer_rate:10,.0f}")
        rows.append((f"ingest {label}", "files/s", rate, f"{peer_name}: {peer_rate:,.0f}"))
        rows.append((f"  ratio to {peer_name}", "x", rate / peer_rate, ""))
    return rows


# -- 2. search and 3. lookups --------------------------------------------------


def build_big_catalog(path: Path, datasets: int, per_dataset: int, seed: int = 11) -> list[str]:
    """Fill a catalog's tables directly; return the replica URLs (for lookups)."""
    rng = random.Random(seed)
    vocab = words(rng, 3000)
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf-like: some words are common
    catalog = Catalog(path)
    conn = catalog.conn
    now = time.time()
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA foreign_keys = OFF")  # tables are filled out of order, in bulk
    conn.execute("BEGIN IMMEDIATE")
    ds_rows, tag_rows, version_rows, text_rows = [], [], [], []
    file_rows, replica_rows, urls = [], [], []
    file_id = 0
    for d in range(1, datasets + 1):
        domain = DOMAINS[d % len(DOMAINS)]
        name = f"{domain}/{rng.choice(vocab)}-{rng.choice(vocab)}-{d}"
        description = " ".join(rng.choices(vocab, weights, k=rng.randint(6, 14)))
        fmt = rng.choice(FORMATS)
        site = SITES[d % len(SITES)]
        ds_rows.append((d, name, description, f"user{d % 500}", now))
        tag_rows += [(d, "site", site), (d, "project", rng.choice(vocab))]
        version_rows.append((d, d, 1, f"aif://{domain}/{d}", now, per_dataset, 0, "x" * 64))
        text_rows.append((d, name, description, f"site={site} project=x", fmt))
        for f in range(per_dataset):
            file_id += 1
            url = f"s3://bench-{domain}/ds{d}/part-{f:04d}.{fmt}"
            file_rows.append((file_id, d, f"part-{f:04d}.{fmt}", 1000 + f, f"sha256:{file_id:064x}",
                              fmt, now, None))  # fmt: skip
            replica_rows.append((file_id, "s3", url, 1000 + f, f"sha256:{file_id:064x}", now,
                                 None, now))  # fmt: skip
            if file_id % 97 == 0:
                urls.append(url)
        if len(file_rows) >= 200_000 or d == datasets:
            conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", file_rows)
            conn.executemany(
                "INSERT INTO replicas (file_id, tier, url, size, checksum, mtime, etag, recorded)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                replica_rows,
            )
            file_rows, replica_rows = [], []
    conn.executemany("INSERT INTO datasets VALUES (?, ?, ?, ?, ?)", ds_rows)
    conn.executemany("INSERT INTO tags VALUES (?, ?, ?)", tag_rows)
    conn.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", version_rows)
    conn.executemany("INSERT INTO search_text VALUES (?, ?, ?, ?, ?)", text_rows)
    conn.execute(
        "INSERT INTO search_fts (rowid, name, description, tags, formats)"
        " SELECT dataset_id, name, description, tags, formats FROM search_text"
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("ANALYZE")
    catalog.close()
    return urls


def queries(rng: random.Random, vocab: list[str], n: int) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            out.append((rng.choice(vocab[:50]), {}))  # a common word
        elif kind == 1:
            out.append((f"{rng.choice(vocab[:300])} {rng.choice(vocab[:300])}", {}))
        elif kind == 2:
            out.append((rng.choice(vocab)[:3], {}))  # a prefix
        elif kind == 3:
            out.append((rng.choice(DOMAINS), {"format": rng.choice(FORMATS)}))
        else:
            out.append((rng.choice(vocab[:100]), {"tags": {"site": rng.choice(SITES)}}))
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def linear_scan(records: list[tuple[str, str, str]], query: str) -> list[str]:
    """Intake-style search: every word must be a substring of the record's text."""
    terms = query.lower().split()
    return [name for name, text, _ in records if all(t in text for t in terms)]


def bench_search(work: Path, datasets: int, per_dataset: int, nq: int, nl: int) -> list[tuple]:
    path = work / "big.db"
    print(f"building a catalog of {datasets:,} datasets, {datasets * per_dataset:,} files ...")
    t0 = time.perf_counter()
    os.environ["AIFDATA_USER"] = "admin"
    urls = build_big_catalog(path, datasets, per_dataset)
    print(f"  built in {time.perf_counter() - t0:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
    rng = random.Random(5)
    vocab = words(random.Random(11), 3000)
    qs = queries(rng, vocab, nq)
    rows = []
    ours: dict[str, tuple[float, float]] = {}
    catalog = Catalog(path)
    catalog.grant("bob", "read", "genomics/*")
    for who in ("admin", "bob"):
        os.environ["AIFDATA_USER"] = who
        catalog.search("warmup")
        samples = []
        for q, filters in qs:
            t = time.perf_counter()
            catalog.search(q, **filters)
            samples.append(time.perf_counter() - t)
        p50, p95 = ours[who] = percentiles(samples)
        role = "catalog admin" if who == "admin" else "user with one grant"
        print(f"  search ({role}) p50 {p50 * 1e3:.2f} ms  p95 {p95 * 1e3:.2f} ms")
        rows.append((f"search p50, {role}", "ms", p50 * 1e3, ""))
        rows.append((f"search p95, {role}", "ms", p95 * 1e3, "target < 50"))
    os.environ["AIFDATA_USER"] = "admin"
    records = [
        (r[0], f"{r[0]} {r[1]} {r[2]} {r[3]}".lower(), r[3])
        for r in catalog.conn.execute("SELECT name, description, tags, formats FROM search_text")
    ]
    samples = []
    for q, _ in qs:
        t = time.perf_counter()
        linear_scan(records, q)
        samples.append(time.perf_counter() - t)
    p50, p95 = percentiles(samples)
    print(f"  linear substring scan (Intake) p50 {p50 * 1e3:.2f} ms  p95 {p95 * 1e3:.2f} ms")
    rows.append(("linear scan p50 (Intake's way)", "ms", p50 * 1e3, "peer"))
    rows.append(("linear scan p95 (Intake's way)", "ms", p95 * 1e3, "peer"))
    rows.append(("  search p50 speed-up over the scan", "x", p50 / ours["admin"][0], ""))
    rows.append(("  search p95 speed-up over the scan", "x", p95 / ours["admin"][1], ""))
    rng.shuffle(urls)
    lookups = urls[:nl]
    samples = []
    for url in lookups:
        t = time.perf_counter()
        found = catalog.replica_records([url])
        samples.append(time.perf_counter() - t)
        assert url in found
    p50, p95 = percentiles(samples)
    print(f"  replica lookup p50 {p50 * 1e6:.0f} us  p95 {p95 * 1e6:.0f} us")
    rows.append(("replica lookup p50", "ms", p50 * 1e3, ""))
    rows.append(("replica lookup p95", "ms", p95 * 1e3, "target < 1"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000, help="small files to ingest")
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--files-per-dataset", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--workdir", help="where to build (default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="aifdata-bench-") as tmp:
        work = Path(tmp)
        rows = bench_ingest(work, args.files)
        rows += bench_search(
            work, args.datasets, args.files_per_dataset, args.queries, args.lookups
        )
    print()
    print(f"{'measure':<44} {'value':>12} {'unit':<8} note")
    print("-" * 90)
    for name, unit, value, note in rows:
        print(f"{name:<44} {value:12,.2f} {unit:<8} {note}")
    by_name = {name: value for name, _, value, _ in rows}
    worst = max(by_name["search p95, catalog admin"], by_name["search p95, user with one grant"])
    print()
    print(
        "targets: ingest without hashing >= 20,000 files/s: "
        f"{by_name['ingest without hashing']:,.0f}; search p95 < 50 ms: {worst:.2f}; "
        f"replica lookup p95 < 1 ms: {by_name['replica lookup p95']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

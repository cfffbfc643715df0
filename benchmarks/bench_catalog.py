"""Catalog benchmark: ingest rate, search latency at scale, replica point lookups.

    python benchmarks/bench_catalog.py                  # the issue's sizes
    python benchmarks/bench_catalog.py --files 2000 --datasets 2000   # a quick look
    python benchmarks/bench_catalog.py --backend postgresql [--postgresql DSN]

With ``--backend postgresql`` every catalog is a fresh schema in the database
``--postgresql`` names (default ``$AIFDATA_TEST_POSTGRESQL``; without either, a
throwaway server is started with ``.ci/postgres.py``), and the big catalog is
filled with ``COPY``.

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
import contextlib
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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


# -- where the catalogs are ---------------------------------------------------------


class Backend:
    """Where each catalog of the run is made: a SQLite file, or a PostgreSQL schema."""

    def __init__(self, name: str, work: Path, dsn: str | None = None) -> None:
        self.name, self.work, self.dsn = name, work, dsn
        self.schemas: list[str] = []

    def location(self, label: str) -> Path | str:
        if self.name == "sqlite":
            return self.work / f"{label}.db"
        import psycopg

        schema = f"bench_{label.replace('-', '_')}_{uuid.uuid4().hex[:6]}".lower()
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        self.schemas.append(schema)
        return f"{self.dsn}{'&' if '?' in str(self.dsn) else '?'}options=-csearch_path%3D{schema}"

    def size_mib(self, catalog: Catalog) -> float:
        if self.name == "sqlite":
            return Path(catalog.path).stat().st_size / 2**20
        row = catalog.conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()
        return int(row[0]) / 2**20

    def drop(self) -> None:
        if not self.schemas:
            return
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as admin:
            for schema in self.schemas:
                admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextlib.contextmanager
def postgresql_server(dsn: str | None, work: Path) -> Iterator[str]:
    """``dsn``, else ``$AIFDATA_TEST_POSTGRESQL``, else a throwaway server (.ci/postgres.py)."""
    dsn = dsn or os.environ.get("AIFDATA_TEST_POSTGRESQL")
    if dsn:
        yield dsn
        return
    script = Path(__file__).resolve().parents[1] / ".ci" / "postgres.py"
    root = work / "postgres"
    server = subprocess.Popen([sys.executable, str(script), "serve", str(root)])
    try:
        deadline = time.monotonic() + 90
        while not (root / "ready").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("PostgreSQL did not start (sudo python3 .ci/postgres.py install)")
            time.sleep(0.2)
        yield (root / "ready").read_text().strip()
    finally:
        server.terminate()
        server.wait(60)


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


def bench_ingest(work: Path, count: int, backend: Backend) -> list[tuple[str, str, float, str]]:
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
        catalog = Catalog(backend.location(f"ingest-{hashing}"), config=config)

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


def build_big_catalog(
    path: Path | str, datasets: int, per_dataset: int, seed: int = 11
) -> list[str]:
    """Fill a catalog's tables directly; return the replica URLs (for lookups)."""
    rng = random.Random(seed)
    vocab = words(rng, 3000)
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf-like: some words are common
    catalog = Catalog(path)
    conn = catalog.conn
    now = time.time()
    postgres = catalog.is_postgres
    if postgres:  # the same rows, with COPY; foreign keys hold as the tables fill in order
        insert = _copy_into(conn)
        conn.execute("BEGIN")
    else:
        insert = _insert_into(conn)
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
            if postgres:  # parents first: PostgreSQL checks every key
                insert("datasets", DATASET_COLUMNS, ds_rows)
                insert("versions", VERSION_COLUMNS, version_rows)
                ds_rows, version_rows = [], []
            insert("files", FILE_COLUMNS, file_rows)
            insert("replicas", REPLICA_COLUMNS, replica_rows)
            file_rows, replica_rows = [], []
    if not postgres:
        insert("datasets", DATASET_COLUMNS, ds_rows)
        insert("versions", VERSION_COLUMNS, version_rows)
    insert("tags", ("dataset_id", "key", "value"), tag_rows)
    insert("search_text", ("dataset_id", "name", "description", "tags", "formats"), text_rows)
    conn.execute(SEARCH_INDEX_FILL["postgresql" if postgres else "sqlite"])
    conn.execute("COMMIT")
    if not postgres:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("ANALYZE")
    catalog.close()
    return urls


DATASET_COLUMNS = ("id", "name", "description", "owner", "created")
VERSION_COLUMNS = ("id", "dataset_id", "number", "source", "created", "file_count",
                   "total_bytes", "digest")  # fmt: skip
FILE_COLUMNS = ("id", "version_id", "path", "size", "checksum", "format", "mtime", "etag")
REPLICA_COLUMNS = ("file_id", "tier", "url", "size", "checksum", "mtime", "etag", "recorded")
#: The search index from ``search_text``: FTS5's table, or PostgreSQL's weighted tsvectors
#: (of the same words: runs of letters and digits, lowercased).
SEARCH_INDEX_FILL = {
    "sqlite": "INSERT INTO search_fts (rowid, name, description, tags, formats)"
    " SELECT dataset_id, name, description, tags, formats FROM search_text",
    "postgresql": "INSERT INTO search_document (dataset_id, document) SELECT dataset_id, "
    + " || ".join(
        f"setweight(to_tsvector('simple', regexp_replace(lower({column}), '[^a-z0-9]+', ' ',"
        f" 'g')), '{label}')"
        for column, label in (("name", "A"), ("description", "B"), ("tags", "C"), ("formats", "D"))
    )
    + " FROM search_text",
}


def _insert_into(conn: object) -> Callable[[str, tuple[str, ...], list[tuple]], None]:
    def insert(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        marks = ", ".join("?" * len(columns))
        conn.executemany(  # type: ignore[attr-defined]
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    return insert


def _copy_into(conn: object) -> Callable[[str, tuple[str, ...], list[tuple]], None]:
    def insert(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        conn.copy_rows(table, columns, rows)  # type: ignore[attr-defined]

    return insert


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


def bench_search(
    backend: Backend, datasets: int, per_dataset: int, nq: int, nl: int
) -> list[tuple]:
    path = backend.location("big")
    print(f"building a catalog of {datasets:,} datasets, {datasets * per_dataset:,} files ...")
    t0 = time.perf_counter()
    os.environ["AIFDATA_USER"] = "admin"
    urls = build_big_catalog(path, datasets, per_dataset)
    size = backend.size_mib(Catalog(path))
    print(f"  built in {time.perf_counter() - t0:.1f} s ({size:.0f} MiB)")
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
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgresql", help="a PostgreSQL DSN (default: a throwaway server)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="aifdata-bench-") as tmp:
        work = Path(tmp)
        with contextlib.ExitStack() as stack:
            dsn = None
            if args.backend == "postgresql":
                dsn = stack.enter_context(postgresql_server(args.postgresql, work))
            backend = Backend(args.backend, work, dsn)
            stack.callback(backend.drop)
            rows = bench_ingest(work, args.files, backend)
            rows += bench_search(
                backend, args.datasets, args.files_per_dataset, args.queries, args.lookups
            )
    print()
    print(f"backend: {args.backend}")
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

"""Service benchmark: search and presigned-URL vending through ``aifdata serve``, beside
the library calling the catalog directly, with many concurrent clients.

    python benchmarks/bench_serve.py                          # 16 clients, 200 requests each
    python benchmarks/bench_serve.py --requests 30 --datasets 20   # a quick look

A catalog of ``--datasets`` datasets (one small file each, on S3: SeaweedFS, started
here unless ``AIFDATA_BENCH_S3_ENDPOINT`` names one) is served by a real ``aifdata
serve`` on a loopback port, with each number of worker processes in ``--workers`` (1 and
2: this machine's cores). ``--clients`` threads, each with its own keep-alive ``httpx``
client and a reader's token, then make ``--requests`` requests each:

* **service search, W workers**: ``GET /api/v1/search?q=WORD``;
* **service presign, W workers**: ``POST /api/v1/presign`` of a random file (grant check, routing,
  one SigV4 URL, one audit row);

and the same number of threads call the library in this process:

* **library search**: ``Catalog.search(WORD)`` acting as the reader;
* **library presign**: :func:`aifdata.service.presign_file` in this process: the same
  grant check, routing to the S3 copy and one SigV4 URL, without HTTP.

Each case runs ``--repeat`` times and the run with the most requests per second is kept
(the others were slowed by whatever else the machine ran). Printed: requests/s, p50 and
p95 latency per case, the service/library ratios, and the target (issue 16): p95 < 50 ms
for both at 16 clients. The client threads share the machine with the server: on a
small machine they take part of its CPU. Audit rows of concurrent requests are written
together (group commit); with several workers, the processes queue on the catalog's lock
file for SQLite's one writer.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

import aifdata
from aifdata import Catalog, _seaweedfs
from aifdata.catalog import Principal, acting_as, create_token

TARGET_P95_MS = 50.0
WORDS = ("reads", "climate", "imaging", "physics", "genome", "ocean", "lidar", "spectra")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200, help="per client and case")
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is kept")
    parser.add_argument("--workers", default="1,2", help="server processes to try, e.g. 1,2")
    args = parser.parse_args()
    endpoint = os.environ.get("AIFDATA_BENCH_S3_ENDPOINT")
    server = _seaweedfs.SeaweedFS.existing(endpoint) if endpoint else _seaweedfs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="aifdata-bench-serve-") as root:
            rows = run(server, Path(root), args)
    finally:
        server.stop()
    print()
    print(table(rows))
    report(rows, args.clients)


# -- the site -----------------------------------------------------------------------------


def make_site(server: _seaweedfs.SeaweedFS, root: Path, datasets: int) -> tuple[Path, Path]:
    """A config and a catalog of ``datasets`` datasets readable by user ``reader``."""
    bucket = f"bench-serve-{uuid.uuid4().hex[:8]}"
    server.make_bucket(bucket)
    options = "\n".join(f'{k} = "{v}"' for k, v in server.storage_options.items())
    config_path = root / "config.toml"
    config_path.write_text(f"""
[mounts.data.s3]
url = "s3://{bucket}/data"
{options}

[service]
rate_per_token = 1000000
burst = 1000000
max_in_flight_per_token = 1000
""")
    catalog_path = root / "catalog.db"
    catalog = Catalog(catalog_path, config=aifdata.load_config(config_path))
    fs = catalog.filesystem()
    rng = random.Random(16)
    with acting_as(Principal("steward")):
        for i in range(datasets):
            fs.pipe(f"data/set{i:05d}/part.bin", rng.randbytes(4096))
            words = " ".join(rng.sample(WORDS, 3))
            catalog.ingest(f"aif://data/set{i:05d}", f"bench/set{i:05d}",
                           description=f"dataset {i}: {words}")  # fmt: skip
        catalog.grant("reader", "read", "bench/*")
    catalog.close()
    return config_path, catalog_path


def start_server(
    config: Path, catalog: Path, root: Path, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    port = _seaweedfs.free_ports(1)[0]
    env = dict(os.environ, AIFDATA_CONFIG=str(config), AIFDATA_HOME=str(root))
    process = subprocess.Popen(
        [sys.executable, "-m", "aifdata", "serve", "--catalog", str(catalog), "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/api/v1/whoami", timeout=1.0)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("aifdata serve did not start")


# -- measuring ----------------------------------------------------------------------------


def measure(name: str, clients: int, requests: int, make: Callable[[], Callable[[int], None]]
            ) -> dict[str, float | str]:  # fmt: skip
    """``clients`` threads, each calling its own ``make()`` function ``requests`` times
    (after two warm-up calls): throughput and latency percentiles."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        call = make()
        call(-1)
        call(-2)
        ready.wait()
        mine = []
        for i in range(requests):
            start = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100)
    row: dict[str, float | str] = {
        "case": name, "requests": len(latencies), "per_s": len(latencies) / wall,
        "p50": cuts[49] * 1000, "p95": cuts[94] * 1000,
    }  # fmt: skip
    print(f"  {name}: {row['per_s']:.0f} requests/s, p95 {row['p95']:.1f} ms", flush=True)
    return row


def run(server: _seaweedfs.SeaweedFS, root: Path, args: argparse.Namespace) -> list[dict]:
    print(f"making {args.datasets} datasets ...", flush=True)
    config, catalog_path = make_site(server, root, args.datasets)
    catalog = Catalog(catalog_path, config=aifdata.load_config(config))
    with acting_as(Principal("steward")):
        token = create_token(catalog, "user:reader", label="bench").text
    files = [f"data/set{i:05d}/part.bin" for i in range(args.datasets)]
    headers = {"Authorization": f"Bearer {token}"}

    def service_search(base: str) -> Callable[[], Callable[[int], None]]:
        def make() -> Callable[[int], None]:
            client, rng = httpx.Client(base_url=base, headers=headers), random.Random()

            def call(i: int) -> None:
                r = client.get("/api/v1/search", params={"q": rng.choice(WORDS)})
                assert r.status_code == 200, r.text

            return call

        return make

    def service_presign(base: str) -> Callable[[], Callable[[int], None]]:
        def make() -> Callable[[int], None]:
            client, rng = httpx.Client(base_url=base, headers=headers), random.Random()

            def call(i: int) -> None:
                r = client.post("/api/v1/presign", json={"path": f"aif://{rng.choice(files)}"})
                assert r.status_code == 200, r.text

            return call

        return make

    def library_search() -> Callable[[int], None]:
        rng = random.Random()

        def call(i: int) -> None:
            with acting_as(Principal("reader")):
                assert catalog.search(rng.choice(WORDS)) is not None

        return call

    def library_presign() -> Callable[[int], None]:
        from aifdata.service import presign_file

        fs, rng = catalog.filesystem(), random.Random()

        def call(i: int) -> None:
            with acting_as(Principal("reader")):
                presign_file(catalog, fs, rng.choice(files), 300)

        return call

    def best(name: str, make: Callable[[], Callable[[int], None]]) -> dict:
        runs = [measure(name, args.clients, args.requests, make) for _ in range(args.repeat)]
        return max(runs, key=lambda r: float(r["per_s"]))

    print(f"{args.clients} clients, {args.requests} requests each:", flush=True)
    rows = []
    try:
        for workers in [int(w) for w in args.workers.split(",")]:
            process, base = start_server(config, catalog_path, root, workers)
            try:
                for what, make in [("search", service_search), ("presign", service_presign)]:
                    plural = "s" if workers > 1 else ""
                    rows.append(best(f"service {what}, {workers} worker{plural}", make(base)))
            finally:
                process.terminate()
                process.wait(30)
        rows.append(best("library search", library_search))
        rows.append(best("library presign", library_presign))
    finally:
        catalog.close()
    return rows


# -- reporting ----------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    lines = [f"{'case':<28}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}"]
    for r in rows:
        lines.append(f"{r['case']:<28}{r['requests']:>10}{r['per_s']:>10.0f}"
                     f"{r['p50']:>10.1f}{r['p95']:>10.1f}")  # fmt: skip
    lines.append("")
    for what in ("search", "presign"):
        lib = next(r for r in rows if r["case"] == f"library {what}")
        for s in service_rows(rows, what):
            lines.append(
                f"ratio {s['case']} / library: throughput {s['per_s'] / lib['per_s']:.2f}×,"
                f" p95 {s['p95'] / lib['p95']:.2f}×"
            )
    return "\n".join(lines)


def service_rows(rows: list[dict], what: str) -> list[dict]:
    return [r for r in rows if str(r["case"]).startswith(f"service {what},")]


def report(rows: list[dict], clients: int) -> None:
    print(f"\ntargets: p95 < {TARGET_P95_MS:.0f} ms at {clients} clients (issue 16)")
    for what in ("search", "presign"):
        for r in service_rows(rows, what):
            p95 = float(r["p95"])
            verdict = "met" if p95 < TARGET_P95_MS else "MISSED"
            print(f"  {r['case']} p95 {p95:.1f} ms: {verdict}")


if __name__ == "__main__":
    main()

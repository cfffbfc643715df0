"""Service benchmark: ``aifdata serve`` under concurrent clients, against the library.

    python benchmarks/bench_serve.py                       # the issue's sizes
    python benchmarks/bench_serve.py --datasets 2000 --requests 400   # a quick look

A catalog of ``--datasets`` datasets (built as ``bench_catalog.py`` builds its own) is
served by ``aifdata serve`` (a real uvicorn process on a loopback port). ``--clients``
threads, each with its own keep-alive HTTP connection and token, send ``--requests``
seeded searches in all (``GET /api/v1/search``), as a catalog admin and as a user with one
grant. The peer is the library itself: the same searches from as many threads calling
``Catalog.search`` in one process, each acting as the same principal. Printed: requests
per second, p50 and p95 latency.

Target (issue 16): p95 under 50 ms at 16 clients, for search and for presigned-URL vending
(vending joins this table with ``/api/v1/presign``).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from bench_catalog import build_big_catalog, percentiles, queries, words

from aifdata import Catalog
from aifdata._seaweedfs import free_ports
from aifdata.catalog import Principal, acting_as, create_token


def run_clients(
    clients: int, requests: int, call: Callable[[int, int], None]
) -> tuple[float, list[float]]:
    """``requests`` calls ``call(client, i)`` shared out over ``clients`` threads; return
    the wall time and each call's latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        mine = []
        for i in range(number, requests, clients):
            t = time.perf_counter()
            call(number, i)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return time.perf_counter() - start, latencies


def start_server(catalog: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    (port,) = free_ports(1)
    config = work / "serve.toml"
    config.write_text("[service]\nrate_per_token = 1000000\nburst = 1000000\n")
    env = {**os.environ, "AIFDATA_CONFIG": str(config), "AIFDATA_USER": "server"}
    argv = [sys.executable, "-m", "aifdata", "serve", "--port", str(port),
            "--catalog", str(catalog)]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/v1/whoami", timeout=2)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("aifdata serve did not start")


def bench(
    catalog: Catalog, url: str, tokens: dict[str, str], qs: Sequence[tuple[str, dict]],
    clients: int, requests: int,
) -> list[tuple[str, float, float, float]]:  # fmt: skip
    rows = []
    for user, role in (("admin", "catalog admin"), ("bob", "user with one grant")):
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        sessions = [httpx.Client(base_url=url, headers=headers, timeout=60) for _ in range(clients)]

        def over_http(client: int, i: int, sessions: list[httpx.Client] = sessions) -> None:
            q, filters = qs[i % len(qs)]
            params = {"q": q, "format": filters.get("format", "")}
            sessions[client].get("/api/v1/search", params=params).raise_for_status()

        def direct(client: int, i: int, user: str = user) -> None:
            q, filters = qs[i % len(qs)]
            with acting_as(Principal(user)):
                catalog.search(q, format=filters.get("format"))

        for case, call in ((f"serve search, {role}", over_http),
                           (f"library search, {role}", direct)):  # fmt: skip
            call(0, 0)  # warm up
            wall, latencies = run_clients(clients, requests, call)
            p50, p95 = percentiles(latencies)
            rows.append((case, requests / wall, p50 * 1e3, p95 * 1e3))
            print(f"  {case:<40} {requests / wall:8.0f} req/s  p50 {p50 * 1e3:6.2f} ms"
                  f"  p95 {p95 * 1e3:6.2f} ms", flush=True)  # fmt: skip
        for session in sessions:
            session.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--files-per-dataset", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4000, help="per case, over all clients")
    parser.add_argument("--workdir", help="where to build (default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="aifdata-bench-") as tmp:
        work = Path(tmp)
        path = work / "served.db"
        print(f"building a catalog of {args.datasets:,} datasets ...", flush=True)
        with acting_as(Principal("admin")):
            build_big_catalog(path, args.datasets, args.files_per_dataset)
            catalog = Catalog(path)
            catalog.grant("bob", "read", "genomics/*")
            tokens = {u: create_token(catalog, u).text for u in ("admin", "bob")}
        qs = queries(random.Random(5), words(random.Random(11), 3000), 200)
        process, url = start_server(path, work)
        try:
            print(f"{args.clients} clients, {args.requests} requests per case:")
            rows = bench(catalog, url, tokens, qs, args.clients, args.requests)
        finally:
            process.terminate()
            process.wait(30)
            catalog.close()
    print()
    print(f"{'case':<40} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8}")
    print("-" * 68)
    for case, rps, p50, p95 in rows:
        print(f"{case:<40} {rps:9.0f} {p50:8.2f} {p95:8.2f}")
    worst = max(p95 for case, _, _, p95 in rows if case.startswith("serve"))
    print()
    print(f"targets: serve search p95 < 50 ms at {args.clients} clients: {worst:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

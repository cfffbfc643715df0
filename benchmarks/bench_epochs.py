"""Two epochs through a mount that hydrates on read, against the same without it, in one run.

    python benchmarks/bench_epochs.py [--files 2000] [--file-kib 1024] [--large-mib 1024] [--quick]

Starts SeaweedFS on loopback (or uses ``$AIFDATA_BENCH_S3_ENDPOINT``) behind a
counting HTTP proxy, writes seeded FASTQ files (``--files`` of ``--file-kib``
and one of ``--large-mib``), ingests them as a dataset, and reads them through
mounts with an S3 write tier and a PFS tier (local directories). For a PyTorch
DataLoader with 2 workers over FASTQ partitions, and for a plain whole-file
read loop (``cat_file``), it measures:

* epoch 1 with ``hydrate = "on-read"`` vs epoch 1 with ``hydrate = "off"``
  (another mount, a fresh PFS directory): target, hydration costs at most 20%;
* epoch 2 through ``aif://`` (served by the hydrated copies) vs the same files
  read straight from the PFS directory (``open().read()`` for the loop, a
  PFS-only mount for the DataLoader), each the best of ``--repeat`` later
  epochs run alternately (five times as many for the loop, whose epochs take
  about a second): target, at least 0.9x;
* S3 GETs per file over both epochs, counted at the proxy: target, every file's
  bytes fetched once (one GET, or one set of ranged GETs for a large file).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import aifdata
from aifdata import _seaweedfs

BUCKET = "aifdata-bench-epochs"
PREFIX = "epochs"
DATASET = "bench/epochs"
#: The DataLoader pass and the read loop each get their own pair of mounts (fresh PFS directories).
MODES = ("loader", "loop")
#: The loop's later epochs are run this many times more than the DataLoader's (they are short).
LOOP_REPEAT = 5


# -- a counting proxy in front of the S3 server ------------------------------------------


class CountingProxy:
    """Forwards every request to ``upstream`` and counts object GETs: (key -> [(range, bytes)])."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.gets: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def snapshot(self) -> dict[str, list[tuple[str, int]]]:
        with self.lock:
            return {k: list(v) for k, v in self.gets.items()}

    def count(self, path: str, rng: str, nbytes: int) -> None:
        bucket, _, key = path.split("?", 1)[0].lstrip("/").partition("/")
        if bucket != BUCKET or not key.startswith(f"{PREFIX}/"):  # listings: no object's bytes
            return
        with self.lock:
            self.gets[key.removeprefix(f"{PREFIX}/")].append((rng, nbytes))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                if not hasattr(self, "upstream_conn"):
                    up = proxy.upstream
                    self.upstream_conn = http.client.HTTPConnection(up.hostname, up.port)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = self.upstream_conn
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body)
                answer = conn.getresponse()
                head = self.command == "HEAD"  # its Content-Length is the object's size
                length = answer.getheader("Content-Length")
                streamed = length is not None and not head
                data = answer.read() if head or not streamed else b""
                self.send_response_only(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection") and (
                        head or streamed or name.lower() != "content-length"
                    ):
                        self.send_header(name, value)
                if not head and not streamed:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                sent = len(data)
                if streamed:  # pass big answers on as they come (a 1 GiB GET is not held)
                    while chunk := answer.read(2**20):
                        self.wfile.write(chunk)
                        sent += len(chunk)
                else:
                    self.wfile.write(data)
                if self.command == "GET" and answer.status in (200, 206):
                    proxy.count(self.path, self.headers.get("Range", ""), sent)

            def _serve(self) -> None:
                try:
                    self._forward()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: fine
                    self.close_connection = True
                    if hasattr(self, "upstream_conn"):  # its answer was left half read
                        self.upstream_conn.close()
                        del self.upstream_conn

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _serve

        return Handler


# -- data -------------------------------------------------------------------------------


def fastq_pool(seed: int = 13, count: int = 4000) -> list[bytes]:
    rng = random.Random(seed)
    pool = []
    for i in range(count):
        n = rng.randint(100, 150)
        sequence = "".join(rng.choices("ACGT", k=n))
        quality = "".join(chr(rng.randint(35, 74)) for _ in range(n))
        if rng.random() < 0.5:
            quality = "@" + quality[1:]
        pool.append(f"@read{i}\n{sequence}\n+\n{quality}\n".encode())
    return pool


def fastq_file(pool: list[bytes], size: int, seed: int) -> bytes:
    """Whole records of ``pool`` in a seeded order, about ``size`` bytes."""
    rng = random.Random(seed)
    out, total = [], 0
    while total < size:
        record = pool[rng.randrange(len(pool))]
        out.append(record)
        total += len(record)
    return b"".join(out)


def write_data(server: _seaweedfs.SeaweedFS, args: argparse.Namespace) -> dict[str, int]:
    """Upload the files straight to the server (not through the proxy); name -> size."""
    from boto3.s3.transfer import TransferConfig

    pool = fastq_pool()
    client = server.client(max_pool_connections=16)
    server.make_bucket(BUCKET)

    def put(i: int) -> tuple[str, int]:
        data = fastq_file(pool, args.file_kib * 1024, seed=i)
        name = f"small/{i:05d}.fastq"
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}", Body=data)
        return name, len(data)

    with ThreadPoolExecutor(8) as workers:
        sizes = dict(workers.map(put, range(args.files)))
    large = fastq_file(pool, args.large_mib * 2**20, seed=-1)
    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    client.upload_fileobj(io.BytesIO(large), BUCKET, f"{PREFIX}/large.fastq", Config=config)
    sizes["large.fastq"] = len(large)
    return sizes


# -- mounts -----------------------------------------------------------------------------


def write_config(home: Path, proxy: CountingProxy, server: _seaweedfs.SeaweedFS) -> Path:
    """Per mode, a mount that hydrates, one that does not, and a PFS-only view of the first."""
    options = dict(server.storage_options, endpoint_url=proxy.endpoint_url)
    s3 = [f'url = "s3://{BUCKET}/{PREFIX}"'] + [f'{k} = "{v}"' for k, v in options.items()]
    lines = []
    for mode in MODES:
        for name, hydrate in ((f"hot-{mode}", "on-read"), (f"cold-{mode}", "off")):
            root = home / "pfs" / name
            root.mkdir(parents=True)
            lines += [f"[mounts.{name}]", f'hydrate = "{hydrate}"', f"[mounts.{name}.s3]", *s3]
            lines += [f"[mounts.{name}.pfs]", f'path = "{root}"', ""]
        lines += [f"[mounts.direct-{mode}.pfs]", f'path = "{home / "pfs" / f"hot-{mode}"}"', ""]
    path = home / "config.toml"
    path.write_text("\n".join(lines))
    return path


# -- the passes -------------------------------------------------------------------------


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def loop_pass(mount: str, names: list[str]) -> Callable[[], int]:
    def run() -> int:
        fs = aifdata.filesystem()
        return sum(len(fs.cat_file(f"{mount}/{name}")) for name in names)

    return run


def plain_pass(root: Path, names: list[str]) -> Callable[[], int]:
    def run() -> int:
        total = 0
        for name in names:
            with open(root / name, "rb") as f:
                total += len(f.read())
        return total

    return run


def plan(mount: str, names: list[str], sizes: dict[str, int], part: int) -> list:  # type: ignore[type-arg]
    from aifdata.formats import RangeSource, get

    fastq = get("fastq")
    parts = []
    for name in names:
        n = max(1, sizes[name] // part)
        parts += fastq.plan(RangeSource(f"aif://{mount}/{name}"), n=n)
    return parts


def record_length(record) -> int:  # type: ignore[no-untyped-def]
    return len(record.sequence)


def loader_pass(parts: list | Callable[[], list]) -> Callable[[], int]:  # type: ignore[type-arg]
    """Records read by a DataLoader with 2 workers (planning first, when ``parts`` is a plan)."""

    def run() -> int:
        from torch.utils.data import DataLoader

        from aifdata.torch import PartitionDataset

        chosen = parts() if callable(parts) else parts
        loader = DataLoader(
            PartitionDataset(chosen, transform=record_length), num_workers=2, batch_size=1024
        )
        return sum(int(batch.shape[0]) for batch in loader)

    return run


# -- S3 requests ------------------------------------------------------------------------


def get_sets(
    before: dict[str, list[tuple[str, int]]],
    after: dict[str, list[tuple[str, int]]],
    sizes: dict[str, int],
) -> tuple[float, int, float]:
    """(GETs per file, files whose bytes came other than once, S3 bytes / file bytes)."""
    gets, wrong, fetched = 0, 0, 0
    for name, size in sizes.items():
        new = after.get(name, [])[len(before.get(name, [])) :]
        got = sum(n for _, n in new)
        gets += len(new)
        fetched += got
        wrong += got != size
    return gets / len(sizes), wrong, fetched / sum(sizes.values())


# -- the run ----------------------------------------------------------------------------


def run_mode(
    mode: str,
    proxy: CountingProxy,
    home: Path,
    sizes: dict[str, int],
    part: int,
    repeat: int = 3,
) -> list[tuple[str, float, int]]:
    names = sorted(sizes)
    hot, cold = f"hot-{mode}", f"cold-{mode}"
    pfs = home / "pfs" / hot
    if mode == "loop":
        cold_run, hot_run, again = (loop_pass(m, names) for m in (cold, hot, hot))
        straight, straight_label = plain_pass(pfs, names), "PFS open().read()"
        prepare: Callable[[], object] = lambda: None  # noqa: E731
    else:
        cold_run = loader_pass(lambda: plan(cold, names, sizes, part))
        hot_parts: list = []  # type: ignore[type-arg]

        def planned_hot() -> list:  # type: ignore[type-arg]
            hot_parts[:] = plan(hot, names, sizes, part)
            return hot_parts

        hot_run, again = loader_pass(planned_hot), loader_pass(hot_parts)
        direct_parts: list = []  # type: ignore[type-arg]  # planned before its epochs

        def planned_direct() -> list:  # type: ignore[type-arg]
            direct_parts[:] = direct_parts or plan(f"direct-{mode}", names, sizes, part)
            return direct_parts

        straight, prepare = loader_pass(planned_direct), planned_direct
        straight_label = "PFS-only mount"
    rows = []
    cold_s, n_cold = timed(cold_run)
    rows.append((f"{mode}: epoch 1, hydrate off", cold_s, n_cold))
    before = proxy.snapshot()
    hot_s, n_hot = timed(hot_run)
    rows.append((f"{mode}: epoch 1, hydrate on-read", hot_s, n_hot))
    os.sync()  # the copies epoch 1 wrote are on disk: no write-back slows either epoch 2
    again_s, n_again = timed(again)
    gets = get_sets(before, proxy.snapshot(), sizes)
    if all((pfs / name).is_file() for name in names):
        prepare()  # planning is no part of an epoch
        straight_s, n_straight = timed(straight)
        # later epochs, alternating: the best of each (an epoch of the loop takes about a
        # second, most of it the 1 GiB file, whose read time varies by 10% on a shared machine)
        for _ in range(repeat * (LOOP_REPEAT if mode == "loop" else 1) - 1):
            again_s = min(again_s, timed(again)[0])
            straight_s = min(straight_s, timed(straight)[0])
    else:  # nothing to read straight from the PFS: no copy was left there
        print(f"  ({mode}: epoch 1 left no copy of every file on the PFS: no straight read)")
        straight_s, n_straight = float("nan"), n_again
    rows.append((f"{mode}: epoch 2 through aif://", again_s, n_again))
    rows.append((f"{mode}: epoch 2, {straight_label}", straight_s, n_straight))
    assert 0 < n_cold == n_hot == n_again == n_straight, (mode, n_cold, n_hot, n_again, n_straight)
    return [*rows, (f"{mode}: GETs", *gets)]  # type: ignore[list-item]


def report(mode: str, rows: list, total_bytes: int) -> list[tuple[str, bool, str]]:  # type: ignore[type-arg]
    (_, cold, _), (_, hot, _), (_, again, _), (_, straight, _), (_, per_file, wrong, ratio) = rows
    for label, seconds, _ in rows[:4]:
        print(f"  {label:<44} {seconds:8.2f} s  {total_bytes / 1e6 / seconds:9.1f} MB/s")
    print(f"  {mode + ': S3 GETs per file, both epochs':<44} {per_file:8.2f}    "
          f"S3 bytes / file bytes {ratio:.2f}, files fetched other than once: {wrong}")  # fmt: skip
    return [
        (f"{mode}: hydration costs <= 20% on epoch 1", hot <= 1.2 * cold,
         f"{hot / cold:.2f}x the time without"),
        (f"{mode}: epoch 2 >= 0.9x the straight PFS read", straight / again >= 0.9,
         f"{straight / again:.2f}x" if straight == straight else "no copies on the PFS"),
        (f"{mode}: each file's bytes from S3 once", wrong == 0,
         f"{per_file:.2f} GETs per file, {ratio:.2f}x the bytes"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="small files (default 2000)")
    parser.add_argument("--file-kib", type=int, default=1024, help="size of each (default 1024)")
    parser.add_argument("--large-mib", type=int, default=1024, help="the large file (1024)")
    parser.add_argument("--part-mib", type=int, default=64, help="partition size of the large one")
    parser.add_argument("--only", choices=MODES, action="append", default=None)
    parser.add_argument(
        "--repeat", type=int, default=3, help="epoch-2 and straight reads, best of (default 3)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.file_kib, args.large_mib, args.part_mib = 20, 64, 4, 1
    endpoint = os.environ.get("AIFDATA_BENCH_S3_ENDPOINT")
    server = _seaweedfs.SeaweedFS.existing(endpoint) if endpoint else _seaweedfs.start()
    proxy = CountingProxy(server.endpoint_url)
    home = Path(tempfile.mkdtemp(prefix="aifdata-bench-epochs-"))
    try:
        return run(args, server, proxy, home)
    finally:
        proxy.stop()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def run(
    args: argparse.Namespace, server: _seaweedfs.SeaweedFS, proxy: CountingProxy, home: Path
) -> int:
    os.environ["AIFDATA_HOME"] = str(home)
    os.environ["AIFDATA_CONFIG"] = str(write_config(home, proxy, server))
    print(f"writing {args.files} files of {args.file_kib} KiB and one of {args.large_mib} MiB ...")
    sizes = write_data(server, args)
    total = sum(sizes.values())
    catalog = aifdata.Catalog()
    for mode in args.only or MODES:
        catalog.ingest(f"aif://hot-{mode}", f"{DATASET}-{mode}", workers=8)
    targets = []
    print(f"\n{len(sizes)} files, {total / 2**20:,.0f} MiB in all:")
    for mode in args.only or MODES:
        if mode == "loader" and not has_torch():
            print("  (torch is not installed: no DataLoader numbers)")
            continue
        rows = run_mode(mode, proxy, home, sizes, args.part_mib * 2**20, max(1, args.repeat))
        targets += report(mode, rows, total)
    print("\ntargets:")
    for label, met, detail in targets:
        print(f"  {'MET   ' if met else 'MISSED'}  {label}: {detail}")
    return 0


def has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())

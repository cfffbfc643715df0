"""Scale-out benchmark: the same FASTQ job on one process, Dask, Slurm, Ray and Lithops.

    python benchmarks/bench_scale.py [--fastq-mib 1024] [--partitions 64] [--repeat 2]

Starts SeaweedFS on loopback (or uses ``$AIFDATA_BENCH_S3_ENDPOINT``), writes a
seeded plain FASTQ to S3, plans ``--partitions`` partitions through ``aif://``,
then runs one job on each engine in one run: read every partition where the
engine runs it and count records and bases. The engines, each with two workers
of one core (this machine has two):

* one process, the baseline: ``[job(p) for p in parts]``;
* Dask ``LocalCluster`` (2 worker processes);
* dask-jobqueue ``SLURMCluster`` (2 single-core jobs started by ``sbatch``): on
  ``$SLURM_CONF``'s cluster, else a one-node cluster started with
  ``.ci/slurm.py serve`` (root, Slurm installed), else skipped with the reason;
* Ray Data (``ray.init(num_cpus=2)``), through ``aifdata.ray.read``: as Ray sets it up, then
  with ``DataContext.op_resource_reservation_enabled = False`` (on 2 CPUs its reservation
  holds back part of them); and, for comparison, Ray's own tasks running the job as Dask
  does (no Ray Data);
* Lithops' localhost backend, through ``aifdata.lithops.map``: one partition per call,
  then ``PER_CALL`` (8) consecutive partitions per call.

Workers are started before the job is timed; their start-up is reported on its
own. Each job time is the best of ``--repeat`` runs. Every engine's counts must
equal the baseline's. Targets (issue 14): SLURMCluster within 15% of
LocalCluster once workers are up; Ray and Lithops within 25%.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aifdata
from aifdata import _seaweedfs

BUCKET = "aifdata-bench-scale"
URL = "aif://bench/reads/run.fastq"
SLURM_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm.py"
#: Partitions per Lithops call in the second Lithops run (its localhost backend starts a
#: Python process per call).
PER_CALL = 8


def fastq_payload(size: int, seed: int = 14) -> bytes:
    """About ``size`` bytes of seeded FASTQ (150 bp reads)."""
    import random

    rng = random.Random(seed)
    pool = []
    for _ in range(1000):
        sequence = "".join(rng.choices("ACGT", k=150))
        quality = "".join(chr(rng.randint(35, 74)) for _ in range(150))
        pool.append(f"\n{sequence}\n+\n{quality}\n")
    chunks, total, count = [], 0, 0
    while total < size:
        block = "".join(f"@read{count + i}{pool[(count + i) % 1000]}" for i in range(10_000))
        chunks.append(block.encode())
        total += len(chunks[-1])
        count += 10_000
    return b"".join(chunks)


def count_bases(records: Any) -> tuple[int, int]:
    """The job's work on one partition's records: records and bases."""
    return len(records), sum(len(r.sequence) for r in records)


def job(partition: aifdata.Partition) -> tuple[int, int]:
    """The job on one partition, read where it runs."""
    return count_bases(partition.read())


def total(counts: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(n for n, _ in counts), sum(b for _, b in counts)


def best_of(repeat: int, run: Callable[[], tuple[int, int]]) -> tuple[float, tuple[int, int]]:
    times, result = [], (0, 0)
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return min(times), result


class Row:
    def __init__(self, engine: str, startup: float | None, seconds: float | None, note: str = ""):
        self.engine, self.startup, self.seconds, self.note = engine, startup, seconds, note


# -- the engines -----------------------------------------------------------------


@contextlib.contextmanager
def dask_local() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        yield client


@contextlib.contextmanager
def slurm_conf(workdir: Path) -> Iterator[str]:
    """``$SLURM_CONF``, else a one-node cluster started here; raises RuntimeError(why) if none."""
    if os.environ.get("SLURM_CONF"):
        yield os.environ["SLURM_CONF"]
        return
    if shutil.which("slurmctld") is None or os.geteuid() != 0:
        raise RuntimeError("no $SLURM_CONF, and no root or Slurm to start one (.ci/slurm.py)")
    root = workdir / "slurm"
    server = subprocess.Popen(
        [sys.executable, str(SLURM_SCRIPT), "serve", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not (root / "ready").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Slurm did not start (logs in {root / 'log'})")
            time.sleep(0.2)
        os.environ["SLURM_CONF"] = str(root / "slurm.conf")
        yield os.environ["SLURM_CONF"]
    finally:
        os.environ.pop("SLURM_CONF", None)
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.contextmanager
def dask_slurm(workdir: Path) -> Iterator[Any]:
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    with slurm_conf(workdir):
        cluster = SLURMCluster(
            cores=1,
            processes=1,
            memory="4GB",
            walltime="01:00:00",
            python=sys.executable,
            log_directory=str(workdir / "dask-logs"),
            scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
        )
        try:
            cluster.scale(jobs=2)
            with Client(cluster) as client:
                client.wait_for_workers(2, timeout=300)
                yield client
        finally:
            cluster.close()


def on_dask(client: Any, parts: list[aifdata.Partition]) -> tuple[int, int]:
    return total(client.gather(client.map(job, parts, pure=False)))


@contextlib.contextmanager
def ray_cluster() -> Iterator[None]:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its progress lines, every 10 s
    try:
        yield
    finally:
        ray.shutdown()


def _ray_batch(table: Any) -> dict[str, list[int]]:
    import pyarrow.compute as pc

    lengths = pc.utf8_length(table.column("sequence"))
    return {"records": [table.num_rows], "bases": [int(pc.sum(lengths).as_py() or 0)]}


def on_ray(parts: list[aifdata.Partition], reserve: bool = True) -> tuple[int, int]:
    """Ray Data: a read task per partition, fused with the batch that counts. ``reserve``:
    Ray Data's resource reservation (on by default), which holds back part of a small
    cluster's CPUs for each operator."""
    import ray.data

    import aifdata.ray

    context = ray.data.DataContext.get_current()
    context.op_resource_reservation_enabled = reserve
    dataset = aifdata.ray.read(parts, override_num_blocks=len(parts))
    counted = dataset.map_batches(_ray_batch, batch_format="pyarrow", batch_size=None)
    rows = counted.take_all()
    return sum(r["records"] for r in rows), sum(r["bases"] for r in rows)


def on_ray_tasks(parts: list[aifdata.Partition]) -> tuple[int, int]:
    """Ray's tasks without Ray Data: the job as Dask runs it (what Ray Data's layer costs)."""
    import ray

    job_task = ray.remote(job)
    return total(ray.get([job_task.remote(p) for p in parts]))


@contextlib.contextmanager
def lithops_executor(workdir: Path) -> Iterator[Any]:
    import lithops

    executor = lithops.FunctionExecutor(
        config={
            "lithops": {
                "backend": "localhost",
                "storage": "localhost",
                "data_cleaner": False,
                "monitoring_interval": 0.2,  # Lithops looks for finished calls every 2 s
            },
            "localhost": {"runtime": sys.executable, "worker_processes": 2},
        },
        log_level=None,
    )
    yield executor


def on_lithops(executor: Any, parts: list[aifdata.Partition], per_call: int = 1) -> tuple[int, int]:
    import aifdata.lithops

    counts = aifdata.lithops.map(count_bases, parts, executor=executor, per_call=per_call)
    return total(counts)


# -- the run ---------------------------------------------------------------------------


def measure(
    name: str,
    start: Callable[[], contextlib.AbstractContextManager[Any]],
    run: Callable[[Any, list[aifdata.Partition]], tuple[int, int]],
    parts: list[aifdata.Partition],
    expected: tuple[int, int],
    repeat: int,
    rows: list[Row],
) -> None:
    """Start an engine (its workers, then a warm-up job on two partitions that loads the
    modules there: the start-up), then time the job on every partition."""
    print(f"{name} ...", flush=True)
    t0 = time.perf_counter()
    try:
        with start() as engine:
            run(engine, parts[:2])
            startup = time.perf_counter() - t0
            seconds, got = best_of(repeat, lambda: run(engine, parts))
    except (ImportError, RuntimeError) as why:
        rows.append(Row(name, None, None, f"skipped: {why}"))
        return
    if got != expected:
        raise SystemExit(f"{name} counted {got}, the baseline {expected}: not the same job")
    rows.append(Row(name, startup, seconds))


def report(rows: list[Row], size: int, parts: int) -> None:
    by = {r.engine: r for r in rows}
    base = by["one process"].seconds
    dask = by["Dask LocalCluster"].seconds
    print(f"\n{size / 2**20:.0f} MiB of FASTQ, {parts} partitions, the job on each engine")
    print(f"{'engine':<28} {'start-up s':>10} {'job s':>8} {'MB/s':>8} {'vs 1 proc':>10} "
          f"{'vs Local':>9}")  # fmt: skip
    for r in rows:
        if r.seconds is None:
            print(f"{r.engine:<28} {r.note}")
            continue
        startup = "" if r.startup is None else f"{r.startup:.1f}"
        vs_base = f"{base / r.seconds:.2f}x" if base else ""
        vs_dask = f"{r.seconds / dask:.2f}" if dask else ""
        print(f"{r.engine:<28} {startup:>10} {r.seconds:>8.2f} {size / 1e6 / r.seconds:>8.1f} "
              f"{vs_base:>10} {vs_dask:>9}")  # fmt: skip
    print("\n'vs 1 proc': speed-up over one process; 'vs Local': job time / LocalCluster's")
    targets = [("SLURMCluster (2 jobs)", 1.15), ("Ray Data (2 CPUs)", 1.25)]
    targets.append(("Ray Data, no reservation", 1.25))
    targets += [("Lithops localhost", 1.25), (f"Lithops, {PER_CALL} per call", 1.25)]
    lines = []
    for engine, limit in targets:
        seconds = by[engine].seconds if engine in by else None
        if seconds is None or not dask:
            lines.append(f"{engine} <= {limit:.2f}x LocalCluster: not measured")
            continue
        ratio = seconds / dask
        verdict = "MET" if ratio <= limit else "MISSED"
        lines.append(f"{engine} <= {limit:.2f}x LocalCluster: {ratio:.2f} {verdict}")
    print("targets:\n  " + "\n  ".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fastq-mib", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="job runs per engine (best kept)")
    args = parser.parse_args()

    endpoint = os.environ.get("AIFDATA_BENCH_S3_ENDPOINT")
    server = _seaweedfs.SeaweedFS.existing(endpoint) if endpoint else _seaweedfs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="aifdata-bench-scale-") as tmp:
            workdir = Path(tmp)
            run(server, workdir, args)
    finally:
        if not endpoint:
            server.stop()


def run(server: _seaweedfs.SeaweedFS, workdir: Path, args: argparse.Namespace) -> None:
    config = workdir / "config.toml"
    options = "\n".join(f'{k} = "{v}"' for k, v in server.storage_options.items())
    config.write_text(f'[mounts.bench.s3]\nurl = "s3://{BUCKET}"\n{options}\n')
    os.environ["AIFDATA_CONFIG"] = str(config)  # every worker's mount table
    os.environ["AIFDATA_HOME"] = str(workdir / "home")  # no catalog: routing by the table
    server.make_bucket(BUCKET)
    print(f"writing {args.fastq_mib} MiB of FASTQ ...", flush=True)
    data = fastq_payload(args.fastq_mib * 2**20)
    fs = aifdata.filesystem(str(config), catalog=False)
    fs.pipe_file(URL, data)
    size = len(data)
    del data
    parts = aifdata.partition(URL, n=args.partitions)

    rows: list[Row] = []
    seconds, expected = best_of(args.repeat, lambda: total([job(p) for p in parts]))
    rows.append(Row("one process", None, seconds))
    engines: list[tuple[str, Callable[[], Any], Callable[[Any, list[Any]], tuple[int, int]]]] = [
        ("Dask LocalCluster", dask_local, on_dask),
        ("SLURMCluster (2 jobs)", lambda: dask_slurm(workdir), on_dask),
        ("Ray Data (2 CPUs)", ray_cluster, lambda _, chosen: on_ray(chosen)),
        ("Ray Data, no reservation", ray_cluster, lambda _, c: on_ray(c, reserve=False)),
        ("Ray tasks (no Ray Data)", ray_cluster, lambda _, chosen: on_ray_tasks(chosen)),
        ("Lithops localhost", lambda: lithops_executor(workdir), on_lithops),
        (
            f"Lithops, {PER_CALL} per call",
            lambda: lithops_executor(workdir),
            lambda executor, chosen: on_lithops(executor, chosen, PER_CALL),
        ),
    ]
    for name, start, on in engines:
        measure(name, start, on, parts, expected, args.repeat, rows)
    report(rows, size, len(parts))


if __name__ == "__main__":
    main()

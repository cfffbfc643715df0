"""Timing harness shared by the benchmarks: wall time, client CPU, best of N, tables."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

GiB = 2**30
MB = 10**6


@dataclass
class Result:
    """One measured case: the best run (by wall time) of several."""

    group: str
    name: str
    wall: float
    cpu: float
    nbytes: int
    requests: int
    runs: list[tuple[float, float]] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / MB / self.wall

    @property
    def objects_per_s(self) -> float:
        return self.requests / self.wall

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu / (self.nbytes / GiB)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu / self.requests


def measure(
    group: str,
    name: str,
    fn: Callable[[], int],
    requests: int,
    repeat: int = 3,
    check: Callable[[], None] | None = None,
) -> Result:
    """Run ``fn`` (which returns the bytes it read) ``repeat`` times; keep the fastest run."""
    runs = []
    nbytes = 0
    for _ in range(repeat):
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        nbytes = fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        runs.append((wall, cpu))
    if check is not None:
        check()
    wall, cpu = min(runs)
    result = Result(group, name, wall, cpu, nbytes, requests, runs)
    print(
        f"  {group:<12} {name:<34} {result.mb_per_s:9.1f} MB/s  {result.objects_per_s:9.1f} obj/s"
        f"  cpu {cpu:6.2f}s  (runs: {', '.join(f'{w:.2f}' for w, _ in runs)} s)",
        flush=True,
    )
    return result


def table(results: list[Result], baselines: dict[str, str]) -> str:
    """A text table with ratios against each group's baseline case."""
    by_name = {(r.group, r.name): r for r in results}
    lines = [
        f"{'group':<12} {'case':<34} {'MB/s':>9} {'obj/s':>9} {'CPU s/GiB':>10} "
        f"{'CPU ms/req':>10} {'speed ×':>8} {'CPU ×':>7}",
        "-" * 106,
    ]
    for r in results:
        base = by_name.get((r.group, baselines.get(r.group, "")))
        speed = f"{base.wall / r.wall:8.2f}" if base else f"{'':>8}"
        cpu = f"{r.cpu / base.cpu:7.2f}" if base and base.cpu else f"{'':>7}"
        lines.append(
            f"{r.group:<12} {r.name:<34} {r.mb_per_s:9.1f} {r.objects_per_s:9.1f} "
            f"{r.cpu_per_gib:10.2f} {r.cpu_ms_per_request:10.3f} {speed} {cpu}"
        )
    return "\n".join(lines)


def seeded_bytes(n: int, seed: int) -> bytes:
    """``n`` reproducible pseudo-random bytes (incompressible)."""
    import numpy as np

    return np.random.default_rng(seed).bytes(n)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))

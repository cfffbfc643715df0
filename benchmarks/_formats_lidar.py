"""LAS/LAZ/COPC benchmark for bench_formats.py: planning cost, and every partition read vs laspy.

* a seeded synthetic LAZ (point format 6, about ``--formats-mib`` / 20 bytes points, laspy's
  50,000-point chunks) on SeaweedFS: planning 16 partitions (requests, bytes), then reading
  every partition (``read_all``) vs ``laspy.read`` of the whole object fetched in one request;
* laspy's real ``simple.copc.laz`` (PDAL's, BSD; fetched with pip like the tests' real files):
  planning its octree nodes, then every partition vs ``CopcReader.query()`` of the whole object;
* a seeded synthetic COPC (the tests' tiny writer, six levels, child hierarchy pages): the same.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import time
from pathlib import Path
from typing import Any

import aifdata
from aifdata import _seaweedfs
from aifdata.formats import RangeSource, get, read_all

BUCKET = "aifdata-bench-formats"  # bench_formats.py's bucket, mounted as aif://bench
REPO = Path(__file__).resolve().parents[1]


def synthetic_laz(points: int, seed: int = 11) -> bytes:
    """A seeded LAZ of ``points`` points (format 6: LAS 1.4), a survey-like strip."""
    import laspy
    import numpy as np

    header = laspy.LasHeader(version="1.4", point_format=6)
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([400_000.0, 5_000_000.0, 0.0])
    las = laspy.LasData(header)
    rng = np.random.default_rng(seed)
    las.X = np.sort(rng.integers(0, 10**7, points))  # along the flight line, as scanned
    las.Y = rng.integers(0, 2 * 10**5, points)
    las.Z = rng.normal(20_000, 3_000, points).astype("i4")
    las.intensity = rng.integers(0, 4096, points)
    las.classification = rng.choice([1, 2, 3, 5, 6], points)
    las.return_number = rng.integers(1, 4, points)
    las.gps_time = np.linspace(0, points / 200_000, points)
    out = io.BytesIO()
    las.write(out, do_compress=True)
    return out.getvalue()


def upload(server: _seaweedfs.SeaweedFS, key: str, data: bytes) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)


def best(fn, repeat: int) -> tuple[float, Any]:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        value = fn()
        runs.append((time.perf_counter() - t0, value))
    return min(runs, key=lambda r: r[0])


def planned(fmt: str, case: str, url: str, **plan: Any) -> tuple[list, tuple]:
    RangeSource(url).size  # noqa: B018  (connect first: the plan's time is the plan's)
    source = RangeSource(url)
    t0 = time.perf_counter()
    parts = get(fmt).plan(source, **plan)
    seconds = time.perf_counter() - t0
    return parts, (fmt, case, len(parts), source.requests, source.bytes_read, seconds)


def _bench_laz(server: _seaweedfs.SeaweedFS, args: argparse.Namespace) -> tuple[list, list]:
    import laspy

    points = max(60_000, getattr(args, "formats_mib", 128) * 2**20 // 20)
    data = synthetic_laz(points)
    upload(server, "lidar/cloud.laz", data)
    url = "aif://bench/lidar/cloud.laz"
    parts, plan = planned("las", f"LAZ {points:,} pts", url, n=16)
    prefetch = getattr(args, "prefetch", 4)

    def ours() -> int:
        return sum(len(p) for _, p in read_all(parts, prefetch=prefetch))

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        return len(laspy.read(io.BytesIO(whole)).points)

    repeat = getattr(args, "repeat", 2)
    peer_s, peer_n = best(peer, repeat)
    ours_s, ours_n = best(ours, repeat)
    assert ours_n == peer_n == points, (ours_n, peer_n, points)
    print(f"  laz: {len(parts)} partitions {points / ours_s:,.0f} points/s, laspy"
          f" {points / peer_s:,.0f} ({len(data) / 2**20:.0f} MiB)")  # fmt: skip
    rows = [
        ("LAZ partitions, all", f"{len(parts)} partitions", points / ours_s, "pt/s",
         f"{len(data) / 2**20:.0f} MiB, point format 6"),
        ("LAZ one laspy.read", "peer", points / peer_s, "pt/s", "whole object"),
        ("  ratio partitions / laspy", "LAZ", peer_s / ours_s, "x", ""),
    ]  # fmt: skip
    return rows, [plan]


def real_copc() -> Path | None:
    """laspy's simple.copc.laz from its sdist (tests/_realdata.py), None when pip cannot."""
    name = "_aifdata_tests_realdata"
    realdata = sys.modules.get(name)
    if realdata is None:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "_realdata.py")
        if spec is None or spec.loader is None:
            return None
        realdata = sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(realdata)
    real = realdata.RealFile(
        "laspy", "2.7.0", "tests/data/simple.copc.laz",
        "c94fa8dfe14ce7bff074231ce9e8aa36f7200342a4ff675c2902205f40e72728", "BSD-2-Clause",
    )  # fmt: skip
    try:
        path: Path = realdata.fetch(real)
    except realdata.Unavailable as exc:
        print(f"  copc: skipped, {exc}")
        return None
    return path


def _bench_copc(server: _seaweedfs.SeaweedFS, args: argparse.Namespace) -> tuple[list, list]:
    import laspy

    path = real_copc()
    if path is None:
        return [], []
    upload(server, "lidar/simple.copc.laz", path.read_bytes())
    url = "aif://bench/lidar/simple.copc.laz"
    parts, plan = planned("copc", "laspy simple.copc", url, n=8)
    nodes = sum(len(get("copc").nodes(p)) for p in parts)

    def ours() -> int:
        return sum(len(p) for _, p in read_all(parts, prefetch=getattr(args, "prefetch", 4)))

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        with laspy.CopcReader(io.BytesIO(whole)) as reader:
            return len(reader.query())

    repeat = getattr(args, "repeat", 2)
    peer_s, total = best(peer, repeat)
    ours_s, got = best(ours, repeat)
    assert got == total, (got, total)
    print(f"  copc: {len(parts)} partitions of {nodes} nodes, {total / ours_s:,.0f} points/s,"
          f" CopcReader {total / peer_s:,.0f}")  # fmt: skip
    rows = [
        ("COPC partitions, all", f"{len(parts)} of {nodes} nodes", total / ours_s, "pt/s",
         f"real file, {total:,} points"),
        ("COPC one CopcReader.query", "peer", total / peer_s, "pt/s", "whole object"),
        ("  ratio partitions / CopcReader", "COPC", peer_s / ours_s, "x", "tiny file: latency"),
    ]  # fmt: skip
    return rows, [plan]


def _bench_synthetic_copc(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list, list]:
    """A seeded COPC written by the tests' tiny COPC writer (tests/test_copc.py), 5 levels."""
    import laspy

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.test_copc import cloud, write_copc

    points = max(20_000, min(2_000_000, getattr(args, "formats_mib", 128) * 2**20 // 64))
    path = write_copc(home / "cloud.copc.laz", cloud(points, seed=12), depth=5, page_level=3)
    upload(server, "lidar/cloud.copc.laz", path.read_bytes())
    url = "aif://bench/lidar/cloud.copc.laz"
    parts, plan = planned("copc", f"COPC {points:,} pts", url, n=16)

    def ours() -> int:
        return sum(len(p) for _, p in read_all(parts, prefetch=getattr(args, "prefetch", 4)))

    def peer() -> int:
        whole = aifdata.filesystem(catalog=False).cat_file(url)
        with laspy.CopcReader(io.BytesIO(whole)) as reader:
            return len(reader.query())

    repeat = getattr(args, "repeat", 2)
    peer_s, total = best(peer, repeat)
    ours_s, got = best(ours, repeat)
    assert got == total == points, (got, total, points)
    print(f"  copc (synthetic): {len(parts)} partitions {total / ours_s:,.0f} points/s,"
          f" CopcReader {total / peer_s:,.0f}")  # fmt: skip
    rows = [
        ("COPC synthetic partitions, all", f"{len(parts)} partitions", total / ours_s, "pt/s",
         f"synthetic, {path.stat().st_size / 2**20:.0f} MiB, 6 levels"),
        ("COPC synthetic, one CopcReader.query", "peer", total / peer_s, "pt/s", "whole object"),
        ("  ratio partitions / CopcReader", "COPC synthetic", peer_s / ours_s, "x", ""),
    ]  # fmt: skip
    return rows, [plan]


def bench_lidar(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    """Result rows and planning rows of the LAZ and COPC cases."""
    rows, plans = _bench_laz(server, args)
    for bench in (_bench_copc, _bench_synthetic_copc):
        more_rows, more_plans = (
            bench(server, home, args) if bench is _bench_synthetic_copc else bench(server, args)
        )
        rows += more_rows
        plans += more_plans
    return rows, plans

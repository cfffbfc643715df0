"""Hydrate on read across processes: one S3 transfer per file, and a killed
hydrator is taken over.

S3 traffic is counted at a relaying proxy in front of SeaweedFS
(:mod:`tests.faults.proxy`), not by the code under test.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import aifdata
from aifdata import Catalog

from .faults.proxy import Fault, FaultProxy

pytestmark = [pytest.mark.s3, pytest.mark.e2e]

FILES = 50
READERS = 16


def _toml(server: Any, endpoint: str, bucket: str, fast: Path, lease: float) -> str:
    options = dict(server.storage_options, endpoint_url=endpoint)
    s3 = "\n".join(f'{k} = "{v}"' for k, v in options.items())
    return f"""
[mounts.m]
read_order = ["fast", "s3"]
write_tier = "s3"
hydrate = "on-read"
hydrate_lease = {lease}
[mounts.m.s3]
url = "s3://{bucket}/data"
{s3}
[mounts.m.fast]
kind = "pfs"
path = "{fast}"
"""


def _setup(server: Any, proxy: FaultProxy, bucket: str, tmp_path: Path, lease: float) -> Path:
    fast = tmp_path / "fast"
    fast.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(_toml(server, proxy.endpoint_url, bucket, fast, lease))
    return config


def _put(server: Any, bucket: str, rel: str, data: bytes) -> None:
    name, _, prefix = bucket.partition("/")
    server.client().put_object(Bucket=name, Key=f"{prefix}/data/{rel}", Body=data)


def _read_all(config: str, catalog: str, rels: list[str], barrier: Any, out: Any) -> None:
    fs = aifdata.AifFileSystem(config, catalog=catalog)
    order = rels[os.getpid() % len(rels) :] + rels[: os.getpid() % len(rels)]
    barrier.wait(300)
    out.put({rel: hashlib.sha256(fs.cat_file(f"m/{rel}")).hexdigest() for rel in order})


def _read_one(config: str, catalog: str, rel: str) -> None:
    fs = aifdata.AifFileSystem(config, catalog=catalog)
    fs.cat_file(f"m/{rel}")


def _bytes_got(heads: list[str], key: str, size: int) -> int:
    """The bytes of object ``key`` that GET requests asked for (a whole GET: all)."""
    total = 0
    for head in heads:
        line = head.split("\r\n", 1)[0]
        method, path = line.split(" ")[:2]
        if method != "GET" or path.split("?")[0] != key:
            continue
        ranged = re.search(r"(?im)^range:\s*bytes=(\d+)-(\d*)", head)
        if ranged is None:
            total += size
        else:
            lo, hi = int(ranged[1]), int(ranged[2] or size - 1)
            total += min(hi, size - 1) - lo + 1
    return total


def test_sixteen_processes_read_fifty_files_and_s3_serves_each_once(
    seaweedfs: Any, bucket: str, tmp_path: Path
) -> None:
    data = {f"d/f{i:02d}.bin": os.urandom(20_000 + 1000 * i) for i in range(FILES)}
    for rel, blob in data.items():
        _put(seaweedfs, bucket, rel, blob)
    with FaultProxy(seaweedfs.endpoint_url) as proxy:
        config = _setup(seaweedfs, proxy, bucket, tmp_path, lease=30)
        catalog = str(tmp_path / "catalog.db")
        Catalog(catalog, config=aifdata.load_config(config)).ingest(f"s3://{bucket}/data", "ds")
        proxy.heads.clear()
        ctx = multiprocessing.get_context("spawn")
        barrier, out = ctx.Barrier(READERS), ctx.Queue()
        args = (str(config), catalog, sorted(data), barrier, out)
        procs = [ctx.Process(target=_read_all, args=args) for _ in range(READERS)]
        for p in procs:
            p.start()
        try:
            results = [out.get(timeout=600) for _ in procs]
        finally:
            for p in procs:
                p.join(60)
                p.kill()
        heads = list(proxy.heads)
        fs = aifdata.AifFileSystem(str(config), catalog=catalog)
        assert {fs.where(f"m/{rel}").tier for rel in data} == {"fast"}
    assert [p.exitcode for p in procs] == [0] * READERS
    expected = {rel: hashlib.sha256(blob).hexdigest() for rel, blob in data.items()}
    assert results == [expected] * READERS
    name, _, prefix = bucket.partition("/")
    got = {
        rel: _bytes_got(heads, f"/{name}/{prefix}/data/{rel}", len(b)) for rel, b in data.items()
    }
    assert got == {rel: len(blob) for rel, blob in data.items()}  # each file's bytes once
    gets = Counter(h.split(" ", 1)[0] for h in heads)
    print(f"S3 requests at the proxy during the reads: {dict(gets)}")


def test_a_hydrator_killed_mid_copy_leaves_no_file_and_the_next_reader_takes_over(
    seaweedfs: Any, bucket: str, tmp_path: Path
) -> None:
    blob = os.urandom(6 * 2**20)
    _put(seaweedfs, bucket, "big.bin", blob)
    with FaultProxy(seaweedfs.endpoint_url) as proxy:
        config = _setup(seaweedfs, proxy, bucket, tmp_path, lease=2)
        catalog = str(tmp_path / "catalog.db")
        Catalog(catalog, config=aifdata.load_config(config)).ingest(f"s3://{bucket}/data", "ds")
        fast = tmp_path / "fast"
        proxy.inject(Fault("drip", method="GET", chunk=8 * 1024, interval=0.05))
        ctx = multiprocessing.get_context("spawn")
        hydrator = ctx.Process(target=_read_one, args=(str(config), catalog, "big.bin"))
        hydrator.start()
        try:
            _wait_for_partial_copy(fast, hydrator)
            assert (fast / ".big.bin.aif-lease").exists()
            os.kill(hydrator.pid, signal.SIGKILL)  # type: ignore[arg-type]
            hydrator.join()
        finally:
            hydrator.kill()
            hydrator.join()
        assert not (fast / "big.bin").exists()  # no partial file at the final path
        proxy.inject(None)
        fs = aifdata.AifFileSystem(str(config), catalog=catalog)
        assert fs.cat_file("m/big.bin") == blob  # waits out the dead lease, then hydrates
        assert fs.where("m/big.bin").tier == "fast"
    assert (fast / "big.bin").read_bytes() == blob
    assert not (fast / ".big.bin.aif-lease").exists()
    assert list(fast.glob(".big.bin.*")) == []  # the dead hydrator's temporary was swept


def _wait_for_partial_copy(fast: Path, proc: Any) -> None:
    """Until the hydrator has its lease and its temporary copy open (it is then
    copying: the dripping proxy makes that last minutes)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.is_alive(), "the hydrator ended before it was killed"
        if list(fast.glob(".big.bin.*.aif-tmp")) and (fast / ".big.bin.aif-lease").exists():
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise AssertionError("no temporary copy appeared")

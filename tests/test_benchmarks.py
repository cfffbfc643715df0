"""The benchmarks still run (tiny sizes, against the session's server); no timing is asserted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # each runs a benchmark script in a child process

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_read.py"


def test_bench_read_runs_and_prints_ratios(seaweedfs):
    env = dict(os.environ, AIFDATA_BENCH_S3_ENDPOINT=seaweedfs.endpoint_url)
    args = ["--large-mib", "12", "--small-count", "40", "--repeat", "1"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    for case in ("aif:// cat_file", "s3fs cat_file", "boto3 get_object", "aif:// cat(list)"):
        assert case in proc.stdout
    assert "targets:" in proc.stdout


def test_bench_catalog_runs_and_prints_targets(tmp_path):
    bench = BENCH.parent / "bench_catalog.py"
    args = ["--files", "300", "--datasets", "300", "--queries", "20", "--lookups", "20"]
    proc = subprocess.run(
        [sys.executable, str(bench), *args, "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for measure in ("ingest without hashing", "search p95", "linear scan p50", "replica lookup"):
        assert measure in proc.stdout
    assert "targets:" in proc.stdout
    assert not list(tmp_path.iterdir())  # the work directory is cleaned up


def test_bench_formats_runs_and_prints_ratios(seaweedfs):
    env = dict(os.environ, AIFDATA_BENCH_S3_ENDPOINT=seaweedfs.endpoint_url)
    args = ["--fastq-mib", "2", "--partitions", "8", "--repeat", "1"]
    args += ["--gzip-mib", "1", "--geotiff-side", "512", "--root-entries", "20000"]
    args += ["--formats-mib", "1"]
    proc = subprocess.run(
        [sys.executable, str(BENCH.parent / "bench_formats.py"), *args],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    measures = ["FASTQ plan", "ratio partitions / dnaio", "Dask bag count", "DataLoader"]
    measures += ["gzip FASTQ read", "GeoTIFF windows", "ROOT partitions", "planning cost"]
    for measure in measures:
        assert measure in proc.stdout
    assert "targets:" in proc.stdout


@pytest.fixture
def short_tmp():
    """A directory with a short path: Ray's sockets live under $TMPDIR, and a Unix socket's path
    is at most 107 bytes (pytest's tmp_path is too deep)."""
    path = Path(tempfile.mkdtemp(prefix="aifb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_bench_scale_runs_every_engine_and_prints_targets(seaweedfs, short_tmp):
    home = short_tmp / "home"  # Lithops and Ray write under $HOME and $TMPDIR: here, not there
    home.mkdir()
    env = dict(os.environ, AIFDATA_BENCH_S3_ENDPOINT=seaweedfs.endpoint_url, HOME=str(home))
    env["TMPDIR"] = str(short_tmp)
    conf = os.environ.get("AIFDATA_TEST_SLURM_CONF")
    if conf:  # the session's cluster, as CI runs it; else the script starts one, or skips Slurm
        env["SLURM_CONF"] = conf
    args = ["--fastq-mib", "4", "--partitions", "6", "--repeat", "1"]
    proc = subprocess.run(
        [sys.executable, str(BENCH.parent / "bench_scale.py"), *args],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for engine in ("one process", "Dask LocalCluster", "SLURMCluster", "Ray Data", "Lithops"):
        assert engine in proc.stdout
    assert "targets:" in proc.stdout


def test_bench_serve_runs_and_prints_ratios_and_targets(seaweedfs):
    env = dict(os.environ, AIFDATA_BENCH_S3_ENDPOINT=seaweedfs.endpoint_url)
    args = ["--clients", "4", "--requests", "5", "--datasets", "4", "--repeat", "1"]
    proc = subprocess.run(
        [sys.executable, str(BENCH.parent / "bench_serve.py"), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for case in ("library search", "library presign"):
        assert case in proc.stdout
    for workers in ("1 worker", "2 workers"):
        for what in ("search", "presign"):
            assert f"ratio service {what}, {workers} / library" in proc.stdout
    assert "targets:" in proc.stdout

"""bench_epochs.py still runs (``--quick``, against the session's server); no timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs the benchmark script in a child process

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_epochs.py"


def test_bench_epochs_runs_and_prints_every_target(seaweedfs):
    env = dict(os.environ, AIFDATA_BENCH_S3_ENDPOINT=seaweedfs.endpoint_url)
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for mode in ("loader", "loop"):
        for case in ("epoch 1, hydrate off", "epoch 1, hydrate on-read", "epoch 2 through aif://"):
            assert f"{mode}: {case}" in proc.stdout
        assert f"{mode}: S3 GETs per file" in proc.stdout
    targets = proc.stdout.split("targets:", 1)[1].splitlines()
    assert sum(line.strip().startswith(("MET", "MISSED")) for line in targets) == 6

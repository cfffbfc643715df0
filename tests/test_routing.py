"""Reads go to the best current replica: PFS when its copy matches, else S3."""

from __future__ import annotations

import pytest

import aifdata
from aifdata import NotFound


def test_same_size_copy_is_read_from_pfs(two_tier_fs, both):
    both("run42/reads.fastq", s3=b"S3S3S3", pfs=b"PFSPFS")
    assert two_tier_fs.cat("aif://both/run42/reads.fastq") == b"PFSPFS"
    with two_tier_fs.open("aif://both/run42/reads.fastq") as f:
        assert f.read() == b"PFSPFS"
    route = two_tier_fs.where("aif://both/run42/reads.fastq")
    assert route.tier == "pfs"
    assert "same size as the write tier 's3'" in route.reason
    assert route.url.endswith("pfs/run42/reads.fastq")


def test_pfs_copy_with_other_size_is_skipped_for_s3(two_tier_fs, both):
    both("run42/reads.fastq", s3=b"complete-object", pfs=b"stale")
    assert two_tier_fs.cat("aif://both/run42/reads.fastq") == b"complete-object"
    route = two_tier_fs.where("both/run42/reads.fastq")
    assert route.tier == "s3"
    assert route.url.startswith("s3://")
    assert route.skipped == (("pfs", "size 5 differs from 15 on write tier 's3'"),)


def test_missing_from_pfs_is_read_from_s3(two_tier_fs, both):
    both("only-s3.bin", s3=b"cloud")
    assert two_tier_fs.cat_file("both/only-s3.bin", 1, 3) == b"lo"
    route = two_tier_fs.where("both/only-s3.bin")
    assert route.tier == "s3"
    assert route.skipped == (("pfs", "no copy"),)
    assert "'s3' is the write tier" in route.reason


def test_file_only_on_pfs_is_served_from_pfs(two_tier_fs, both):
    both("scratch.bin", pfs=b"local")
    assert two_tier_fs.cat("both/scratch.bin") == b"local"
    assert "write tier 's3' has no copy" in two_tier_fs.where("both/scratch.bin").reason


def test_file_on_no_tier_is_not_found(two_tier_fs):
    with pytest.raises(NotFound, match="no copy on any tier"):
        two_tier_fs.where("both/nothing.bin")
    with pytest.raises(FileNotFoundError):
        two_tier_fs.cat("both/nothing.bin")


def test_listing_is_the_union_without_duplicates(two_tier_fs, both):
    both("d/common.bin", s3=b"1234", pfs=b"abcd")
    both("d/s3-only.bin", s3=b"x")
    both("d/pfs-only.bin", pfs=b"y")
    listing = {e["name"]: e for e in two_tier_fs.ls("both/d")}
    assert sorted(listing) == ["both/d/common.bin", "both/d/pfs-only.bin", "both/d/s3-only.bin"]
    assert sorted(listing["both/d/common.bin"]["tiers"]) == ["pfs", "s3"]
    assert listing["both/d/pfs-only.bin"]["tiers"] == ["pfs"]
    assert sorted(two_tier_fs.find("both")) == sorted(listing)


def test_writes_go_to_the_write_tier_only(two_tier_fs, pfs_dir):
    two_tier_fs.pipe("both/new.bin", b"fresh")
    assert not (pfs_dir / "new.bin").exists()
    assert two_tier_fs.where("both/new.bin").tier == "s3"


def test_bulk_cat_routes_each_file(two_tier_fs, both):
    both("m/a", s3=b"AA", pfs=b"aa")
    both("m/b", s3=b"BB", pfs=b"bbb")
    both("m/c", s3=b"CC")
    out = two_tier_fs.cat(["both/m/a", "both/m/b", "both/m/c"])
    assert out == {"both/m/a": b"aa", "both/m/b": b"BB", "both/m/c": b"CC"}


def test_rm_removes_every_replica(two_tier_fs, both, pfs_dir):
    both("gone.bin", s3=b"12", pfs=b"34")
    two_tier_fs.rm("both/gone.bin")
    assert not (pfs_dir / "gone.bin").exists()
    assert not two_tier_fs.exists("both/gone.bin")


def test_where_on_a_one_tier_mount_looks_for_the_file(tmp_path):
    mount = aifdata.Mount("p", (aifdata.Tier.pfs(tmp_path),))
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    (tmp_path / "there.bin").write_bytes(b"x")
    assert fs.where("aif://p/there.bin").tier == "pfs"
    with pytest.raises(FileNotFoundError, match="no such file on tier 'pfs'"):
        fs.where("aif://p/missing.bin")

"""Reads go to the best current replica: PFS when its copy matches, else the write tier.

Each test runs on mount ``both`` twice (the ``tiers`` fixture): PFS then a second PFS
directory (unit lane), and PFS then S3 on the session's server (s3 lane).
"""

from __future__ import annotations

import pytest

import aifdata
from aifdata import NotFound


def test_same_size_copy_is_read_from_pfs(tiers):
    fs = tiers.fs
    tiers.place("run42/reads.fastq", write=b"S3S3S3", pfs=b"PFSPFS")
    assert fs.cat("aif://both/run42/reads.fastq") == b"PFSPFS"
    with fs.open("aif://both/run42/reads.fastq") as f:
        assert f.read() == b"PFSPFS"
    route = fs.where("aif://both/run42/reads.fastq")
    assert route.tier == "pfs"
    assert f"same size as the write tier {tiers.write!r}" in route.reason
    assert route.url.endswith("pfs/run42/reads.fastq")
    assert route.url == tiers.url("pfs", "run42/reads.fastq")


def test_pfs_copy_with_other_size_is_skipped_for_the_write_tier(tiers):
    fs = tiers.fs
    tiers.place("run42/reads.fastq", write=b"complete-object", pfs=b"stale")
    assert fs.cat("aif://both/run42/reads.fastq") == b"complete-object"
    route = fs.where("both/run42/reads.fastq")
    assert route.tier == tiers.write
    assert route.url == tiers.url(tiers.write, "run42/reads.fastq")
    assert route.skipped == (("pfs", f"size 5 differs from 15 on write tier {tiers.write!r}"),)


def test_missing_from_pfs_is_read_from_the_write_tier(tiers):
    fs = tiers.fs
    tiers.place("only-s3.bin", write=b"cloud")
    assert fs.cat_file("both/only-s3.bin", 1, 3) == b"lo"
    route = fs.where("both/only-s3.bin")
    assert route.tier == tiers.write
    assert route.skipped == (("pfs", "no copy"),)
    assert f"{tiers.write!r} is the write tier" in route.reason


def test_file_only_on_pfs_is_served_from_pfs(tiers):
    fs = tiers.fs
    tiers.place("scratch.bin", pfs=b"local")
    assert fs.cat("both/scratch.bin") == b"local"
    assert f"write tier {tiers.write!r} has no copy" in fs.where("both/scratch.bin").reason


def test_file_on_no_tier_is_not_found(tiers):
    with pytest.raises(NotFound, match="no copy on any tier"):
        tiers.fs.where("both/nothing.bin")
    with pytest.raises(FileNotFoundError):
        tiers.fs.cat("both/nothing.bin")


def test_listing_is_the_union_without_duplicates(tiers):
    fs = tiers.fs
    tiers.place("d/common.bin", write=b"1234", pfs=b"abcd")
    tiers.place("d/s3-only.bin", write=b"x")
    tiers.place("d/pfs-only.bin", pfs=b"y")
    listing = {e["name"]: e for e in fs.ls("both/d")}
    assert sorted(listing) == ["both/d/common.bin", "both/d/pfs-only.bin", "both/d/s3-only.bin"]
    assert sorted(listing["both/d/common.bin"]["tiers"]) == sorted(tiers.tier_names)
    assert listing["both/d/pfs-only.bin"]["tiers"] == ["pfs"]
    assert sorted(fs.find("both")) == sorted(listing)


def test_writes_go_to_the_write_tier_only(tiers, pfs_dir):
    tiers.fs.pipe("both/new.bin", b"fresh")
    assert not (pfs_dir / "new.bin").exists()
    assert tiers.fs.where("both/new.bin").tier == tiers.write


def test_bulk_cat_routes_each_file(tiers):
    tiers.place("m/a", write=b"AA", pfs=b"aa")
    tiers.place("m/b", write=b"BB", pfs=b"bbb")
    tiers.place("m/c", write=b"CC")
    out = tiers.fs.cat(["both/m/a", "both/m/b", "both/m/c"])
    assert out == {"both/m/a": b"aa", "both/m/b": b"BB", "both/m/c": b"CC"}


def test_rm_removes_every_replica(tiers, pfs_dir):
    tiers.place("gone.bin", write=b"12", pfs=b"34")
    tiers.fs.rm("both/gone.bin")
    assert not (pfs_dir / "gone.bin").exists()
    assert not tiers.fs.exists("both/gone.bin")


def test_where_on_a_one_tier_mount_looks_for_the_file(tmp_path):
    mount = aifdata.Mount("p", (aifdata.Tier.pfs(tmp_path),))
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    (tmp_path / "there.bin").write_bytes(b"x")
    assert fs.where("aif://p/there.bin").tier == "pfs"
    with pytest.raises(FileNotFoundError, match="no such file on tier 'pfs'"):
        fs.where("aif://p/missing.bin")

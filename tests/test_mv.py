"""``mv`` through ``aif://`` (fsspec's abstract suite has no mv class for other filesystems)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["s3", "pfs"])
def fs_and_root(request, s3_fs, pfs_fs):
    return (s3_fs, "s3only") if request.param == "s3" else (pfs_fs, "pfsonly")


def test_mv_file(fs_and_root):
    fs, root = fs_and_root
    fs.pipe(f"{root}/a/one.txt", b"1")
    fs.mv(f"{root}/a/one.txt", f"{root}/b/uno.txt")
    assert fs.cat(f"{root}/b/uno.txt") == b"1"
    assert not fs.exists(f"{root}/a/one.txt")


def test_mv_directory_recursive(fs_and_root):
    fs, root = fs_and_root
    fs.pipe({f"{root}/src/x.txt": b"x", f"{root}/src/sub/y.txt": b"y"})
    fs.mv(f"{root}/src", f"{root}/dst", recursive=True)
    assert fs.cat(f"{root}/dst/x.txt") == b"x"
    assert fs.cat(f"{root}/dst/sub/y.txt") == b"y"
    assert not fs.exists(f"{root}/src/x.txt")
    assert sorted(fs.find(root)) == [f"{root}/dst/sub/y.txt", f"{root}/dst/x.txt"]


def test_mv_missing_file_is_not_found(fs_and_root):
    fs, root = fs_and_root
    with pytest.raises(FileNotFoundError):
        fs.mv(f"{root}/nothing.txt", f"{root}/else.txt")


def test_mv_between_mounts(s3_fs, pfs_dir, seaweedfs, bucket):
    import aifdata

    from .conftest import s3_tier

    config = aifdata.Config(
        (
            aifdata.Mount("cloud", (s3_tier(seaweedfs, bucket, "mv"),)),
            aifdata.Mount("hpc", (aifdata.Tier.pfs(pfs_dir),)),
        )
    )
    fs = aifdata.filesystem(config)
    fs.pipe("cloud/data.bin", b"payload")
    fs.mv("cloud/data.bin", "hpc/data.bin")
    assert (pfs_dir / "data.bin").read_bytes() == b"payload"
    assert not fs.exists("cloud/data.bin")

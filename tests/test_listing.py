"""Listings: ``ls`` of a file is that file (fsspec's convention), and every entry of
``ls``, ``find``, ``info`` and ``aifdata ls`` names the tiers that hold it, in read order."""

from __future__ import annotations

import json

import pytest

import aifdata
from aifdata.cli import main

from .conftest import s3_tier


@pytest.mark.parametrize(
    ("where", "tiers"),
    [({"s3": b"abc"}, ["s3"]), ({"pfs": b"abc"}, ["pfs"]), ({"s3": b"abc", "pfs": b"abc"}, None)],
    ids=["s3-only", "pfs-only", "both"],
)
def test_ls_of_a_file_is_that_file(two_tier_fs, both, where, tiers):
    both("d/f.bin", **where)
    [entry] = two_tier_fs.ls("aif://both/d/f.bin")
    assert entry["name"] == "both/d/f.bin"
    assert entry["type"] == "file" and entry["size"] == 3
    assert entry["tiers"] == (tiers or ["pfs", "s3"])
    assert two_tier_fs.ls("both/d/f.bin", detail=False) == ["both/d/f.bin"]
    assert two_tier_fs.info("both/d/f.bin")["tiers"] == entry["tiers"]


def test_ls_of_a_missing_path_is_not_found(two_tier_fs, both):
    both("d/f.bin", s3=b"abc", pfs=b"abc")
    with pytest.raises(FileNotFoundError):
        two_tier_fs.ls("both/d/nothing.bin")
    with pytest.raises(FileNotFoundError):
        two_tier_fs.ls("both/d/f.bin/below")


def test_each_tier_lists_a_file_as_itself(two_tier_fs, both):
    both("d/f.bin", s3=b"abc", pfs=b"abc")
    mount = two_tier_fs.config.mounts[0]
    for tier in ("s3", "pfs"):
        conn = two_tier_fs.connector(mount, tier)
        assert [(e["name"], e["type"], e["size"]) for e in conn.ls("d/f.bin")] == [
            ("d/f.bin", "file", 3)
        ], tier
        assert list(conn.find("d/f.bin")) == ["d/f.bin"], tier


def test_s3_ls_of_a_file_does_not_list_its_folder(two_tier_fs, both, monkeypatch):
    for i in range(3):
        both(f"d/f{i}.bin", s3=b"abc")
    conn = two_tier_fs.connector(two_tier_fs.config.mounts[0], "s3")
    listed = []
    lsdir = type(conn.fs)._lsdir

    async def spy(fs, path, *args, **kwargs):
        listed.append(path)
        return await lsdir(fs, path, *args, **kwargs)

    monkeypatch.setattr(type(conn.fs), "_lsdir", spy)
    conn.fs.invalidate_cache()
    assert [e["name"] for e in conn.ls("d/f1.bin")] == ["d/f1.bin"]
    assert listed == [conn.path("d/f1.bin")]  # the file's own prefix only, never "d/"
    assert [e["name"] for e in conn.ls("d")] == ["d/f0.bin", "d/f1.bin", "d/f2.bin"]


def test_ls_find_and_info_agree_on_tiers(two_tier_fs, both):
    both("d/common.bin", s3=b"1234", pfs=b"1234")
    both("d/s3.bin", s3=b"x")
    both("d/pfs.bin", pfs=b"y")
    both("d/sub/deep.bin", s3=b"z", pfs=b"z")
    expected = {
        "both/d/common.bin": ["pfs", "s3"],
        "both/d/pfs.bin": ["pfs"],
        "both/d/s3.bin": ["s3"],
        "both/d/sub/deep.bin": ["pfs", "s3"],
    }
    found = two_tier_fs.find("both/d", detail=True)
    assert {n: e["tiers"] for n, e in found.items()} == expected
    assert found["both/d/common.bin"]["tier"] == "s3"  # whose size, mtime and ETag these are
    listed = {e["name"]: e["tiers"] for e in two_tier_fs.ls("both/d")}
    files = {n: t for n, t in expected.items() if "/sub/" not in n}
    assert listed == {**files, "both/d/sub": ["pfs", "s3"]}
    assert files == {n: two_tier_fs.info(n)["tiers"] for n in files}
    dirs = two_tier_fs.find("both", withdirs=True, detail=True)
    assert dirs["both/d/sub"]["type"] == "directory"
    assert dirs["both/d/sub"]["tiers"] == ["pfs", "s3"]
    assert "both" not in dirs


def test_tiers_follow_the_read_order(seaweedfs, bucket, pfs_dir):
    mount = aifdata.Mount(
        "flip",
        (aifdata.Tier.pfs(pfs_dir), s3_tier(seaweedfs, bucket)),
        read_order=("s3", "pfs"),
        write_tier="s3",
    )
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    fs.pipe("flip/a.bin", b"abc")
    (pfs_dir / "a.bin").write_bytes(b"abc")
    assert fs.info("flip/a.bin")["tiers"] == ["s3", "pfs"]
    assert fs.ls("flip/a.bin")[0]["tiers"] == ["s3", "pfs"]
    assert fs.ls("flip")[0]["tiers"] == ["s3", "pfs"]
    assert fs.find("flip", detail=True)["flip/a.bin"]["tiers"] == ["s3", "pfs"]
    assert fs.info("flip")["tiers"] == ["s3", "pfs"]
    assert fs.ls("")[0] == {"name": "flip", "size": 0, "type": "directory", "tiers": ["s3", "pfs"]}


def test_s3_folder_markers_are_not_files(two_tier_fs, seaweedfs, bucket):
    """Some servers keep ``prefix/`` objects for folders; they are directories, not files."""
    name, _, prefix = bucket.partition("/")
    client = seaweedfs.client()
    for key in ("data/", "data/empty/", "data/d/", "data/d/f.bin"):
        body = b"" if key.endswith("/") else b"abc"
        client.put_object(Bucket=name, Key=f"{prefix}/{key}", Body=body)
    conn = two_tier_fs.connector(two_tier_fs.config.mounts[0], "s3")
    assert sorted((e["name"], e["type"]) for e in conn.ls("")) == [
        ("d", "directory"),
        ("empty", "directory"),
    ]
    assert conn.ls("empty") == []
    assert list(conn.find("")) == ["d/f.bin"]
    assert sorted(conn.find("", withdirs=True)) == ["d", "d/f.bin", "empty"]
    assert [e["name"] for e in two_tier_fs.ls("both")] == ["both/d", "both/empty"]
    assert two_tier_fs.find("both") == ["both/d/f.bin"]


def cli(capsysbinary, *args):
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    assert code == 0, err.decode()
    return out.decode()


@pytest.fixture
def genomics(genomics_fs, pfs_dir):
    genomics_fs.pipe("genomics/run/both.bin", b"12345")
    genomics_fs.pipe("genomics/run/s3.bin", b"123")
    (pfs_dir / "run").mkdir()
    (pfs_dir / "run" / "both.bin").write_bytes(b"12345")
    return genomics_fs


def test_cli_ls_long_shows_every_tier(capsysbinary, genomics):
    out = cli(capsysbinary, "ls", "-l", "aif://genomics/run/both.bin")
    assert out.split() == ["5", "pfs,s3", "aif://genomics/run/both.bin"]
    out = cli(capsysbinary, "ls", "-l", "aif://genomics/run/s3.bin")
    assert out.split() == ["3", "s3", "aif://genomics/run/s3.bin"]
    out = cli(capsysbinary, "ls", "-l", "-r", "aif://genomics")
    assert [line.split() for line in out.splitlines()] == [
        ["5", "pfs,s3", "aif://genomics/run/both.bin"],
        ["3", "s3", "aif://genomics/run/s3.bin"],
    ]


@pytest.mark.parametrize("recursive", [[], ["-r"]], ids=["ls", "ls-r"])
def test_cli_ls_json_has_tiers(capsysbinary, genomics, recursive):
    out = cli(capsysbinary, "ls", *recursive, "--json", "aif://genomics/run")
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["genomics/run/both.bin"]["tiers"] == ["pfs", "s3"]
    assert entries["genomics/run/s3.bin"]["tiers"] == ["s3"]
    out = cli(capsysbinary, "ls", "--json", "aif://genomics/run/s3.bin")
    assert [(e["name"], e["tiers"]) for e in json.loads(out)] == [("genomics/run/s3.bin", ["s3"])]

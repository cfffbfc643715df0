"""Listings: ``ls`` of a file is that file (fsspec's convention), and every entry of
``ls``, ``find``, ``info`` and ``aifdata ls`` names the tiers that hold it, in read order."""

from __future__ import annotations

import json

import pytest

import aifdata
from aifdata.cli import main


@pytest.mark.parametrize(
    ("where", "held"),
    [
        ({"write": b"abc"}, "write"),
        ({"pfs": b"abc"}, "pfs"),
        ({"write": b"abc", "pfs": b"abc"}, None),
    ],
    ids=["write-tier-only", "pfs-only", "both"],
)
def test_ls_of_a_file_is_that_file(tiers, where, held):
    fs = tiers.fs
    tiers.place("d/f.bin", **where)
    expected = {"write": [tiers.write], "pfs": ["pfs"], None: tiers.tier_names}[held]
    [entry] = fs.ls("aif://both/d/f.bin")
    assert entry["name"] == "both/d/f.bin"
    assert entry["type"] == "file" and entry["size"] == 3
    assert entry["tiers"] == expected
    assert fs.ls("both/d/f.bin", detail=False) == ["both/d/f.bin"]
    assert fs.info("both/d/f.bin")["tiers"] == entry["tiers"]


def test_ls_of_a_missing_path_is_not_found(tiers):
    tiers.place("d/f.bin", write=b"abc", pfs=b"abc")
    with pytest.raises(FileNotFoundError):
        tiers.fs.ls("both/d/nothing.bin")
    with pytest.raises(FileNotFoundError):
        tiers.fs.ls("both/d/f.bin/below")


def test_each_tier_lists_a_file_as_itself(tiers):
    tiers.place("d/f.bin", write=b"abc", pfs=b"abc")
    mount = tiers.fs.config.mounts[0]
    for tier in tiers.tier_names:
        conn = tiers.fs.connector(mount, tier)
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


def test_ls_find_and_info_agree_on_tiers(tiers):
    fs, both, write = tiers.fs, tiers.tier_names, [tiers.write]
    tiers.place("d/common.bin", write=b"1234", pfs=b"1234")
    tiers.place("d/s3.bin", write=b"x")
    tiers.place("d/pfs.bin", pfs=b"y")
    tiers.place("d/sub/deep.bin", write=b"z", pfs=b"z")
    expected = {
        "both/d/common.bin": both,
        "both/d/pfs.bin": ["pfs"],
        "both/d/s3.bin": write,
        "both/d/sub/deep.bin": both,
    }
    found = fs.find("both/d", detail=True)
    assert {n: e["tiers"] for n, e in found.items()} == expected
    assert found["both/d/common.bin"]["tier"] == tiers.write  # whose size, mtime and ETag these are
    listed = {e["name"]: e["tiers"] for e in fs.ls("both/d")}
    files = {n: t for n, t in expected.items() if "/sub/" not in n}
    assert listed == {**files, "both/d/sub": both}
    assert files == {n: fs.info(n)["tiers"] for n in files}
    dirs = fs.find("both", withdirs=True, detail=True)
    assert dirs["both/d/sub"]["type"] == "directory"
    assert dirs["both/d/sub"]["tiers"] == both
    assert dirs["both"] == fs.info("both")  # the root itself, as s3fs and local list it


def test_tiers_follow_the_read_order(tiers, pfs_dir):
    flipped = [tiers.write, "pfs"]
    mount = tiers.mount("flip", read_order=(tiers.write, "pfs"))
    fs = aifdata.filesystem(aifdata.Config((mount,)), catalog=False)
    fs.pipe("flip/a.bin", b"abc")
    (pfs_dir / "a.bin").write_bytes(b"abc")
    assert fs.info("flip/a.bin")["tiers"] == flipped
    assert fs.ls("flip/a.bin")[0]["tiers"] == flipped
    assert fs.ls("flip")[0]["tiers"] == flipped
    assert fs.find("flip", detail=True)["flip/a.bin"]["tiers"] == flipped
    assert fs.info("flip")["tiers"] == flipped
    assert fs.ls("")[0] == {"name": "flip", "size": 0, "type": "directory", "tiers": flipped}


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
def genomics(tiers, tmp_path, monkeypatch):
    """Mount ``genomics`` (the ``tiers`` layout) as this test's configuration."""
    config = tmp_path / "config.toml"
    config.write_text(tiers.toml("genomics"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    fs = aifdata.filesystem(str(config), catalog=False)
    fs.pipe("genomics/run/both.bin", b"12345")
    fs.pipe("genomics/run/s3.bin", b"123")
    (tiers.pfs_dir / "run").mkdir()
    (tiers.pfs_dir / "run" / "both.bin").write_bytes(b"12345")
    return tiers


def test_cli_ls_long_shows_every_tier(capsysbinary, genomics):
    both, write = ",".join(genomics.tier_names), genomics.write
    out = cli(capsysbinary, "ls", "-l", "aif://genomics/run/both.bin")
    assert out.split() == ["5", both, "aif://genomics/run/both.bin"]
    out = cli(capsysbinary, "ls", "-l", "aif://genomics/run/s3.bin")
    assert out.split() == ["3", write, "aif://genomics/run/s3.bin"]
    out = cli(capsysbinary, "ls", "-l", "-r", "aif://genomics")
    assert [line.split() for line in out.splitlines()] == [
        ["5", both, "aif://genomics/run/both.bin"],
        ["3", write, "aif://genomics/run/s3.bin"],
    ]


@pytest.mark.parametrize("recursive", [[], ["-r"]], ids=["ls", "ls-r"])
def test_cli_ls_json_has_tiers(capsysbinary, genomics, recursive):
    write = [genomics.write]
    out = cli(capsysbinary, "ls", *recursive, "--json", "aif://genomics/run")
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["genomics/run/both.bin"]["tiers"] == genomics.tier_names
    assert entries["genomics/run/s3.bin"]["tiers"] == write
    out = cli(capsysbinary, "ls", "--json", "aif://genomics/run/s3.bin")
    assert [(e["name"], e["tiers"]) for e in json.loads(out)] == [("genomics/run/s3.bin", write)]

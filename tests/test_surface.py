"""The whole fsspec surface on a two-tier mount (PFS read first, S3 writes)."""

from __future__ import annotations

import pickle

import fsspec


def test_surface_on_a_two_tier_mount(two_tier_fs, pfs_dir, tmp_path):
    fs = two_tier_fs
    fs.mkdir("both/run42")
    fs.pipe(
        {"both/run42/a.fastq": b"@r1\nACGT\n+\nIIII\n", "both/run42/b.fastq": b"@r2\nA\n+\nI\n"}
    )
    fs.pipe("both/run42/meta/info.json", b"{}")
    assert fs.exists("aif://both/run42/a.fastq")
    assert not fs.exists("both/run42/zzz")
    assert fs.isdir("both/run42") and fs.isfile("both/run42/a.fastq")
    assert fs.info("both/run42/a.fastq")["size"] == 16
    assert sorted(fs.glob("both/run42/*.fastq")) == ["both/run42/a.fastq", "both/run42/b.fastq"]
    assert sorted(fs.glob("aif://both/**/*.json")) == ["both/run42/meta/info.json"]
    walked = {root: sorted(files) for root, _dirs, files in fs.walk("both/run42")}
    assert walked == {"both/run42": ["a.fastq", "b.fastq"], "both/run42/meta": ["info.json"]}
    assert fs.du("both/run42") == 16 + 10 + 2
    assert fs.cat_file("both/run42/a.fastq", start=1, end=3) == b"r1"
    assert fs.cat_ranges(["both/run42/a.fastq", "both/run42/b.fastq"], [0, 4], [3, 5]) == [
        b"@r1",
        b"A",
    ]
    with fs.open("both/run42/new.txt", "w") as f:
        f.write("written through aif://\n")
    with fsspec.open("aif://both/run42/new.txt", "r", config=fs.config) as f:
        assert f.read() == "written through aif://\n"

    local = tmp_path / "local.bin"
    local.write_bytes(b"from disk")
    fs.put(str(local), "both/up/local.bin")
    fs.get("both/up/local.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == b"from disk"
    fs.cp("both/up/local.bin", "both/up/copy.bin")
    fs.mv("both/up/copy.bin", "both/up/moved.bin")
    assert fs.ls("both/up", detail=False) == ["both/up/local.bin", "both/up/moved.bin"]
    fs.rm("both/up", recursive=True)
    assert not fs.exists("both/up/local.bin")
    assert fs.ls("both", detail=False) == ["both/run42"]
    assert [e["name"] for e in fs.ls("aif://")] == ["both"]


def test_filesystem_and_open_files_pickle(two_tier_fs):
    two_tier_fs.pipe("both/p.bin", bytes(range(256)) * 100)
    clone = pickle.loads(pickle.dumps(two_tier_fs))
    assert clone.cat_file("both/p.bin", 0, 4) == bytes(range(4))
    with two_tier_fs.open("both/p.bin", "rb") as f:
        f.seek(256)
        again = pickle.loads(pickle.dumps(f))
        assert again.read(3) == bytes(range(3))


def test_mv_on_the_pfs_is_a_rename(pfs_fs, pfs_dir):
    pfs_fs.pipe("pfsonly/big.bin", b"x" * 1000)
    inode = (pfs_dir / "big.bin").stat().st_ino
    pfs_fs.mv("pfsonly/big.bin", "pfsonly/moved/big.bin")
    assert (pfs_dir / "moved" / "big.bin").stat().st_ino == inode

"""The PFS tier: no path leaves the root, and writes are atomic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import aifdata
from aifdata import PathEscape
from aifdata.connectors.pfs import PFSConnector


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("top secret")
    return secret


@pytest.mark.parametrize(
    "path",
    [
        "pfsonly/../outside/secret.txt",
        "pfsonly/a/../../outside/secret.txt",
        "aif:///etc/passwd",
        "pfsonly/%2e%2e/outside/secret.txt",
        "pfsonly/%2E%2e/outside/secret.txt",
        "pfsonly/..%2foutside/secret.txt",
    ],
)
@pytest.mark.parametrize("operation", ["cat", "open", "info", "ls", "pipe", "rm"])
def test_escapes_are_refused_on_every_operation(pfs_fs, outside, path, operation):
    calls = {
        "cat": lambda: pfs_fs.cat(path),
        "open": lambda: pfs_fs.open(path).read(),
        "info": lambda: pfs_fs.info(path),
        "ls": lambda: pfs_fs.ls(path),
        "pipe": lambda: pfs_fs.pipe(path, b"pwned"),
        "rm": lambda: pfs_fs.rm(path),
    }
    with pytest.raises(PathEscape):
        calls[operation]()
    assert (outside / "secret.txt").read_text() == "top secret"


def test_symlink_out_of_the_root_is_refused(pfs_fs, pfs_dir, outside):
    (pfs_dir / "link").symlink_to(outside)
    (pfs_dir / "file-link").symlink_to(outside / "secret.txt")
    for path in ("pfsonly/link/secret.txt", "pfsonly/file-link"):
        with pytest.raises(PathEscape, match="outside the tier root"):
            pfs_fs.cat(path)
    with pytest.raises(PathEscape):
        pfs_fs.pipe("pfsonly/link/new.txt", b"x")
    assert not (outside / "new.txt").exists()


def test_listings_do_not_show_symlinks_out_of_the_root(pfs_fs, pfs_dir, outside):
    """A link out of the tier would tell its target's size and times: it is not listed."""
    (pfs_dir / "kept.txt").write_bytes(b"in")
    (pfs_dir / "link").symlink_to(outside)
    (pfs_dir / "file-link").symlink_to(outside / "secret.txt")
    (pfs_dir / "inner-link").symlink_to(pfs_dir / "kept.txt")
    listed = pfs_fs.ls("pfsonly", detail=False)
    assert sorted(listed) == ["pfsonly/inner-link", "pfsonly/kept.txt"]
    assert pfs_fs.find("pfsonly", withdirs=True) == [
        "pfsonly",
        "pfsonly/inner-link",
        "pfsonly/kept.txt",
    ]


def test_symlink_inside_the_root_is_followed(pfs_fs, pfs_dir):
    (pfs_dir / "real").mkdir()
    (pfs_dir / "real" / "data.bin").write_bytes(b"inside")
    (pfs_dir / "alias").symlink_to(pfs_dir / "real")
    assert pfs_fs.cat("pfsonly/alias/data.bin") == b"inside"


def test_connector_refuses_absolute_and_dotdot(pfs_dir):
    conn = PFSConnector(aifdata.Tier.pfs(pfs_dir))
    for rel in ("/etc/passwd", "../x", "a/../../x"):
        with pytest.raises(PathEscape):
            conn.resolve(rel)


def test_failed_write_leaves_old_content_and_no_temp_file(pfs_fs, pfs_dir):
    pfs_fs.pipe("pfsonly/data.bin", b"old")
    with pytest.raises(RuntimeError), pfs_fs.open("pfsonly/data.bin", "wb") as f:
        f.write(b"new" * 1_000_000)
        raise RuntimeError("writer died")
    assert (pfs_dir / "data.bin").read_bytes() == b"old"
    assert os.listdir(pfs_dir) == ["data.bin"]


def test_new_file_invisible_until_closed(pfs_fs, pfs_dir):
    f = pfs_fs.open("pfsonly/new.bin", "wb")
    f.write(b"x" * 10_000_000)
    assert not pfs_fs.exists("pfsonly/new.bin")
    assert pfs_fs.ls("pfsonly", detail=False) == []
    f.close()
    assert pfs_fs.cat("pfsonly/new.bin") == b"x" * 10_000_000
    assert oct((pfs_dir / "new.bin").stat().st_mode & 0o777) != oct(0o600)


WRITER = """
import sys, time, aifdata
fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (aifdata.Tier.pfs(sys.argv[1]),)),)))
with fs.open("p/big.bin", "wb") as f:
    for _ in range(10_000):
        f.write(b"y" * 65536)
        print("wrote", flush=True)
        time.sleep(0.01)
"""


def test_killed_writer_leaves_no_visible_file(pfs_dir):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(pfs_dir)], stdout=subprocess.PIPE, text=True
    )
    for _ in range(100):  # let it write ~6 MiB, then kill it without warning
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.1)
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (aifdata.Tier.pfs(pfs_dir),)),)))
    assert not (pfs_dir / "big.bin").exists()
    assert fs.ls("p") == []


def test_ranges_and_negative_offsets(pfs_fs):
    pfs_fs.pipe("pfsonly/r.bin", bytes(range(100)))
    assert pfs_fs.cat_file("pfsonly/r.bin", 10, 20) == bytes(range(10, 20))
    assert pfs_fs.cat_file("pfsonly/r.bin", -5) == bytes(range(95, 100))
    assert pfs_fs.cat_file("pfsonly/r.bin", 90, 1000) == bytes(range(90, 100))
    assert pfs_fs.cat_file("pfsonly/r.bin", 200) == b""
    assert pfs_fs.cat_ranges(["pfsonly/r.bin"] * 2, [0, 50], [2, 52]) == [b"\x00\x01", b"23"]

"""Nothing left behind: a killed writer's temporary file names its owner and goes once the
owner is gone (never while it lives); a full disk removes the temporary file at once and
says which file, which tier and how much space is left."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aifdata
from aifdata.connectors import _atomic
from aifdata.connectors._atomic import (
    TEMP_SUFFIX,
    TempOwner,
    host_token,
    remove_stale_temporaries,
    start_ticks,
    temp_name,
)

#: Above every system's largest PID: never a live process.
DEAD_PID = 4_999_999
DAY = 24 * 3600


@pytest.fixture(autouse=True)
def fresh_sweeps(monkeypatch):
    """Each test sees directories as not yet swept by this process."""
    monkeypatch.setattr(_atomic, "_swept", {})


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(f"*{TEMP_SUFFIX}"))


def leftover(directory: Path, name: str, owner: str, age: float = 0.0) -> Path:
    """A temporary file as a writer with ``owner`` (``HOST.PID.START``) would leave it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".{name}.{owner}.0123abcd{TEMP_SUFFIX}"
    path.write_bytes(b"partial")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def dead_owner() -> str:
    return f"{host_token()}.{DEAD_PID}.12345"


# -- names ---------------------------------------------------------------------


def test_a_temporary_name_carries_host_pid_and_start_time():
    name = temp_name("reads.fastq")
    assert name.startswith(".reads.fastq.") and name.endswith(TEMP_SUFFIX)
    owner = TempOwner.of_name(name)
    assert owner == TempOwner(host_token(), os.getpid(), start_ticks(os.getpid()))
    assert owner is not None and owner.gone() is False


def test_a_long_name_keeps_its_temporary_name_within_the_limit(tmp_path):
    name = "é" * 120  # 240 bytes
    assert len(temp_name(name).encode()) <= 255
    target = tmp_path / name
    _atomic.write_atomically(str(target), b"x")
    assert target.read_bytes() == b"x"


@pytest.mark.skipif(start_ticks(os.getpid()) is None, reason="no /proc here: PIDs only")
def test_a_reused_pid_is_told_apart_by_its_start_time():
    me = TempOwner(host_token(), os.getpid(), start_ticks(os.getpid()))
    assert me.gone() is False
    assert TempOwner(me.host, me.pid, (me.start or 0) + 1).gone() is True


# -- what is removed and what is kept ------------------------------------------


def test_only_temporary_files_whose_owner_is_gone_are_removed(tmp_path):
    me = f"{host_token()}.{os.getpid()}.{start_ticks(os.getpid()) or 'x'}"
    dead = leftover(tmp_path / "a", "dead.bin", dead_owner())
    nested = leftover(tmp_path / "a" / "b" / "c", "deep.bin", dead_owner())
    live = leftover(tmp_path / "a", "live.bin", me, age=3 * DAY)
    remote_fresh = leftover(tmp_path / "a", "r1.bin", "elsewhere.42.99", age=DAY - 60)
    remote_old = leftover(tmp_path / "a", "r2.bin", "elsewhere.42.99", age=DAY + 60)
    old_style_fresh = tmp_path / "a" / f".x.bin.k3j4h5l6{TEMP_SUFFIX}"
    old_style_fresh.write_bytes(b"")
    plain = tmp_path / "a" / "data.bin"
    plain.write_bytes(b"keep")
    removed = remove_stale_temporaries(tmp_path)
    assert removed == sorted(str(p) for p in (dead, nested, remote_old))
    for kept in (live, remote_fresh, old_style_fresh, plain):
        assert kept.exists()
    assert remove_stale_temporaries(str(tmp_path)) == []


def test_a_live_writers_temporary_file_survives(tmp_path):
    writer = _atomic.AtomicWriter(str(tmp_path / "w.bin"))
    writer.write(b"x" * 10)
    writer.flush()
    assert remove_stale_temporaries(tmp_path) == []
    assert len(temps(tmp_path)) == 1
    writer.close()
    assert (tmp_path / "w.bin").read_bytes() == b"x" * 10
    assert temps(tmp_path) == []


def test_a_missing_directory_is_not_found(tmp_path):
    with pytest.raises(aifdata.NotFound, match="no such directory"):
        remove_stale_temporaries(tmp_path / "nowhere")


# -- who removes them ----------------------------------------------------------


def test_a_write_into_the_directory_removes_them_and_nothing_below(pfs_fs, pfs_dir):
    here = leftover(pfs_dir / "d", "old.bin", dead_owner())
    below = leftover(pfs_dir / "d" / "e", "old.bin", dead_owner())
    pfs_fs.pipe("aif://pfsonly/d/new.bin", b"x")
    assert not here.exists()
    assert below.exists()  # a write looks at its own directory only


def test_a_live_writers_file_survives_a_write_beside_it(pfs_fs, pfs_dir):
    with pfs_fs.open("aif://pfsonly/d/slow.bin", "wb") as slow:
        slow.write(b"s" * 100)
        slow.flush()
        pfs_fs.pipe("aif://pfsonly/d/quick.bin", b"q")
        assert len(temps(pfs_dir / "d")) == 1
    assert pfs_fs.cat("aif://pfsonly/d/slow.bin") == b"s" * 100
    assert temps(pfs_dir / "d") == []


def test_an_ingest_walk_removes_them_and_records_none(pfs_fs, pfs_dir, tmp_path):
    pfs_fs.pipe("aif://pfsonly/run1/a.txt", b"a")
    stale = leftover(pfs_dir / "run1" / "sub", "b.txt", dead_owner())
    catalog = aifdata.Catalog(tmp_path / "catalog.db", config=pfs_fs.config)
    ds = catalog.ingest("aif://pfsonly/run1", "lab/run1")
    assert [f.path for f in ds.files] == ["a.txt"]
    assert not stale.exists()


def test_a_copy_to_a_local_directory_removes_them(tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello")
    stale = leftover(tmp_path / "out", "src.txt", dead_owner())
    aifdata.copy(str(src), str(tmp_path / "out") + "/", config=aifdata.Config(()))
    assert (tmp_path / "out" / "src.txt").read_bytes() == b"hello"
    assert not stale.exists()


def test_an_fsspec_tier_names_its_owner_and_removes_stale_ones():
    import fsspec

    url = f"memory://leftovers-{os.getpid()}-{time.monotonic_ns()}"
    mem = fsspec.filesystem("memory")
    stale = f"{url}/d/.x.bin.{dead_owner()}.0123abcd{TEMP_SUFFIX}"
    mem.pipe_file(stale, b"partial")
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("m", (aifdata.Tier.fsspec(url),)),)))
    with fs.open("aif://m/d/y.bin", "wb") as f:
        f.write(b"y")
        (temp,) = [p for p in mem.find(url) if p.endswith(TEMP_SUFFIX)]
        assert TempOwner.of_name(temp.rpartition("/")[2]) is not None
    assert not mem.exists(stale)
    assert fs.cat("aif://m/d/y.bin") == b"y"
    mem.rm(url, recursive=True)


# -- a full disk ----------------------------------------------------------------


@pytest.fixture
def disk_full(monkeypatch):
    """Temporary files whose writes fail as on a full disk (their descriptor is /dev/full)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    real = _atomic.temp_path_for

    def on_full_disk(target, tier=None):
        fd, path = real(target, tier)
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, fd)
        os.close(full)
        return fd, path

    monkeypatch.setattr(_atomic, "temp_path_for", on_full_disk)


def _says_disk_full(exc: BaseException, target: Path, tier: str) -> None:
    message = str(exc)
    assert isinstance(exc, aifdata.StorageError)
    assert str(target) in message and "no space left on device" in message
    assert tier in message and " free of " in message and "mounted at /" in message
    assert isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.ENOSPC


@pytest.mark.parametrize(
    "write",
    [
        lambda fs, src: fs.pipe("aif://pfsonly/d/big.bin", b"z" * 2**20),
        lambda fs, src: fs.put(str(src), "aif://pfsonly/d/big.bin"),
        lambda fs, src: fs.cp("aif://pfsonly/src.bin", "aif://pfsonly/d/big.bin"),
        lambda fs, src: aifdata.copy(str(src), "aif://pfsonly/d/big.bin", config=fs.config),
    ],
    ids=["pipe", "put", "cp", "copy"],
)
def test_a_full_disk_names_file_tier_and_free_space_and_leaves_nothing(
    pfs_fs, pfs_dir, tmp_path, disk_full, write
):
    src = tmp_path / "src.bin"
    src.write_bytes(b"z" * 2**20)
    (pfs_dir / "src.bin").write_bytes(b"z" * 2**20)
    with pytest.raises(aifdata.StorageError) as caught:
        write(pfs_fs, src)
    _says_disk_full(caught.value, pfs_dir / "d" / "big.bin", f"tier 'pfs' at {pfs_dir}")
    assert sorted(os.listdir(pfs_dir / "d")) == []


def test_a_full_disk_while_streaming_drops_the_rest_and_publishes_nothing(
    pfs_fs, pfs_dir, disk_full
):
    f = pfs_fs.open("aif://pfsonly/d/big.bin", "wb", block_size=1024)
    with pytest.raises(aifdata.StorageError, match="no space left"):
        f.write(b"z" * 4096)
    assert os.listdir(pfs_dir / "d") == []  # removed at once, not when closed
    f.write(b"more")  # a caller that writes on is not failed twice
    f.close()
    assert os.listdir(pfs_dir / "d") == []


def test_a_full_disk_under_a_local_copy_names_the_file(tmp_path, disk_full):
    src = tmp_path / "src.bin"
    src.write_bytes(b"z" * 2**20)
    with pytest.raises(aifdata.StorageError, match=r"out/big\.bin: no space left on device"):
        aifdata.copy(str(src), str(tmp_path / "out" / "big.bin"), config=aifdata.Config(()))
    assert os.listdir(tmp_path / "out") == []


def test_an_exceeded_quota_at_fsync_is_named_and_removes_the_temporary_file(
    pfs_fs, pfs_dir, monkeypatch
):
    def over_quota(fd):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(_atomic.os, "fsync", over_quota)
    with pytest.raises(aifdata.StorageError, match=r"d/q.bin: disk quota exceeded \(tier 'pfs'"):
        pfs_fs.pipe("aif://pfsonly/d/q.bin", b"q")
    assert os.listdir(pfs_dir / "d") == []


# -- a client killed mid-stage (e2e) ---------------------------------------------

STAGE_AND_STALL = """
import sys, time
import aifdata
from aifdata.catalog import _stage

def stall(src, dst, **kw):
    dst.write(src.read(65536))
    dst.flush()
    print("writing", flush=True)
    time.sleep(600)

_stage.copy_stream = stall
config = aifdata.load_config(sys.argv[1])
aifdata.Catalog(sys.argv[2], config=config).stage("lab/run1", to="scratch", workers=1)
"""

HOLD_A_WRITER = """
import sys, time
from aifdata.connectors import AtomicWriter

w = AtomicWriter(sys.argv[1])
w.write(b"live" * 1000)
w.flush()
print("holding", flush=True)
time.sleep(600)
"""


def _child(script: str, *args: str, ready: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == ready
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.e2e
def test_a_stage_killed_mid_copy_leaves_a_temporary_file_that_the_next_stage_removes(tmp_path):
    archive, scratch = tmp_path / "archive", tmp_path / "scratch"
    (archive / "run1").mkdir(parents=True)
    scratch.mkdir()
    (archive / "run1" / "reads.bin").write_bytes(os.urandom(2**20))
    config_file = tmp_path / "aifdata.toml"
    config_file.write_text(
        f'[mounts.lab]\nwrite_tier = "archive"\n'
        f'[mounts.lab.archive]\nkind = "pfs"\npath = "{archive}"\n'
        f'[mounts.lab.scratch]\nkind = "pfs"\npath = "{scratch}"\n'
    )
    config = aifdata.load_config(config_file)
    catalog = aifdata.Catalog(tmp_path / "catalog.db", config=config)
    catalog.ingest("aif://lab/run1", "lab/run1")

    stager = _child(STAGE_AND_STALL, str(config_file), str(catalog.path), ready="writing")
    _kill(stager)
    (killed,) = temps(scratch)
    assert not (scratch / "run1" / "reads.bin").exists()

    holder = _child(HOLD_A_WRITER, str(scratch / "run1" / "other.bin"), ready="holding")
    try:
        report = catalog.stage("lab/run1", to="scratch")
        assert report.copied == ("reads.bin",)
        assert (scratch / "run1" / "reads.bin").read_bytes() == (
            archive / "run1" / "reads.bin"
        ).read_bytes()
        left = temps(scratch)
        assert killed not in left
        assert len(left) == 1 and left[0].startswith(".other.bin.")  # its owner lives
    finally:
        _kill(holder)
    assert [Path(p).name for p in remove_stale_temporaries(scratch)] == left
    assert temps(scratch) == []


def test_ingest_of_a_local_directory_records_no_temporary_file_and_removes_none(
    tmp_path, monkeypatch
):
    """An ingest only reads its source: it records no temporary file and removes none."""
    monkeypatch.setenv("AIFDATA_HOME", str(tmp_path / "home"))
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "data.bin").write_bytes(b"data")
    dead = leftover(src / "d", "half.bin", dead_owner())
    live = _atomic.AtomicWriter(str(src / "d" / "being-written.bin"))
    live.write(b"x")
    live.flush()
    try:
        ds = aifdata.Catalog().ingest(str(src), "lab/src")
        assert [f.path for f in ds.files] == ["d/data.bin"]
        assert dead.exists() and len(temps(src / "d")) == 2
    finally:
        live.close()


def test_a_hydration_lease_is_never_listed(tmp_path):
    from aifdata.connectors.pfs import PFSConnector

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.bin").write_bytes(b"x")
    (tmp_path / "d" / ".f.bin.aif-lease").write_text("host 1 token x")
    (tmp_path / "d" / ".g.bin.aif-lease.0a1b2c.broken").write_text("host 1 token x")
    conn = PFSConnector(aifdata.Tier.pfs(tmp_path))
    assert [i["name"] for i in conn.ls("d")] == ["d/f.bin"]
    assert list(conn.find("")) == ["d/f.bin"]

"""The hydration lease: exclusive, renewed while held, taken over once its holder died."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from aifdata.connectors._atomic import host_token
from aifdata.managed._lease import Lease, lease_path


def _age(path: str, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_one_holder_at_a_time_and_release_frees_it(tmp_path: Path) -> None:
    target = str(tmp_path / "reads.fastq")
    first, second = Lease(target, 30), Lease(target, 30)
    assert first.acquire()
    assert os.path.basename(first.path) == ".reads.fastq.aif-lease"
    assert not second.acquire()
    first.release()
    assert not os.path.exists(first.path)
    assert second.acquire()
    second.release()


def test_the_lease_file_names_its_holder(tmp_path: Path) -> None:
    with Lease(str(tmp_path / "f"), 30) as lease:
        assert lease.acquire()
        _host, pid, token, _start = Path(lease.path).read_text().split()
        assert int(pid) == os.getpid() and len(token) == 16
        assert lease.held


def test_a_held_lease_is_renewed_and_never_taken(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    holder = Lease(target, 1.5)  # long enough that a busy machine still runs its heartbeat
    assert holder.acquire()
    # Two renewals seen, each after aging the lease by 0.5 s: without a heartbeat (every
    # 0.5 s) the lease would go stale 1 s later and a waiter would break in. Waiting on the
    # renewals themselves, not on a fixed span of time, shows the same in about 1 s.
    for _ in range(2):
        _age(holder.path, 0.5)
        aged = os.stat(holder.path).st_mtime
        give_up = time.monotonic() + 60.0  # only so that a broken heartbeat cannot hang
        while os.stat(holder.path).st_mtime == aged:  # until the heartbeat renews it
            assert not Lease(target, 1.5).acquire()  # no one breaks in meanwhile
            assert time.monotonic() < give_up, "the heartbeat never renewed the lease"
            time.sleep(0.05)
        assert not Lease(target, 1.5).acquire()
    assert holder.held
    holder.release()


def test_a_fresh_lease_of_an_exited_process_of_this_host_is_taken_at_once(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    Path(lease_path(target)).write_text(f"{host_token()} 999999999 0123456789abcdef x")
    taker = Lease(target, 30)
    assert taker.acquire()  # no wait for the lease to expire: its holder is gone
    taker.release()


def test_a_fresh_lease_of_another_host_is_left_to_expire(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    Path(lease_path(target)).write_text("otherhost-0123abcd 999999999 0123456789abcdef x")
    assert not Lease(target, 30).acquire()


def test_a_stale_lease_is_broken_and_taken_over(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    Path(lease_path(target)).write_text("deadhost 1 0123456789abcdef")
    _age(lease_path(target), 60)
    taker = Lease(target, 30)
    assert taker.acquire()
    assert taker.held
    assert [p.name for p in tmp_path.iterdir()] == [".f.aif-lease"]  # nothing left aside
    taker.release()


def test_a_lease_left_empty_by_a_holder_killed_at_once_is_taken_over(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    Path(lease_path(target)).write_text("")
    _age(lease_path(target), 60)
    taker = Lease(target, 30)
    assert taker.acquire()
    taker.release()


def test_a_holder_that_lost_its_lease_does_not_renew_or_remove_the_new_one(
    tmp_path: Path,
) -> None:
    target = str(tmp_path / "f")
    old = Lease(target, 0.3)
    assert old.acquire()
    old._stop.set()  # paused past its lease: no heartbeat
    old._beat.join()  # type: ignore[union-attr]
    _age(old.path, 5)
    new = Lease(target, 0.3)
    assert new.acquire()
    assert not old.held
    old.release()
    assert new.held
    new.release()


def test_threads_waiting_on_one_file_do_the_work_once(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    done = threading.Event()
    inside, most, works = [0], [0], []
    lock = threading.Lock()

    def reader() -> None:
        lease = Lease(target, 5)
        if not lease.wait(done.is_set):
            return
        with lease:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            if not done.is_set():
                works.append(1)
                time.sleep(0.05)
                done.set()
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=reader) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert works == [1]
    assert most == [1]
    assert not os.path.exists(lease_path(target))


# -- processes (e2e) -----------------------------------------------------------


def _hold_forever(target: str, ready: object) -> None:
    lease = Lease(target, 0.5)
    assert lease.acquire()
    ready.set()  # type: ignore[attr-defined]
    time.sleep(600)


def _count_work(target: str, done: str, log: str) -> None:
    lease = Lease(target, 5)
    if lease.wait(lambda: os.path.exists(done)):
        with lease:
            if not os.path.exists(done):
                with open(log, "a") as f:
                    f.write(f"{os.getpid()}\n")
                time.sleep(0.1)
                Path(done).write_text("x")


@pytest.mark.e2e
def test_a_killed_holder_is_taken_over_after_the_lease_time(tmp_path: Path) -> None:
    target = str(tmp_path / "f")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_forever, args=(target, ready))
    holder.start()
    try:
        assert ready.wait(60)
        assert not Lease(target, 0.5).acquire()  # alive: renewed
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join()
        taker = Lease(target, 0.5)
        assert taker.wait(lambda: False)  # waits out the dead lease, then takes it
        assert taker.held
        taker.release()
    finally:
        holder.kill()
        holder.join()


@pytest.mark.e2e
def test_processes_waiting_on_one_file_do_the_work_once(tmp_path: Path) -> None:
    target, done, log = (str(tmp_path / n) for n in ("f", "done", "log"))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_count_work, args=(target, done, log)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    assert len(Path(log).read_text().split()) == 1

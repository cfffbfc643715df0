"""Writers of one catalog file queue for it: the threads of a process on a lock, and the
processes of a machine on ``flock`` of a lock file beside the catalog (``catalog.db-lock``).

Without this, writers wait in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15 ms ...
between tries: under many writers (a service's workers recording audit rows, a cluster's
ingest) each wait costs more than the write. A queued writer wakes as the one before
ends. Processes queue this way only where the catalog keeps a write-ahead log on a
node-local disk; on a shared file system (where ``flock`` may be local to one node, or
not there at all) they queue through SQLite as before. A wait past the busy timeout goes
on without the queue, and a lock file this user cannot open is no queue: SQLite's own
lock decides, as always.

The lock file is opened for each outermost write and closed after it (no descriptor is
kept between writes); a child forked during a write closes its copy without unlocking,
which would unlock its parent's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator

#: Suffix of the lock file processes queue on.
LOCK_SUFFIX = "-lock"

_threads: dict[tuple[int, int], threading.RLock] = {}
_depth: dict[tuple[int, int], int] = {}  # of this process's hold (changed under its RLock)
_open_now: dict[tuple[int, int], int] = {}  # lock files held now, by their catalog
_made = threading.Lock()


def _forked() -> None:
    """A child's queue starts empty: what its parent's threads held is not the child's."""
    global _made
    _made = threading.Lock()
    _threads.clear()
    _depth.clear()
    for fd in _open_now.values():
        with contextlib.suppress(OSError):
            os.close(fd)  # closing a copy leaves the parent's lock in place
    _open_now.clear()


os.register_at_fork(after_in_child=_forked)


@contextlib.contextmanager
def queued(identity: tuple[int, int], lock_file: str | None, timeout: float) -> Iterator[None]:
    """Hold the writers' queue of the catalog file ``identity``: this process's threads,
    and where ``lock_file`` is given (an absolute path), other processes too; waiting at
    most ``timeout`` seconds. Reentrant within a thread."""
    with _made:
        lock = _threads.setdefault(identity, threading.RLock())
    deadline = time.monotonic() + timeout
    if not lock.acquire(timeout=timeout):
        yield
        return
    try:
        depth = _depth.get(identity, 0)
        fd = _take(lock_file, deadline) if depth == 0 and lock_file else None
        if fd is not None:
            _open_now[identity] = fd
        _depth[identity] = depth + 1
        try:
            yield
        finally:
            _depth[identity] = depth
            if fd is not None:
                _open_now.pop(identity, None)
                os.close(fd)  # and with it the lock
    finally:
        lock.release()


def _take(lock_file: str, deadline: float) -> int | None:
    """The lock file, open and locked (polling, each wait short, until ``deadline``);
    None when it cannot be opened or taken in time."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:  # made by another user: a shared lock needs no write right
        try:
            fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
    except OSError:
        return None
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        except OSError:  # no flock here
            break
    os.close(fd)
    return None

"""Writers of one catalog file queue for it: the threads of a process on a lock, and the
processes of a machine on ``flock`` of a lock file beside the catalog (``catalog.db-lock``).

Without this, writers wait in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15 ms ...
between tries: under many writers (a service's workers recording audit rows, a cluster's
ingest) each wait costs more than the write. A queued writer wakes as the one before
ends. Processes queue this way only where the catalog keeps a write-ahead log, on a
node-local disk; on a shared file system (where ``flock`` may be local to one node, or
not there at all) they queue through SQLite as before. A wait past the busy timeout goes
on without the queue: SQLite's own lock still decides.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

#: Suffix of the lock file processes queue on.
LOCK_SUFFIX = "-lock"

_threads: dict[tuple[int, int], threading.RLock] = {}
_held: dict[tuple[int, int], int] = {}  # depth of this process's hold (under its RLock)
_files: dict[tuple[int, int], int] = {}  # the lock file's descriptor, kept open
_made = threading.Lock()


def _forked() -> None:
    """A child's queue starts empty: what its parent's threads held is not the child's,
    and the parent's lock file descriptions are not used (unlocking one would unlock the
    parent's hold)."""
    _threads.clear()
    _held.clear()
    for fd in _files.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _files.clear()


os.register_at_fork(after_in_child=_forked)


@contextlib.contextmanager
def queued(identity: tuple[int, int], path: Path | None, timeout: float) -> Iterator[None]:
    """Hold the writers' queue of the catalog file ``identity`` (``path``: its lock file
    is ``path`` + ``-lock``; None: threads only), waiting at most ``timeout`` seconds.
    Reentrant within a thread."""
    with _made:
        lock = _threads.setdefault(identity, threading.RLock())
    deadline = time.monotonic() + timeout
    if not lock.acquire(timeout=timeout):
        yield
        return
    try:
        depth = _held.get(identity, 0)
        locked = depth == 0 and path is not None and _lock_file(identity, path, deadline)
        _held[identity] = depth + 1
        try:
            yield
        finally:
            _held[identity] = depth
            if locked:
                fcntl.flock(_files[identity], fcntl.LOCK_UN)
    finally:
        lock.release()


def _lock_file(identity: tuple[int, int], path: Path, deadline: float) -> bool:
    """Take the lock file (polling, each wait short, until ``deadline``): False when it
    cannot be opened or taken in time."""
    fd = _files.get(identity)
    if fd is None:
        try:
            fd = os.open(f"{path}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            return False
        _files[identity] = fd
    pause = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        except OSError:  # no flock here
            return False

"""A lease on one file that works on Lustre and GPFS without ``flock``.

The lease is a file beside its target, ``<dir>/.<name>.aif-lease``, made with
an exclusive create (``O_CREAT|O_EXCL``, honoured by every POSIX parallel file
system) and holding the holder's host, pid and a random token. While held, a
thread renews its mtime every ``duration / 3`` seconds. A lease whose mtime is
older than ``duration``, or whose holder is a process of this host that has
exited, belongs to a holder that died: it is broken (renamed to a unique name,
then checked to be the stale one) and may be taken over.
Two holders at once can only happen after a pause longer than the lease; it
costs a second copy, never a wrong byte (each copy is verified and renamed).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable

from ..connectors._atomic import LEASE_SUFFIX, TempOwner, host_token, start_ticks

#: The longest pause between two looks of a waiter (seconds).
MAX_POLL = 0.2


def lease_path(target: str) -> str:
    """Where the lease on ``target`` lives: a hidden file beside it."""
    directory, name = os.path.split(target)
    return os.path.join(directory, f".{name}{LEASE_SUFFIX}")


class Lease:
    """An expiring, exclusive claim on ``target`` (see the module docstring)."""

    def __init__(self, target: str, duration: float) -> None:
        self.path = lease_path(target)
        self.duration = float(duration)
        pid = os.getpid()
        start = start_ticks(pid)
        self.token = (
            f"{host_token()} {pid} {secrets.token_hex(8)} {'x' if start is None else start}"
        )
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """Whether this lease file is still ours (a longer pause may have lost it)."""
        return _read(self.path) == self.token

    def acquire(self) -> bool:
        """Take the lease if it is free or stale; True when taken (heartbeat started)."""
        if not self._create() and not (self._break_stale() and self._create()):
            return False
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="aif-lease", daemon=True)
        self._beat.start()
        return True

    def release(self) -> None:
        """Stop renewing and remove the lease file if it is still ours."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def wait(self, done: Callable[[], bool]) -> bool:
        """Poll (backing off to :data:`MAX_POLL`) until ``done()`` or the lease is
        ours; True when it was taken (then release it), False when ``done``."""
        delay = 0.005
        while True:
            if done():
                return False
            if self.acquire():
                return True
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, self.token.encode())
        finally:
            os.close(fd)
        return True

    def _break_stale(self) -> bool:
        """Move a stale lease aside; True when the lease is free to take now."""
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return True
        stale = _read(self.path)
        if stale is None:
            return True
        if age <= self.duration and not _holder_gone(stale):
            return False
        aside = f"{self.path}.{secrets.token_hex(6)}.broken"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # another waiter broke it first: race it for the create
        if _read(aside) != stale:  # a fresh lease was taken meanwhile: put it back
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.link(aside, self.path)
            _unlink(aside)
            return False
        _unlink(aside)
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.duration / 3):
            if not self.held:
                return  # broken by a waiter after a long pause: never renew another's
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder_gone(content: str) -> bool:
    """Whether a lease's holder is a process of this host that has exited (its lease
    is then broken at once, not after it expires)."""
    parts = content.split()
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    host, pid, _token, start = parts
    owner = TempOwner(host, int(pid), int(start) if start.isdigit() else None)
    return owner.gone() is True


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

"""Atomic file writes for POSIX and parallel file systems.

Bytes go to a hidden temporary file in the target's own directory (so the
final ``rename`` never crosses a file system), are fsynced, then renamed over
the target. Readers see the old file or the whole new one, never a part.
No locks are taken: Lustre and GPFS honour ``rename`` atomically but not
always ``flock``.

A temporary file's name carries its owner, ``.NAME.HOST.PID.START.RANDOM.aif-tmp``
(``START``: the process's start time in clock ticks since boot, read from
``/proc`` on Linux; ``x`` where it cannot be read). A writer killed before its
rename leaves one behind; :func:`remove_stale_temporaries` removes those whose
owner is gone: on this host, when the process has exited (or its PID now
belongs to a process started at another time); from another host, whose
processes cannot be checked from here, only once unchanged for
:data:`FOREIGN_TEMP_AGE`. A temporary file of a live writer is never removed,
and neither is any other file whose name ends in ``.aif-tmp``: only names in
this owner format, or the owner-less ``.NAME.XXXXXXXX.aif-tmp`` of older
aifdata versions (8 random characters), are aifdata's to remove.

``HOST`` is the host name, cut to 24 characters, then a short hash of the whole
host name and of this boot (``/proc/sys/kernel/random/boot_id``): two hosts
whose names differ only past the cut get different tokens, and the processes
of an earlier boot count as another host's.

A full disk (``ENOSPC``) or an exceeded quota (``EDQUOT``) removes the
temporary file at once and raises :class:`~aifdata.StorageError` naming the
target, its tier and the free space left.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from .._errors import NotFound, StorageError

if TYPE_CHECKING:
    from typing_extensions import Buffer

TEMP_SUFFIX = ".aif-tmp"
#: Ends the name of a hydration's lease beside its target (``.NAME.aif-lease``; a broken
#: one being put aside adds ``.XXXX.broken``): never listed, like a temporary file.
LEASE_SUFFIX = ".aif-lease"


def is_internal(name: str) -> bool:
    """Whether a directory entry is aifdata's own (a temporary file, a lease), not data."""
    return name.endswith(TEMP_SUFFIX) or LEASE_SUFFIX in name


#: A temporary file whose owner cannot be checked here (another host's, or one
#: named without an owner) is removed only after this many seconds unchanged.
FOREIGN_TEMP_AGE = 24 * 3600.0
#: How often one process sweeps one directory before a write into it (seconds).
SWEEP_INTERVAL = 600.0
#: The errors of a full file system or an exceeded quota.
DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
#: The PID namespace of a Linux host itself (``PROC_PID_INIT_INO``).
_INIT_PID_NAMESPACE = 0xEFFFFFFC
_NAME_MAX = 255


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: New files get the usual 0666 & ~umask, not a private 0600.
_FILE_MODE = 0o666 & ~_current_umask()


# -- owners ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TempOwner:
    """The process that made a temporary file: host, PID and start time (None: unknown)."""

    host: str
    pid: int
    start: int | None

    @classmethod
    def of_name(cls, name: str) -> TempOwner | None:
        """The owner written in a temporary file's name, or None (an older name, no owner)."""
        if not name.endswith(TEMP_SUFFIX):
            return None
        parts = name[: -len(TEMP_SUFFIX)].rsplit(".", 4)
        if len(parts) != 5 or not parts[0].startswith("."):
            return None
        _, host, pid, start, tag = parts
        if not (_HOST_TOKEN.fullmatch(host) and pid.isdigit() and _TAG.fullmatch(tag)):
            return None
        if start != "x" and not start.isdigit():
            return None
        return cls(host, int(pid), None if start == "x" else int(start))

    @classmethod
    def is_ours(cls, name: str) -> bool:
        """Whether ``name`` is an aifdata temporary name: with an owner, or in the
        owner-less form of older versions (``.NAME.XXXXXXXX.aif-tmp``)."""
        return cls.of_name(name) is not None or _LEGACY.fullmatch(name) is not None

    def gone(self) -> bool | None:
        """Whether this owner has exited; None when it cannot be told from this host."""
        if self.host != host_token():
            return None
        if not _pid_alive(self.pid):
            return True
        if self.start is None:
            return False
        start = start_ticks(self.pid)
        return start is not None and start != self.start


_HOST_TOKEN = re.compile(r"[A-Za-z0-9-]{1,48}")
_TAG = re.compile(r"[0-9a-f]{8}")
#: What ``tempfile.mkstemp(prefix=".NAME.", suffix=".aif-tmp")`` made in older versions.
_LEGACY = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX), re.DOTALL)
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def host_token() -> str:
    """This host as written in temporary names: the host name (letters, digits and dashes
    only, cut to 24 characters), a hash of the whole name and of this boot, and the PID
    namespace when it is not the host's own (containers that share a host name do not
    share PIDs)."""
    host = _host_part(socket.gethostname())
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return host if namespace == _INIT_PID_NAMESPACE else f"{host}-p{namespace:x}"


def _host_part(hostname: str) -> str:
    """``SHORT-HASH``: the readable start of ``hostname`` and 8 hex digits of a hash of
    all of it and of this boot's id (where the system has one)."""
    short = re.sub(r"[^A-Za-z0-9-]", "-", hostname)[:24] or "host"
    try:
        with open(_BOOT_ID, encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    digest = hashlib.sha256(f"{hostname}\0{boot}".encode()).hexdigest()[:8]
    return f"{short}-{digest}"


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat.rpartition(b")")[2].split()[19])  # field 22; comm may hold ')'
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or os.name != "posix":  # os.kill on Windows would end the process
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


_owner_cache: tuple[int, str] = (-1, "")


def _owner_part() -> str:
    """``HOST.PID.START`` of this process (computed again after a fork)."""
    global _owner_cache
    pid = os.getpid()
    if _owner_cache[0] != pid:
        start = start_ticks(pid)
        _owner_cache = (pid, f"{host_token()}.{pid}.{'x' if start is None else start}")
    return _owner_cache[1]


def temp_name(name: str) -> str:
    """A fresh hidden temporary name for a file to be published as ``name``."""
    owner = f".{_owner_part()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    room = _NAME_MAX - 1 - len(owner.encode())
    shown = name.encode()[:room].decode(errors="ignore")  # a long name stays within NAME_MAX
    return f".{shown}{owner}"


def is_stale(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether the temporary file ``name`` (last changed at ``mtime``) has no live owner.
    A name that is not aifdata's (:meth:`TempOwner.is_ours`) is never stale: it is a
    user's file that happens to end in ``.aif-tmp``."""
    owner = TempOwner.of_name(name)
    if owner is None and not TempOwner.is_ours(name):
        return False
    gone = owner.gone() if owner is not None else None
    if gone is None:
        return (time.time() if now is None else now) - mtime > FOREIGN_TEMP_AGE
    return gone


# -- removing what killed writers left -----------------------------------------


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files under ``directory`` (its whole tree) whose owner is gone;
    return their paths. Symlinked directories are not followed."""
    top = os.fspath(directory)
    if not os.path.isdir(top):
        raise NotFound(f"{top}: no such directory")
    removed: list[str] = []
    for here, _dirs, _files in os.walk(top):
        removed += _sweep(here)
    return sorted(removed)


def _sweep(directory: str) -> list[str]:
    """Remove the stale temporary files directly in ``directory``."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if entry.name.endswith(TEMP_SUFFIX) and remove_if_stale(entry, now):
            removed.append(entry.path)
    return removed


def remove_if_stale(entry: os.DirEntry[str], now: float | None = None) -> bool:
    """Remove one listed temporary file if its owner is gone; whether it was removed."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        if not is_stale(entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
            return False
        os.unlink(entry.path)
    except OSError:  # gone already, or not ours to remove: left alone
        return False
    return True


_swept: dict[str, float] = {}


def sweep_due(key: str) -> bool:
    """Whether this process should sweep the directory ``key`` now (at most once every
    :data:`SWEEP_INTERVAL` seconds); a yes counts as done."""
    now = time.monotonic()
    last = _swept.get(key)
    if last is not None and now - last < SWEEP_INTERVAL:
        return False
    if len(_swept) > 4096:
        _swept.clear()
    _swept[key] = now
    return True


def sweep_before_write(directory: str) -> None:
    """Remove stale temporary files in ``directory`` (its entries only, not below) unless
    this process did so lately."""
    if sweep_due(directory):
        _sweep(directory)


# -- a full disk ---------------------------------------------------------------


def disk_full_error(exc: OSError, target: str, tier: str | None = None) -> StorageError | None:
    """The error to raise for a full file system or quota while writing ``target``
    (None for any other error): names the file, its tier and the free space."""
    if exc.errno not in DISK_FULL:
        return None
    what = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
    where = f" (tier {tier})" if tier else ""
    return StorageError(
        f"{target}: {what}{where}; {free_space(os.path.dirname(target) or '.')};"
        " the partial file was removed"
    )


def free_space(directory: str) -> str:
    """``"N MiB free of M on the file system mounted at X"`` for ``directory``."""
    path = _existing(directory)
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):  # no statvfs on Windows
        return "free space unknown"
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return f"{_size(free)} free of {_size(total)} on the file system mounted at {mount_point(path)}"


def mount_point(path: str) -> str:
    """The mount point of the file system that holds ``path`` (or would, if it were made)."""
    mount = _existing(path)
    while not os.path.ismount(mount) and mount != os.path.dirname(mount):
        mount = os.path.dirname(mount)
    return mount


def _existing(path: str) -> str:
    """``path`` or its nearest existing ancestor, absolute."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def _size(n: int) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{n} bytes" if i == 0 else f"{value:.1f} {units[i]}"


# -- writing -------------------------------------------------------------------


def temp_path_for(target: str, tier: str | None = None) -> tuple[int, str]:
    """Create a hidden temporary file beside ``target``, named for its owner; return
    (fd, path)."""
    directory, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = os.path.join(directory, temp_name(name))
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            full = disk_full_error(exc, target, tier)
            if full is None:
                raise
            raise full from exc
        os.fchmod(fd, _FILE_MODE)
        return fd, path
    raise FileExistsError(errno.EEXIST, "no free temporary name", target)


def fsync_directory(directory: str) -> None:
    """Persist a rename; best effort where the file system does not support it."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _CommitOnClose(io.FileIO):
    """A raw temp file that renames itself over the target when closed cleanly.

    A full disk removes the temporary file at once; what is written after that
    is dropped, and closing publishes nothing.
    """

    def __init__(self, fd: int, temp: str, target: str, tier: str | None) -> None:
        super().__init__(fd, "wb", closefd=True)
        self.temp, self.target, self.tier, self.discarded = temp, target, tier, False

    def write(self, data: Buffer, /) -> int:
        if self.discarded:
            return memoryview(data).nbytes
        try:
            return super().write(data)
        except OSError as exc:
            full = disk_full_error(exc, self.target, self.tier)
            if full is None:
                raise
            self.discarded = True  # the temporary file goes now, not when closed
            _unlink_quietly(self.temp)
            raise full from exc

    def close(self) -> None:
        if self.closed:
            return
        if self.discarded:
            super().close()
            _unlink_quietly(self.temp)
            return
        try:
            os.fsync(self.fileno())
        except OSError as exc:
            super().close()
            _unlink_quietly(self.temp)
            full = disk_full_error(exc, self.target, self.tier)
            if full is None:
                raise
            raise full from exc
        except BaseException:
            super().close()
            _unlink_quietly(self.temp)
            raise
        super().close()
        os.replace(self.temp, self.target)
        fsync_directory(os.path.dirname(self.target))


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class AtomicWriter(io.BufferedWriter):
    """A buffered binary writer that publishes ``target`` only on a clean close.

    Leaving a ``with`` block by an exception discards the temporary file.
    ``tier`` names the tier in errors (a full disk names the file, the tier and
    the free space).
    """

    raw: _CommitOnClose

    def __init__(self, target: str, buffer_size: int = 4 * 2**20, tier: str | None = None) -> None:
        fd, temp = temp_path_for(target, tier)
        super().__init__(_CommitOnClose(fd, temp, target, tier), buffer_size)

    @property
    def name(self) -> str:
        return self.raw.target

    def discard(self) -> None:
        """Drop everything written; the target is left as it was."""
        if self.closed:
            return
        self.raw.discarded = True
        with contextlib.suppress(OSError):
            super().close()

    def close(self) -> None:
        """Flush, fsync and publish; on any failure nothing is published."""
        if self.closed:
            return
        try:
            self.flush()
        except BaseException:
            self.discard()
            raise
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


def write_atomically(target: str, data: bytes | memoryview, tier: str | None = None) -> None:
    """Write ``data`` to ``target`` atomically."""
    size = max(1, min(len(data), 4 * 2**20))
    with AtomicWriter(target, buffer_size=size, tier=tier) as f:
        f.write(data)

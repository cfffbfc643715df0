"""Atomic file writes for POSIX and parallel file systems.

Bytes go to a hidden temporary file in the target's own directory (so the
final ``rename`` never crosses a file system), are fsynced, then renamed over
the target. Readers see the old file or the whole new one, never a part.
No locks are taken: Lustre and GPFS honour ``rename`` atomically but not
always ``flock``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from types import TracebackType

TEMP_SUFFIX = ".aif-tmp"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: New files get the usual 0666 & ~umask, not mkstemp's private 0600.
_FILE_MODE = 0o666 & ~_current_umask()


def temp_path_for(target: str) -> tuple[int, str]:
    """Create a hidden temporary file beside ``target``; return (fd, path)."""
    directory, name = os.path.split(target)
    fd, path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=TEMP_SUFFIX)
    os.fchmod(fd, _FILE_MODE)
    return fd, path


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
    """A raw temp file that renames itself over the target when closed cleanly."""

    def __init__(self, fd: int, temp: str, target: str) -> None:
        super().__init__(fd, "wb", closefd=True)
        self.temp, self.target, self.discarded = temp, target, False

    def close(self) -> None:
        if self.closed:
            return
        if self.discarded:
            super().close()
            _unlink_quietly(self.temp)
            return
        try:
            os.fsync(self.fileno())
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
    """

    raw: _CommitOnClose

    def __init__(self, target: str, buffer_size: int = 4 * 2**20) -> None:
        fd, temp = temp_path_for(target)
        super().__init__(_CommitOnClose(fd, temp, target), buffer_size)

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


def write_atomically(target: str, data: bytes | memoryview) -> None:
    """Write ``data`` to ``target`` atomically."""
    with AtomicWriter(target, buffer_size=max(1, min(len(data), 4 * 2**20))) as f:
        f.write(data)

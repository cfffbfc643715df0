"""The parallel-file-system tier: a POSIX directory that no path can leave.

Reads are plain buffered file reads (as fast as ``open().read()``); writes are
atomic (temporary file, fsync, rename). Every path is resolved inside the
tier's root: ``..``, absolute paths and symlinks that lead outside are refused
with :class:`~aifdata.PathEscape`.

A root that does not exist is not created by a write (an unmounted Lustre
would fill the disk below its mount point): the write fails naming the root,
unless the tier says ``create = true``. A write first removes what killed
writers left in its directory (:func:`~aifdata.connectors._atomic.remove_stale_temporaries`),
and so does a walk (``find``) of the tree, as an ingest makes.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, ClassVar

from .._errors import NotFound, PathEscape, StorageError
from .._units import parse_percent
from ._atomic import (
    TEMP_SUFFIX,
    AtomicWriter,
    is_internal,
    mount_point,
    remove_if_stale,
    sweep_before_write,
    write_atomically,
)
from ._base import Connector, FileStat, Info
from ._kind import BYTES, FLAG, OptionCheck, StorageKind
from ._rules import DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, RULE_OPTIONS
from ._tier import Tier
from ._writer import TierWriter

#: Large, aligned reads suit Lustre and GPFS stripes.
DEFAULT_BLOCK_SIZE = 4 * 2**20
#: How long a directory's resolved real path is trusted before it is checked again.
_REALPATH_TTL = 2.0


class PFSKind(StorageKind):
    """A directory of a POSIX, Lustre or GPFS file system mounted on this machine."""

    name = "pfs"
    location_key = "path"
    location_shape = "a directory path"
    options: ClassVar[dict[str, OptionCheck]] = {
        "block_size": BYTES,
        "create": FLAG,
        **RULE_OPTIONS,
    }
    local = True
    connector = "aifdata.connectors.pfs:PFSConnector"

    def option_problem(self, options: Mapping[str, Any]) -> tuple[str, str] | None:
        """Each option's own check, then whether the release rule holds together."""
        found = super().option_problem(options)
        if found is not None:
            return found
        high = options.get("high_water", f"{DEFAULT_HIGH_WATER:.0%}")
        low = options.get("low_water", f"{DEFAULT_LOW_WATER:.0%}")
        if parse_percent(low) >= parse_percent(high):
            return "low_water", f"{low} must be below high_water ({high})"
        return None

    def normalise(self, location: str) -> str:
        return os.path.abspath(os.path.expanduser(location.removeprefix("file://")))

    def serves(self, url: str) -> bool:
        return url.startswith("file://") or "://" not in url

    def aliases(self, url: str) -> set[str]:
        """The path, absolute, and its real path (a symlink is another name of its target)."""
        path = os.path.abspath(url.removeprefix("file://"))
        return {path, os.path.realpath(path)}


PFS_KIND = PFSKind()


class PFSConnector(Connector):
    """A tier rooted at a directory of a POSIX (or Lustre, GPFS) file system."""

    supports_empty_directories = True

    def __init__(self, tier: Tier) -> None:
        super().__init__(tier)
        self.root = tier.url
        self.real_root = os.path.realpath(self.root)
        self._url_prefix = self.root.rstrip("/") + "/"
        self.block_size = int(tier.options.get("block_size", DEFAULT_BLOCK_SIZE))
        self.create = bool(tier.options.get("create", False))
        self._dir_cache: dict[str, tuple[float, str]] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return PFSConnector, (self.tier,)  # caches of real paths stay on this machine

    def _label(self) -> str:
        return f"{self.tier.name!r} at {self.root}"

    def _require_root(self) -> None:
        """Before a write makes directories: the root must exist, or the tier must say
        ``create = true`` (then it is made now)."""
        if os.path.isdir(self.real_root):
            return
        if os.path.lexists(self.root):
            raise NotADirectoryError(
                errno.ENOTDIR, f"tier {self._label()}: the root is not a directory", self.root
            )
        if not self.create:
            raise NotFound(
                f"tier {self.tier.name!r}: its root {self.root} does not exist; a write would"
                f" create it on the file system mounted at {mount_point(self.root)}. Is the"
                " tier's file system mounted? (create = true in the tier lets aifdata create"
                " its root)"
            )
        os.makedirs(self.root, exist_ok=True)
        self.real_root = os.path.realpath(self.root)
        self._dir_cache.clear()

    # -- paths ---------------------------------------------------------------

    def url(self, rel: str) -> str:
        return self._url_prefix + rel if rel else self.root

    def resolve(self, rel: str) -> str:
        """The absolute path of ``rel``, after checking that it stays in the root."""
        if rel.startswith("/") or os.path.isabs(rel):
            raise PathEscape(f"{self.root}: refusing absolute path {rel!r}")
        if any(part == ".." for part in rel.split("/")):
            raise PathEscape(f"{self.root}: refusing '..' in {rel!r}")
        if not rel:
            return self.real_root
        directory, _, name = rel.rpartition("/")
        real_dir = self._real_directory(directory)
        full = os.path.join(real_dir, name)
        if os.path.islink(full):
            self._check_inside(os.path.realpath(full), rel)
        return full

    def _real_directory(self, directory: str) -> str:
        now = time.monotonic()
        cached = self._dir_cache.get(directory)
        if cached is not None and now - cached[0] < _REALPATH_TTL:
            return cached[1]
        real = os.path.realpath(os.path.join(self.real_root, directory))
        self._check_inside(real, directory)
        if len(self._dir_cache) > 4096:
            self._dir_cache.clear()
        self._dir_cache[directory] = (now, real)
        return real

    def _check_inside(self, real: str, rel: str) -> None:
        if real != self.real_root and not real.startswith(self.real_root + os.sep):
            raise PathEscape(f"{self.url(rel)}: resolves to {real}, outside the tier root")

    # -- metadata ------------------------------------------------------------

    def info(self, rel: str) -> Info:
        full = self.resolve(rel)
        try:
            st = os.stat(full)
        except FileNotFoundError:
            raise self._not_found(rel) from None
        except NotADirectoryError:
            raise self._not_found(rel) from None
        return _info(rel, st)

    def ls(self, rel: str) -> list[Info]:
        full = self.resolve(rel)
        try:
            entries = list(os.scandir(full))
        except FileNotFoundError:
            raise self._not_found(rel) from None
        except NotADirectoryError:
            return [self.info(rel)]
        out = []
        for entry in entries:
            if is_internal(entry.name) or not _inside(entry, self.real_root):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # a dangling symlink or a racing delete
                continue
            out.append(_info(_join(rel, entry.name), st))
        return out

    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        full = self.resolve(rel)
        if not os.path.isdir(full):
            return {rel: self.info(rel)} if os.path.exists(full) else {}
        out: dict[str, Info] = {}
        pending = [(full, rel)]
        while pending:  # one thread: threads only fight over the GIL here
            infos, below = _scan_directory(*pending.pop(), withdirs, self.real_root)
            out.update(infos)
            pending.extend(below)
        return out

    def stats(self, rels: Iterable[str]) -> dict[str, FileStat]:
        out = {}
        for rel in rels:
            try:
                st = os.stat(self.resolve(rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                out[rel] = FileStat(
                    st.st_size, st.st_mtime, None, st.st_ino, st.st_dev, st.st_ctime_ns
                )
        return out

    # -- reads ---------------------------------------------------------------

    def cat_file(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        full = self.resolve(rel)
        try:
            if start is None and end is None:
                fd = os.open(full, _READ_FLAGS)
                try:
                    return _read_fd(fd, full)
                finally:
                    os.close(fd)
            with open(full, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                lo, hi = _bounds(start, end, size)
                f.seek(lo)
                return _read_exactly(f, hi - lo)
        except FileNotFoundError:
            raise self._not_found(rel) from None
        except IsADirectoryError:
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel)) from None

    def cat_files(self, rels: Sequence[str]) -> dict[str, bytes | Exception]:
        out: dict[str, bytes | Exception] = {}
        real_dirs: dict[str, str] = {}  # each directory resolved and checked once per call
        for rel in rels:
            try:
                out[rel] = self._read_whole(rel, real_dirs)
            except (OSError, ValueError) as exc:
                out[rel] = self._not_found(rel) if isinstance(exc, FileNotFoundError) else exc
        return out

    def _read_whole(self, rel: str, real_dirs: dict[str, str]) -> bytes:
        """Open without following a final symlink (one syscall fewer than a check)."""
        directory, _, name = rel.rpartition("/")
        if name in ("", ".", "..") or rel.startswith("/"):
            return self.cat_file(rel)
        real_dir = real_dirs.get(directory)
        if real_dir is None:
            real_dir = real_dirs[directory] = self._real_directory(directory)
        full = f"{real_dir}/{name}"
        try:
            fd = os.open(full, _READ_FLAGS | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = os.open(self.resolve(rel), _READ_FLAGS)  # a symlink: checked, then followed
        try:
            return _read_fd(fd, full)
        finally:
            os.close(fd)

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        try:
            return PFSFile(self, rel, block_size or self.block_size)
        except FileNotFoundError:
            raise self._not_found(rel) from None

    # -- writes --------------------------------------------------------------

    def _target(self, rel: str) -> str:
        if not rel:
            raise IsADirectoryError(errno.EISDIR, "cannot write to the tier root", self.root)
        full = self.resolve(rel)
        parent = os.path.dirname(full)
        if not os.path.isdir(parent):
            self._require_root()
            try:
                os.makedirs(parent, exist_ok=True)
            except FileExistsError:  # the parent is a file
                raise NotADirectoryError(
                    errno.ENOTDIR, "a parent is a file", self.url(rel)
                ) from None
        sweep_before_write(parent)
        if os.path.isdir(full):
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel))
        return full

    def open_write(self, rel: str, block_size: int | None = None) -> TierWriter:
        return AtomicWriter(self._target(rel), block_size or self.block_size, self._label())

    def pipe_file(self, rel: str, data: bytes) -> None:
        write_atomically(self._target(rel), data, self._label())

    def put_file(self, local_path: str, rel: str) -> None:
        target = self._target(rel)
        self._copy_atomically(local_path, target)

    def copy(self, rel1: str, rel2: str) -> None:
        source = self.resolve(rel1)
        if not os.path.exists(source):
            raise self._not_found(rel1)
        self._copy_atomically(source, self._target(rel2))

    def _copy_atomically(self, source: str, target: str) -> None:
        with (
            open(source, "rb") as src,
            AtomicWriter(target, self.block_size, self._label()) as dst,
        ):
            shutil.copyfileobj(src, dst, self.block_size)

    def move(self, rel1: str, rel2: str) -> None:
        source = self.resolve(rel1)
        if not os.path.lexists(source):
            raise self._not_found(rel1)
        target = self.resolve(rel2)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)

    def rm_file(self, rel: str) -> None:
        if not rel:
            raise PathEscape(f"{self.root}: refusing to delete the tier root")
        full = self.resolve(rel)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                os.rmdir(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            raise self._not_found(rel) from None
        except OSError as exc:
            raise StorageError(f"{self.url(rel)}: cannot delete: {exc.strerror}") from exc

    def rmdir(self, rel: str) -> None:
        if rel:
            try:
                os.rmdir(self.resolve(rel))
            except FileNotFoundError:
                raise self._not_found(rel) from None

    def makedirs(self, rel: str) -> None:
        full = self.resolve(rel)
        if not os.path.isdir(full):
            self._require_root()
            os.makedirs(full, exist_ok=True)


class PFSFile(io.BufferedReader):
    """A buffered reader of one file of a PFS tier. It pickles (Dask and PyTorch ship
    open files to workers) as its tier, path and position: the copy opens the file
    again, through the tier's checks, and seeks there."""

    def __init__(self, connector: PFSConnector, rel: str, block_size: int) -> None:
        raw = io.FileIO(connector.resolve(rel), "rb")
        super().__init__(raw, block_size)
        self.connector, self.rel, self.block_size = connector, rel, block_size
        #: bytes in the file when opened (fsspec's read_block and callers of its files use it)
        self.size = os.fstat(raw.fileno()).st_size

    def __reduce__(self) -> tuple[Any, ...]:
        return _reopen, (self.connector, self.rel, self.block_size, self.tell())


def _reopen(connector: PFSConnector, rel: str, block_size: int, position: int) -> BinaryIO:
    reader = connector.open_read(rel, block_size)
    reader.seek(position)
    return reader


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _read_fd(fd: int, name: str, st: os.stat_result | None = None) -> bytes:
    """All bytes of an open file: one read sized by fstat, one more to see end of file."""
    st = st or os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", name)
    first = os.read(fd, st.st_size)
    tail = os.read(fd, 1)  # b"" at end of file, without allocating a large buffer
    if not tail and len(first) == st.st_size:
        return first
    parts = [first, tail]
    while chunk := os.read(fd, 2**20):
        parts.append(chunk)
    return b"".join(parts)


def read_if_same(
    path: str, identity: tuple[int, int, int], start: int | None = None, end: int | None = None
) -> bytes | None:
    """The bytes of ``path`` (a range, fsspec-style) if the file opened is still the
    one whose (size, inode, ctime ns) is ``identity``, else None. A symlink is never
    followed: a path swapped for one, or for another file, reads nothing."""
    try:
        fd = os.open(path, _READ_FLAGS | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_size, st.st_ino, st.st_ctime_ns) != identity or not stat.S_ISREG(st.st_mode):
            return None
        if start is None and end is None:
            return _read_fd(fd, path, st)
        lo, hi = _bounds(start, end, st.st_size)
        with open(fd, "rb", buffering=0, closefd=False) as f:
            f.seek(lo)
            return _read_exactly(f, hi - lo)
    finally:
        os.close(fd)


def _inside(entry: os.DirEntry[str], real_root: str) -> bool:
    """Whether a listed entry stays in the tier: a symlink out of it is not shown (its
    target's size and times are not the tier's to tell; reading it is refused too)."""
    if not entry.is_symlink():
        return True
    real = os.path.realpath(entry.path)
    return real == real_root or real.startswith(real_root + os.sep)


def _scan_directory(
    directory: str, base: str, withdirs: bool, real_root: str
) -> tuple[dict[str, Info], list[tuple[str, str]]]:
    """One directory's files (and directories if asked), and the directories to descend."""
    out: dict[str, Info] = {}
    below: list[tuple[str, str]] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return out, below
    for entry in entries:
        path = f"{base}/{entry.name}" if base else entry.name
        if not _inside(entry, real_root):
            continue
        try:
            if entry.is_dir():
                if withdirs:
                    out[path] = _info(path, entry.stat())
                if not entry.is_symlink():  # as os.walk: never descend a link
                    below.append((entry.path, path))
            elif entry.name.endswith(TEMP_SUFFIX):
                remove_if_stale(entry)  # a killed writer's leftover goes on the next walk
            elif is_internal(entry.name):
                continue  # a hydration's lease
            else:
                out[path] = _info(path, entry.stat())
        except FileNotFoundError:
            continue
    return out, below


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


def _info(rel: str, st: os.stat_result) -> Info:
    is_dir = stat.S_ISDIR(st.st_mode)
    return {
        "name": rel,
        "size": 0 if is_dir else st.st_size,
        "type": "directory" if is_dir else "file",
        "mtime": st.st_mtime,
        "ino": st.st_ino,
        "mode": st.st_mode,
    }


def _bounds(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """Turn fsspec-style (possibly negative, possibly None) offsets into [lo, hi)."""
    lo = 0 if start is None else (max(size + start, 0) if start < 0 else min(start, size))
    hi = size if end is None else (max(size + end, 0) if end < 0 else min(end, size))
    return lo, max(lo, hi)


def _read_exactly(f: Any, n: int) -> bytes:
    """Read ``n`` bytes (fewer only at end of file) with as few syscalls as possible."""
    first: bytes = f.read(n)
    if len(first) == n or not first:
        return first
    parts, got = [first], len(first)
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)

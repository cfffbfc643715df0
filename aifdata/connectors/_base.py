"""What every connector offers the virtual filesystem.

A connector serves one :class:`~aifdata.Tier`. It speaks *tier-relative*
paths (``run42/reads.fastq``; ``""`` is the tier's root) and returns
fsspec-style info dicts whose ``name`` is tier-relative too. Paths from
``aif://`` arrive cleaned, but a connector is a boundary of its own: it refuses
(:class:`~aifdata.PathEscape`) or contains any path that would leave its root
(``..``, an absolute path, a symlink out of it).

Errors keep their builtin meaning: a missing path is a :class:`FileNotFoundError`
naming it, a file where a directory is needed a :class:`NotADirectoryError`, a
directory where a file is needed an :class:`IsADirectoryError`, unreachable
storage a :class:`ConnectionError`. :class:`aifdata.testing.ConnectorTests`
checks all of this; a third-party connector's tests subclass it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO, NamedTuple

from .._errors import NotFound
from ._tier import Tier
from ._writer import TierWriter

Info = dict[str, Any]


class FileStat(NamedTuple):
    """What identifies a copy without reading it: size, and mtime (PFS) or ETag (S3).

    A local file also gives what ``os.utime`` cannot set back: its inode, device
    and change time (ns); a write with the mtime restored still changes the ctime.
    """

    size: int
    mtime: float | None = None
    etag: str | None = None
    inode: int | None = None
    device: int | None = None
    ctime_ns: int | None = None

    @classmethod
    def of(cls, info: Info) -> FileStat:
        return cls(int(info["size"]), info.get("mtime"), info.get("etag"))


class Connector(abc.ABC):
    """One storage tier behind the ``aif://`` namespace."""

    #: Whether a directory can exist with nothing in it (false for object stores).
    supports_empty_directories: bool = True

    def __init__(self, tier: Tier) -> None:
        self.tier = tier

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tier.url!r})"

    @abc.abstractmethod
    def url(self, rel: str) -> str:
        """The address of ``rel`` in the storage's own terms (for humans and logs)."""

    @abc.abstractmethod
    def info(self, rel: str) -> Info:
        """Size, type and version markers of one file or directory."""

    @abc.abstractmethod
    def ls(self, rel: str) -> list[Info]:
        """Entries directly under the directory ``rel``."""

    @abc.abstractmethod
    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        """Every file (and, with ``withdirs``, directory) below ``rel``."""

    @abc.abstractmethod
    def cat_file(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of ``rel`` in ``[start, end)``; negative offsets count from the end."""

    @abc.abstractmethod
    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        """A seekable binary reader."""

    @abc.abstractmethod
    def open_write(self, rel: str, block_size: int | None = None) -> TierWriter:
        """A binary writer whose bytes appear at ``rel`` only when it closes cleanly."""

    @abc.abstractmethod
    def pipe_file(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` in one atomic step."""

    @abc.abstractmethod
    def put_file(self, local_path: str, rel: str) -> None:
        """Upload a local file to ``rel`` atomically."""

    @abc.abstractmethod
    def copy(self, rel1: str, rel2: str) -> None:
        """Copy within this tier."""

    @abc.abstractmethod
    def rm_file(self, rel: str) -> None:
        """Delete one file."""

    @abc.abstractmethod
    def rmdir(self, rel: str) -> None:
        """Delete an empty directory (no-op where directories are implicit)."""

    @abc.abstractmethod
    def makedirs(self, rel: str) -> None:
        """Create a directory and its parents (no-op where directories are implicit)."""

    def exists(self, rel: str) -> bool:
        try:
            self.info(rel)
        except FileNotFoundError:
            return False
        return True

    def stat_or_none(self, rel: str) -> FileStat | None:
        """Size and version markers of file ``rel``, or None when absent or a directory."""
        try:
            info = self.info(rel)
        except FileNotFoundError:
            return None
        return FileStat.of(info) if info["type"] == "file" else None

    def stats(self, rels: Iterable[str]) -> dict[str, FileStat]:
        """Stats of the files among ``rels`` that exist here, looked up in bulk."""
        return {rel: st for rel in rels if (st := self.stat_or_none(rel)) is not None}

    def cat_files(self, rels: Sequence[str]) -> dict[str, bytes | Exception]:
        """Whole contents of many files; a failure is returned in place of bytes."""
        out: dict[str, bytes | Exception] = {}
        for rel in rels:
            try:
                out[rel] = self.cat_file(rel)
            except Exception as exc:  # reported per file, as fsspec's cat does
                out[rel] = exc
        return out

    def cat_ranges(
        self, rels: Sequence[str], starts: Sequence[int | None], ends: Sequence[int | None]
    ) -> list[bytes]:
        """Many byte ranges, in order."""
        return [self.cat_file(r, s, e) for r, s, e in zip(rels, starts, ends, strict=True)]

    def rm_many(self, rels: Sequence[str]) -> None:
        """Delete files and then emptied directories, deepest first; missing ones are fine."""
        for rel in sorted(rels, key=lambda r: (r.count("/"), r), reverse=True):
            try:
                if self.info(rel)["type"] == "directory":
                    self.rmdir(rel)
                else:
                    self.rm_file(rel)
            except FileNotFoundError:
                continue

    def move(self, rel1: str, rel2: str) -> None:
        """Rename within this tier (copy then delete unless the tier can do better)."""
        self.copy(rel1, rel2)
        self.rm_file(rel1)

    def close(self) -> None:  # noqa: B027 - optional hook, most connectors hold nothing
        """Release pools and threads; the connector may be reused afterwards."""

    def _not_found(self, rel: str) -> NotFound:
        return NotFound(f"{self.url(rel)}: no such file or directory")

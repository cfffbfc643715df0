"""Hash a copy where it lies, and seal a local copy with what its hash was.

Staging, ``aifdata verify`` and routing share these steps. A hash counts only
if the copy did not change while it was read (the same stat before and after).
A local copy that aifdata wrote also carries an extended attribute,
``user.aifdata.sha256`` = ``"<checksum> <ctime_ns>"``: the checksum and the
change time it was hashed at, for scrubs and for ``getfattr``. It is a note,
not a proof (whoever can write the file can write the attribute): routing
trusts the catalog's inode and ctime, which ``os.utime`` cannot set
back. Where the file system has no user attributes (tmpfs without them, some
NFS mounts) nothing is written and nothing is said.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import BinaryIO, NamedTuple, Protocol

from .._streams import CHUNK_SIZE, copy_stream
from ._base import FileStat

#: The extended attribute that records a local copy's checksum.
SEAL_ATTRIBUTE = "user.aifdata.sha256"


class Copies(Protocol):
    """Where copies are stat'ed and read: a connector, or a plain fsspec filesystem's
    stand-in for a copy outside every mount."""

    def stats(self, rels: Iterable[str]) -> dict[str, FileStat]: ...

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO: ...


class Hashed(NamedTuple):
    """A copy's checksum (None: it changed while being read) and its stat as hashed."""

    checksum: str | None
    stat: FileStat


def rehash(
    conn: Copies, rel: str, progress: Callable[[int], object] | None = None
) -> Hashed | None:
    """The SHA-256 of the copy at ``rel`` as it is now; None when there is no copy."""
    before = conn.stats([rel]).get(rel)
    if before is None:
        return None
    with conn.open_read(rel, CHUNK_SIZE, before.size) as f:
        got = copy_stream(f, checksum=True, progress=progress)
    after = conn.stats([rel]).get(rel)
    if after != before or got.size != before.size:
        return Hashed(None, after or before)
    return Hashed(got.checksum, before)


def seal(conn: Copies, rel: str, checksum: str, hashed: FileStat, *, write: bool) -> FileStat:
    """The stat to record for a copy whose bytes were hashed to ``checksum`` at ``hashed``.

    A local copy gets the attribute when ``write`` (aifdata wrote it) or when it
    already has one (aifdata wrote it before): setting it changes the copy's
    ctime, so the stat is taken again afterwards. Files aifdata did not write
    are left as they are.
    """
    path = local_path(conn, rel)
    if path is None or hashed.ctime_ns is None or not (write or read_seal(path) is not None):
        return hashed
    if not _set(path, f"{checksum} {hashed.ctime_ns}".encode()):
        return hashed
    after = conn.stats([rel]).get(rel)
    same_file = after is not None and after[:2] == hashed[:2] and after[3:5] == hashed[3:5]
    return after if same_file and after is not None else hashed


def read_seal(path: str) -> tuple[str, int] | None:
    """The (checksum, ctime_ns) a local file was sealed with, or None."""
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        checksum, _, ctime = getxattr(path, SEAL_ATTRIBUTE).decode().partition(" ")
        return checksum, int(ctime)
    except (OSError, ValueError):  # no attribute, none supported, or not ours
        return None


def local_path(conn: Copies, rel: str) -> str | None:
    """The path of ``rel`` on this machine, for a PFS tier; else None."""
    from .pfs import PFSConnector  # loaded when used, as the kind registry does

    return conn.resolve(rel) if isinstance(conn, PFSConnector) else None


def _set(path: str, value: bytes) -> bool:
    setxattr = getattr(os, "setxattr", None)
    if setxattr is None:
        return False
    try:
        setxattr(path, SEAL_ATTRIBUTE, value)
    except OSError:  # not supported here, read-only, not ours to write: a note, not a duty
        return False
    return True

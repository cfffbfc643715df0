"""The ``fsspec`` storage kind: any fsspec filesystem as a tier.

``url = "gs://bucket/prefix"`` (or ``abfs://``, ``sftp://host/dir``,
``memory://name``...) with ``storage_options`` passed to the filesystem: users
with GCS, Azure or SSH storage get a tier without code here. Writes go to a
hidden temporary name beside the target and are moved over it on a clean
close, so readers never see part of a file (on object stores the move is a
server-side copy). The temporary name carries its owner (host, process, start
time), and a write first removes the temporary files in its directory whose
owner is gone (:func:`~aifdata.connectors._atomic.is_stale`). A local directory
is a ``pfs`` tier, an S3 bucket an ``s3`` tier: they keep their faster
connectors.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar

import fsspec
from fsspec.spec import AbstractFileSystem

from .._errors import PathEscape, StorageError
from .._streams import copy_stream
from ._atomic import TEMP_SUFFIX, is_stale, sweep_due, temp_name
from ._base import Connector, Info
from ._kind import TABLE, OptionCheck, StorageKind, join, shown
from ._tier import Tier
from ._writer import TierWriter

#: Protocols whose directories exist on their own (object stores' do not).
_REAL_DIRECTORIES = frozenset({"memory", "sftp", "ssh", "ftp", "smb", "webdav", "hdfs"})
_OTHER_KINDS = {"s3": "s3", "s3a": "s3", "file": "pfs", "local": "pfs"}
#: Filesystems over other storage (caches, a directory of another filesystem, references,
#: archives, aif:// itself): a tier there would be a second name for data whose grants
#: are matched by its own location, so they are refused.
_WRAPPERS = frozenset(
    {"aif", "simplecache", "filecache", "blockcache", "cached", "dir", "reference",
     "zip", "tar", "libarchive", "memmap"}
)  # fmt: skip
#: Other names of one protocol: the location is matched in its first spelling.
_SPELLINGS = {"gcs": "gs", "ssh": "sftp", "az": "abfs", "abfss": "abfs", "adl": "abfs"}


def _protocol(url: str) -> str:
    return url.partition("://")[0].lower()


class FsspecKind(StorageKind):
    """A location on any filesystem fsspec knows (``protocol://...``)."""

    name = "fsspec"
    location_key = "url"
    location_shape = "protocol://location (a protocol fsspec knows, such as gs:// or memory://)"
    options: ClassVar[dict[str, OptionCheck]] = {"storage_options": TABLE}
    local = False
    connector = "aifdata.connectors.fsspec_tier:FsspecConnector"
    install_hint = "pip install the fsspec implementation of that protocol (e.g. gcsfs, adlfs)"

    def location_problem(self, location: Any) -> str | None:
        if not isinstance(location, str) or "://" not in location:
            return f"expected {self.location_shape}, got {shown(location)}"
        if "::" in location.partition("://")[0]:
            return (
                f"chained fsspec URLs ({shown(location)}) wrap other storage:"
                " give the inner URL as the tier's url"
            )
        protocol, _, rest = location.partition("://")
        if protocol.lower() in _OTHER_KINDS:
            kind = _OTHER_KINDS[protocol.lower()]
            return f"{protocol}:// locations are tiers of kind {kind!r}, not 'fsspec'"
        if protocol.lower() in _WRAPPERS:
            return (
                f"{protocol}:// wraps other storage: make a tier of the storage itself"
                f" (got {shown(location)})"
            )
        if protocol.lower() not in fsspec.available_protocols():
            return f"fsspec knows no protocol {protocol!r} (in {shown(location)})"
        segments = list(rest.rstrip("/").split("/")[1:])
        if any(s in ("", ".", "..") for s in segments):
            return f"expected a clean location, got {shown(location)}"
        return None

    def normalise(self, location: str) -> str:
        """One spelling per place: the protocol's first name, no trailing slash (a leading
        one, as in ``hdfs:///user``, is part of the path)."""
        protocol, _, rest = location.partition("://")
        protocol = _SPELLINGS.get(protocol.lower(), protocol.lower())
        return f"{protocol}://{rest.rstrip('/')}"

    def serves(self, url: str) -> bool:
        protocol = _protocol(url)
        return (
            "://" in url
            and protocol not in _OTHER_KINDS
            and protocol not in _WRAPPERS
            and protocol in fsspec.available_protocols()
        )

    def aliases(self, url: str) -> set[str]:
        """The URL as given and in its one spelling (``gcs://b`` is ``gs://b``)."""
        return {url.rstrip("/"), self.normalise(url)}


FSSPEC_KIND = FsspecKind()


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class FsspecConnector(Connector):
    """A tier under one location of an fsspec filesystem."""

    def __init__(self, tier: Tier) -> None:
        super().__init__(tier)
        self.protocol = _protocol(tier.url)
        options: Mapping[str, Any] = tier.options.get("storage_options", {})
        self.fs: AbstractFileSystem = fsspec.filesystem(self.protocol, **dict(options))
        self.root = self.fs._strip_protocol(tier.url).rstrip("/")
        self.supports_empty_directories = self.protocol in _REAL_DIRECTORIES

    # -- paths ---------------------------------------------------------------

    def url(self, rel: str) -> str:
        return join(self.tier.url, rel)

    def path(self, rel: str) -> str:
        """The wrapped filesystem's path of ``rel``."""
        # Refused as on a pfs tier: "/x" would be the key "root//x", whose empty segment
        # fsspec's memory filesystem before 2026.7 lists as a directory and cannot remove.
        if rel.startswith("/"):
            raise PathEscape(f"{self.url('')}: refusing absolute path {rel!r}")
        if ".." in rel.split("/"):
            raise PathEscape(f"{self.url('')}: refusing '..' in {rel!r}")
        return join(self.root, rel) if self.root else rel

    def _rel(self, path: str) -> str:
        path = self.fs._strip_protocol(path).rstrip("/")
        return path[len(self.root) :].lstrip("/") if path.startswith(self.root) else path

    def _info(self, raw: Info) -> Info:
        kind = "directory" if raw.get("type") == "directory" else "file"
        info: Info = {"name": self._rel(raw["name"]), "size": raw.get("size") or 0, "type": kind}
        etag = raw.get("ETag") or raw.get("etag")
        if etag:
            info["etag"] = str(etag).strip('"')
        for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
            mtime = _timestamp(raw.get(key))
            if mtime is not None:
                info["mtime"] = mtime
                break
        return info

    @staticmethod
    def _hidden(raw: Info) -> bool:
        return str(raw["name"]).rstrip("/").endswith(TEMP_SUFFIX)

    # -- metadata ------------------------------------------------------------

    def info(self, rel: str) -> Info:
        try:
            raw = self.fs.info(self.path(rel))
        except FileNotFoundError:
            raise self._not_found(rel) from None
        return self._info(raw)

    def ls(self, rel: str) -> list[Info]:
        info = self.info(rel)
        if info["type"] == "file":
            return [info]
        try:
            listed = self.fs.ls(self.path(rel), detail=True)
        except FileNotFoundError:
            raise self._not_found(rel) from None
        return [self._info(raw) for raw in listed if not self._hidden(raw)]

    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        try:
            info = self.info(rel)
        except FileNotFoundError:
            return {}
        if info["type"] == "file":
            return {rel: info}
        found = self.fs.find(self.path(rel), withdirs=withdirs, detail=True)
        out = {}
        for raw in found.values():
            entry = self._info(raw)
            if not self._hidden(raw) and entry["name"] != rel:
                out[entry["name"]] = entry
        return out

    # -- reads ---------------------------------------------------------------

    def cat_file(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        info = self.info(rel)
        if info["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel))
        size = int(info["size"])
        lo = 0 if start is None else (max(0, size + start) if start < 0 else min(start, size))
        hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        if hi <= lo:
            return b""
        data: bytes = self.fs.cat_file(self.path(rel), start=lo, end=hi)
        return data

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        if self.info(rel)["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel))
        opened: BinaryIO = self.fs.open(self.path(rel), "rb", block_size=block_size)
        return opened

    # -- writes --------------------------------------------------------------

    def _check_writable(self, rel: str) -> None:
        """Refuse the root and directories; where directories are real, make the parent
        (a file in the way is NotADirectoryError, as on a POSIX tree)."""
        if not rel:
            raise IsADirectoryError(errno.EISDIR, "cannot write to the tier root", self.url(""))
        if self.fs.isdir(self.path(rel)):
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel))
        parent = rel.rpartition("/")[0]
        if self.supports_empty_directories and parent:
            self.makedirs(parent)
        if sweep_due(self.url(parent)):
            self._remove_stale_temporaries(parent)

    def _remove_stale_temporaries(self, rel: str) -> None:
        """Remove the temporary files directly in directory ``rel`` whose owner is gone."""
        try:
            listed = self.fs.ls(self.path(rel), detail=True)
        except OSError:  # not there yet, or not listable: nothing to tidy
            return
        now = time.time()
        for raw in listed:
            if not self._hidden(raw) or raw.get("type") == "directory":
                continue
            name = str(raw["name"]).rstrip("/").rpartition("/")[2]
            if is_stale(name, self._info(raw).get("mtime", now), now):
                with contextlib.suppress(OSError):
                    self.fs.rm_file(raw["name"])
        self.fs.invalidate_cache(self.path(rel))

    def _not_a_directory(self, rel: str) -> NotADirectoryError:
        return NotADirectoryError(errno.ENOTDIR, "a file is in the way", self.url(rel))

    def open_write(self, rel: str, block_size: int | None = None) -> TierWriter:
        self._check_writable(rel)
        return _MoveOnClose(self, rel)

    def pipe_file(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as f:
            f.write(data)

    def put_file(self, local_path: str, rel: str) -> None:
        with open(local_path, "rb") as src, self.open_write(rel) as dst:
            copy_stream(src, dst)

    def copy(self, rel1: str, rel2: str) -> None:
        if self.info(rel1)["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel1))
        self._check_writable(rel2)
        temp = self._temp_name(rel2)
        self.fs.cp_file(self.path(rel1), temp)
        self.fs.mv(temp, self.path(rel2))

    def move(self, rel1: str, rel2: str) -> None:
        if self.info(rel1)["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel1))
        self._check_writable(rel2)
        self.fs.mv(self.path(rel1), self.path(rel2))

    def rm_file(self, rel: str) -> None:
        if self.info(rel)["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel))
        self.fs.rm_file(self.path(rel))

    def rmdir(self, rel: str) -> None:
        if not self.supports_empty_directories:
            return
        try:
            self.fs.rmdir(self.path(rel))
        except FileNotFoundError:
            raise self._not_found(rel) from None

    def makedirs(self, rel: str) -> None:
        if not (self.supports_empty_directories and rel):
            return
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):  # a file on the way is not a directory
            if self.fs.isfile(self.path("/".join(parts[:depth]))):
                raise self._not_a_directory(rel)
        self.fs.makedirs(self.path(rel), exist_ok=True)

    def _temp_name(self, rel: str) -> str:
        directory, _, name = rel.rpartition("/")
        temp = temp_name(name)
        return self.path(join(directory, temp) if directory else temp)


class _MoveOnClose(io.RawIOBase):
    """Bytes go to a hidden temporary name; a clean close moves it over the target."""

    def __init__(self, conn: FsspecConnector, rel: str) -> None:
        super().__init__()
        self.conn, self.rel = conn, rel
        self.temp = conn._temp_name(rel)
        self._file = conn.fs.open(self.temp, "wb")
        self._discarded = False

    @property
    def name(self) -> str:
        return self.conn.url(self.rel)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        written = self._file.write(data)
        return len(data) if written is None else int(written)

    def discard(self) -> None:
        """Drop everything written; the target is left as it was."""
        if self.closed:
            return
        self._discarded = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.close()
            if not self._discarded:
                self.conn.fs.mv(self.temp, self.conn.path(self.rel))
        except OSError as exc:
            self._remove_temp()
            raise StorageError(f"{self.conn.url(self.rel)}: write failed: {exc}") from exc
        except BaseException:
            self._remove_temp()
            raise
        finally:
            super().close()
        if self._discarded:
            self._remove_temp()

    def _remove_temp(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.fs.rm_file(self.temp)

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

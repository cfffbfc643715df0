"""The S3 tier: an ``s3://bucket/prefix`` on any S3-compatible server.

Metadata, listings and writes go through s3fs (multipart uploads, directory
semantics); bytes are read through obstore's native client
(:mod:`._s3_native`). Errors from either are translated once, in
:mod:`._s3_errors`, into aifdata errors that name the bucket, key and endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import obstore
from fsspec.asyn import sync
from s3fs import S3FileSystem
from s3fs.core import S3File

from .._errors import AifDataError, NotFound, PathEscape, StorageError, StorageUnavailable
from ._base import Connector, FileStat, Info
from ._range_file import RangeReader
from ._s3_errors import BudgetSpent, translate, translated
from ._s3_native import NativeReader, obstore_usable
from ._s3_settings import S3Settings
from ._tier import Tier
from ._writer import TierWriter

_MIN_PART = 5 * 2**20


#: One s3fs client per process and tier settings, kept for the life of the process.
#: A client that is garbage-collected closes its session from a finalizer, on
#: whichever thread and event loop happen to run it; its unfinished close, copied
#: into a forked child (a DataLoader worker), then ran there on the child's loop
#: and stalled the parent's next request until its read timeout. Clients kept
#: alive are never closed that way, and a child makes its own (by process id).
_CLIENTS: dict[tuple[int, str], S3FileSystem] = {}
_CLIENTS_LOCK = threading.Lock()


class S3Connector(Connector):
    """A tier under one S3 bucket and key prefix."""

    supports_empty_directories = False

    def __init__(self, tier: Tier) -> None:
        super().__init__(tier)
        self.settings = S3Settings.from_tier(tier)
        self._client_key = repr(self.settings)
        self._native: NativeReader | None = None
        self._native_pid = os.getpid()
        self._bucket_seen = False

    def __getstate__(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "settings": self.settings,
            "_client_key": self._client_key,
            "_native": None,
            "_native_pid": 0,
            "_bucket_seen": False,
        }

    # -- clients -------------------------------------------------------------

    @property
    def fs(self) -> S3FileSystem:
        """The s3fs client of this process for these settings (made on first use)."""
        key = (os.getpid(), self._client_key)
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = self._new_client()
            return client

    def _new_client(self) -> S3FileSystem:
        s = self.settings
        key, secret, token = s.credentials()
        client = _BoundedS3FileSystem(
            s,
            anon=s.anon,
            key=key,
            secret=secret,
            token=token,
            endpoint_url=s.endpoint_url,
            client_kwargs={"region_name": s.region},
            config_kwargs=s.botocore_config(),
            use_listings_cache=False,
            skip_instance_cache=True,
            max_concurrency=1,
        )
        # botocore's standard mode retries throttling, 5xx and dropped connections
        # with backoff, within the budget; s3fs's own loop on top would multiply waits.
        client.retries = 1
        return client

    @property
    def native(self) -> NativeReader:
        """The obstore-backed reader for bytes."""
        if self._native is None or self._native_pid != os.getpid():  # new after a fork
            self._native = NativeReader(self.settings)
            self._native_pid = os.getpid()
        return self._native

    # -- paths ---------------------------------------------------------------

    def key(self, rel: str) -> str:
        """The object key of ``rel``; a path that would leave the tier's prefix is refused."""
        if rel.startswith("/") or (".." in rel and ".." in rel.split("/")):
            raise PathEscape(f"{self.tier.url}: refusing {rel!r}: it would leave the tier")
        prefix = self.settings.prefix
        return f"{prefix}/{rel}" if prefix and rel else (prefix or rel)

    def path(self, rel: str) -> str:
        """The s3fs path (``bucket/key``)."""
        key = self.key(rel)
        return f"{self.settings.bucket}/{key}" if key else self.settings.bucket

    def url(self, rel: str) -> str:
        return f"s3://{self.path(rel)}"

    def _rel(self, s3fs_path: str) -> str:
        root = self.path("")
        return s3fs_path.strip("/").removeprefix(root).strip("/")

    def _info(self, raw: Info) -> Info:
        kind = "directory" if raw.get("type") == "directory" else "file"
        info: Info = {"name": self._rel(raw["name"]), "size": raw.get("size") or 0, "type": kind}
        if raw.get("ETag"):
            info["etag"] = raw["ETag"].strip('"')
        if raw.get("LastModified") is not None:
            info["mtime"] = raw["LastModified"].timestamp()
        return info

    @contextlib.contextmanager
    def _errors(self, rel: str) -> Iterator[None]:
        """Translate errors; a key not found because its bucket is missing says so."""
        try:
            with translated(self.url(rel), self.settings.endpoint):
                yield
        except NotFound as exc:
            if self._bucket_missing():
                raise self._no_bucket() from exc
            raise

    def _fail(self, exc: BaseException, rel: str) -> BaseException:
        error = translate(exc, self.url(rel), self.settings.endpoint)
        if isinstance(error, NotFound) and self._bucket_missing():
            return self._no_bucket()
        if type(error) is StorageError and not self.reachable():
            return StorageUnavailable(
                f"cannot reach S3 endpoint {self.settings.endpoint} for {self.url(rel)}"
            )
        return error

    def _bucket_missing(self) -> bool:
        """Whether the tier's bucket does not exist (asked once it is known to)."""
        if self._bucket_seen:
            return False
        try:
            sync(self.fs.loop, self.fs._call_s3, "head_bucket", Bucket=self.settings.bucket)
        except FileNotFoundError:
            return True
        except Exception:
            return False  # unknown (no right to HEAD it, unreachable): not claimed missing
        self._bucket_seen = True
        return False

    def _no_bucket(self) -> StorageError:
        s = self.settings
        return StorageError(
            f"S3 bucket {s.bucket!r} does not exist at {s.endpoint} "
            f"(tier {self.tier.url}): create it, or correct the tier's url"
        )

    def _listed(self, rel: str, entries: Any) -> Any:
        """``entries``, unless they are empty because the bucket itself is missing."""
        if not entries and self._bucket_missing():
            raise self._no_bucket()
        return entries

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
            self._native = None

    def reachable(self, timeout: float = 2.0) -> bool:
        """Whether a TCP connection to the endpoint can be opened."""
        parts = urlsplit(self.settings.endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "localhost", port), timeout):
                return True
        except OSError:
            return False

    # -- metadata ------------------------------------------------------------

    def info(self, rel: str) -> Info:
        with self._errors(rel):
            return self._info(self.fs.info(self.path(rel)))

    def ls(self, rel: str) -> list[Info]:
        """The entries under directory ``rel``; of a file, that file alone (as fsspec).

        A file costs one HEAD: s3fs's own ``ls`` of a file lists its whole folder.
        """
        path = self.path(rel).rstrip("/")
        with self._errors(rel):
            entries = sync(self.fs.loop, self.fs._lsdir, path)
            if not entries and self._bucket_missing():
                raise self._no_bucket()
            if not entries:
                found = self.fs.info(path)  # FileNotFoundError when nothing is there
                entries = [found] if found["type"] == "file" else []
        infos = (self._info(e) for e in entries if not _is_marker(e))
        return [i for i in infos if i["name"] != rel or i["type"] == "file"]

    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        with self._errors(rel):
            found = self._listed(rel, self.fs.find(self.path(rel), withdirs=withdirs, detail=True))
        infos = (self._info(e) for e in found.values() if not _is_marker(e))
        return {i["name"]: i for i in infos if i["name"] != rel or i["type"] == "file"}

    def stats(self, rels: Iterable[str]) -> dict[str, FileStat]:
        """One listing per parent directory instead of one HEAD per file."""
        by_parent: dict[str, list[str]] = {}
        for rel in rels:
            by_parent.setdefault(rel.rpartition("/")[0], []).append(rel)
        out: dict[str, FileStat] = {}
        for parent, members in by_parent.items():
            if len(members) == 1:
                st = self.stat_or_none(members[0])
                if st is not None:
                    out[members[0]] = st
                continue
            try:
                listing = {e["name"]: e for e in self.ls(parent)}
            except FileNotFoundError:
                continue
            for rel in members:
                entry = listing.get(rel)
                if entry is not None and entry["type"] == "file":
                    out[rel] = FileStat.of(entry)
        return out

    # -- reads ---------------------------------------------------------------

    def cat_file(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        key = self.key(rel)
        try:
            if (start is not None and start < 0) or (end is not None and end < 0):
                size = self.info(rel)["size"]
                start, end = _absolute(start, size), _absolute(end, size)
            if end is not None and end <= (start or 0):
                return b""
            return self.native.read(key, start, end)  # past the end (416): b""
        except Exception as exc:
            raise self._fail(exc, rel) from exc

    def cat_files(self, rels: Sequence[str]) -> dict[str, bytes | Exception]:
        results = self.native.read_many([self.key(r) for r in rels])
        out: dict[str, bytes | Exception] = {}
        for rel, result in zip(rels, results, strict=True):
            if isinstance(result, BaseException):
                out[rel] = self._fail(result, rel)  # type: ignore[assignment]
            else:
                out[rel] = result
        return out

    def cat_ranges(
        self, rels: Sequence[str], starts: Sequence[int | None], ends: Sequence[int | None]
    ) -> list[bytes]:
        los: list[int] = []
        his: list[int] = []
        for start, end in zip(starts, ends, strict=True):
            if start is None or end is None or start < 0 or end < 0:
                return super().cat_ranges(rels, starts, ends)  # needs sizes: one by one
            los.append(start)
            his.append(end)
        results = self.native.read_ranges([self.key(r) for r in rels], los, his)
        out = []
        for rel, result in zip(rels, results, strict=True):
            if isinstance(result, BaseException):  # already retried; past the end is b""
                raise self._fail(result, rel) from result
            out.append(result)
        return out

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        if size is None:
            size = self.info(rel)["size"]
        return RangeReader(self, rel, size, block_size or 2 * 2**20)

    # -- writes --------------------------------------------------------------

    def open_write(self, rel: str, block_size: int | None = None) -> TierWriter:
        part = max(block_size or self.settings.part_size, _MIN_PART)
        with self._errors(rel):
            writer = _DiscardOnError(self.fs, self.path(rel), "wb", block_size=part)
        writer.fail = lambda exc: self._fail(exc, rel)
        return writer

    def pipe_file(self, rel: str, data: bytes) -> None:
        with self._errors(rel):
            self.fs.pipe_file(self.path(rel), data)

    def put_file(self, local_path: str, rel: str) -> None:
        with self._errors(rel):
            self.fs.put_file(local_path, self.path(rel))

    def copy(self, rel1: str, rel2: str) -> None:
        with self._errors(rel1):
            self.fs.copy(self.path(rel1), self.path(rel2))

    def rm_file(self, rel: str) -> None:
        with self._errors(rel):
            if not self.fs.exists(self.path(rel)):
                raise self._not_found(rel)
        self.rm_many([rel])

    def rm_many(self, rels: Sequence[str]) -> None:
        """Bulk-delete keys (missing ones are fine), then empty folder markers above them."""
        keys = [self.key(r) for r in rels if r]
        keys += [k + "/" for k in keys]
        if not obstore_usable():  # a forked child: s3fs's bulk delete, no folder pruning
            with self._errors(rels[0] if rels else ""):
                self.fs.rm([f"{self.settings.bucket}/{k}" for k in keys])
            return
        try:
            for i in range(0, len(keys), 1000):
                obstore.delete(self.native.store, keys[i : i + 1000])
        except Exception as exc:
            raise self._fail(exc, rels[0] if rels else "") from exc
        self._prune_empty_folders(rels)

    def _prune_empty_folders(self, rels: Sequence[str]) -> None:
        """Servers with real folders (SeaweedFS, MinIO) keep them after their last key goes."""
        parents = {r.rsplit("/", i)[0] for r in rels for i in range(1, r.count("/") + 1)}
        for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            prefix = self.key(parent) + "/"
            stream = obstore.list(self.native.store, prefix, chunk_size=1)
            if next(iter(stream), []):
                continue
            obstore.delete(self.native.store, prefix)

    def rmdir(self, rel: str) -> None:
        """Delete the ``prefix/`` marker some servers keep for folders (a no-op on AWS)."""
        if self.key(rel):
            self.rm_many([rel])

    def makedirs(self, rel: str) -> None:
        """Directories are implicit in S3: they exist once a key is under them."""


def _is_marker(raw: Info) -> bool:
    """Whether a listed object is a folder marker (``prefix/``), not a file of the tier."""
    return raw.get("type") != "directory" and str(raw["name"]).endswith("/")


def _absolute(offset: int | None, size: int) -> int | None:
    if offset is None or offset >= 0:
        return offset
    return max(size + offset, 0)


#: Server-side copies: no body on the wire, but the server may take minutes to answer
#: for gigabytes; bounded by the connect and read timeouts only.
_UNBOUNDED = frozenset({"CopyObject", "UploadPartCopy"})


class _BoundedS3FileSystem(S3FileSystem):
    """s3fs whose every S3 API call (a HEAD, a listing page, a part upload), retries
    included, ends within ``retry_budget + bytes sent / min_rate`` seconds: its client's
    one funnel for calls, ``_make_api_call``, runs under a deadline. Server-side copies
    are left to the connect and read timeouts."""

    def __init__(self, settings: S3Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = settings

    async def set_session(self, *args: Any, **kwargs: Any) -> Any:
        client = await super().set_session(*args, **kwargs)
        if not getattr(client, "_aifdata_bounded", False):
            client._make_api_call = _within(self.limits, client._make_api_call)
            client._aifdata_bounded = True
        return client


def _within(settings: S3Settings, call: Any) -> Any:
    async def bounded(operation: str, params: dict[str, Any]) -> Any:
        if operation in _UNBOUNDED:
            return await call(operation, params)
        budget = settings.budget_for(_body_size(params.get("Body")))
        try:
            return await asyncio.wait_for(call(operation, params), budget)
        except TimeoutError as exc:
            raise BudgetSpent(operation, budget) from exc

    return bounded


def _body_size(body: Any) -> int:
    """Bytes of a request body (bytes-like, as s3fs sends them; else a file's size)."""
    if body is None:
        return 0
    if isinstance(body, bytes | bytearray | memoryview):
        return memoryview(body).nbytes
    try:
        return os.fstat(body.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return 0


class _DiscardOnError(S3File):
    """An s3fs writer that aborts the upload when its ``with`` block raises, and whose
    upload errors name the object and the endpoint like every other S3 error."""

    fail: Any = None  # exception -> aifdata error, set by the connector
    closed: bool

    def flush(self, force: bool = False) -> None:  # uploads a part, or all on close
        try:
            super().flush(force)
        except Exception as exc:
            if self.fail is None or isinstance(exc, AifDataError):
                raise
            raise self.fail(exc) from exc

    def discard(self) -> None:
        """Abort the upload; the writer is closed and publishes nothing."""
        if not self.closed:
            super().discard()
            self.closed = True

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

"""The ``service`` storage kind: read a site's ``aif://`` through ``aifdata serve``.

A tier ``{kind = "service", url = "https://catalog.site:8750/MOUNT"}`` serves the
site's ``aif://MOUNT/...`` to a process that holds an API token (the tier's ``token``
option, else ``$AIFDATA_TOKEN``) and no S3 credentials: listings and sizes come from the
service's small JSON endpoints (``/api/v1/info``, ``/api/v1/ls``), and bytes from
presigned S3 GETs the service vends for one object at a time, read with HTTP Range
requests. A URL is kept until shortly before it expires, and vended again when S3
says it has (403). The service checks every request against the catalog's grants as
the token's principal; a file the token may not read is missing here.

Writes through ``aif://`` are refused; :meth:`ServiceConnector.upload` sends files as a
new version of a dataset (presigned PUTs, then a commit). The token never appears in a
repr or an error message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar
from urllib.parse import urlsplit

import httpx

from .._errors import (
    AccessDenied,
    AifDataError,
    BadArgument,
    Conflict,
    InvalidToken,
    NotFound,
    PathEscape,
    StorageError,
    StorageUnavailable,
)
from ._base import Connector, Info
from ._kind import SECONDS, TEXT, OptionCheck, StorageKind, join, shown
from ._range_file import RangeReader
from ._tier import Tier
from ._writer import TierWriter

TOKEN_VARIABLE = "AIFDATA_TOKEN"
API = "/api/v1"
#: Seconds a vended URL is still used before it expires (at most a tenth of its life).
URL_MARGIN = 30.0
DEFAULT_TIMEOUT = 30.0
#: Seconds a request may wait in all for the service's rate limit (429) to let it through.
RATE_WAIT = 30.0
#: How many vended URLs a connector keeps at most.
URLS_KEPT = 10_000


class ServiceKind(StorageKind):
    """A site's ``aif://`` namespace, read through its ``aifdata serve``."""

    name = "service"
    location_key = "url"
    location_shape = "http(s)://host:port[/mount] of an aifdata serve"
    options: ClassVar[dict[str, OptionCheck]] = {"token": TEXT, "timeout": SECONDS}
    secret_options: ClassVar[frozenset[str]] = frozenset({"token"})
    local = False
    connector = "aifdata.connectors.service:ServiceConnector"
    install_hint = "pip install aifdata (needs httpx)"

    def location_problem(self, location: Any) -> str | None:
        try:
            parts = urlsplit(location) if isinstance(location, str) else None
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            return f"expected {self.location_shape}, got {shown(location)}"
        if parts.query or parts.fragment or "@" in parts.netloc:
            return f"expected no query, fragment or user in {shown(location)}"
        segments = [s for s in parts.path.strip("/").split("/") if parts.path.strip("/")]
        if any(s in ("", ".", "..") for s in segments):
            return f"expected a clean path in {shown(location)}"
        return None


SERVICE_KIND = ServiceKind()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds a 429 asks to wait (None: not a 429, or no usable wait)."""
    if response.status_code != 429:
        return None
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return None


class ServiceConnector(Connector):
    """A tier served by ``aifdata serve``: listings through its API, bytes through the
    presigned S3 URLs it vends."""

    supports_empty_directories = False

    def __init__(self, tier: Tier) -> None:
        super().__init__(tier)
        parts = urlsplit(tier.url)
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.remote_root = parts.path.strip("/")
        self.timeout = float(tier.options.get("timeout", DEFAULT_TIMEOUT))
        self._urls: dict[str, tuple[str, int, float]] = {}  # rel -> (url, size, use until)
        self._lock = threading.Lock()
        self._api: httpx.Client | None = None
        self._objects: httpx.Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"tier": self.tier}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["tier"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ServiceConnector({self.tier.url!r})"

    # -- clients -------------------------------------------------------------

    def _token(self) -> str:
        token = self.tier.options.get("token") or os.environ.get(TOKEN_VARIABLE)
        if not token:
            raise InvalidToken(
                f"tier {self.tier.name!r} ({self.tier.url}) needs an API token: set the tier's"
                f" token option or ${TOKEN_VARIABLE} (aifdata token create makes one)"
            )
        return str(token)

    @property
    def api(self) -> httpx.Client:
        """The client of the service's API (with the token)."""
        if self._api is None:
            self._api = httpx.Client(
                base_url=self.endpoint, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._token()}"},
            )  # fmt: skip
        return self._api

    @property
    def objects(self) -> httpx.Client:
        """The client of presigned URLs (never sends the token to object storage)."""
        if self._objects is None:
            self._objects = httpx.Client(timeout=self.timeout)
        return self._objects

    def close(self) -> None:
        for client in (self._api, self._objects):
            if client is not None:
                client.close()
        self._api = self._objects = None

    # -- paths ---------------------------------------------------------------

    def url(self, rel: str) -> str:
        return join(self.tier.url, rel)

    def remote(self, rel: str) -> str:
        """The site's ``aif://`` path of ``rel``."""
        if rel.startswith("/") or ".." in rel.split("/"):
            raise PathEscape(f"{self.tier.url}: refusing {rel!r}: it would leave the tier")
        path = join(self.remote_root, rel) if self.remote_root else rel
        return f"aif://{path}"

    def _rel(self, name: str) -> str:
        if not self.remote_root:
            return name
        if not name.startswith(self.remote_root):
            return name
        return name[len(self.remote_root) :].lstrip("/")

    # -- the API -------------------------------------------------------------

    def _call(self, method: str, endpoint: str, rel: str, **kwargs: Any) -> Any:
        """One API request; a 429 is retried after the ``Retry-After`` it names, while
        the waits stay within :data:`RATE_WAIT` seconds."""
        waited = 0.0
        while True:
            try:
                response = self.api.request(method, f"{API}/{endpoint}", **kwargs)
            except httpx.TransportError as exc:
                raise StorageUnavailable(f"cannot reach {self.endpoint} for {self.url(rel)}: "
                                         f"{type(exc).__name__}") from None  # fmt: skip
            if response.status_code == 200:
                return response.json()
            wait = _retry_after(response)
            if wait is None or waited + wait > RATE_WAIT:
                raise self._error(response, rel)
            time.sleep(wait)
            waited += wait

    def _error(self, response: httpx.Response, rel: str) -> AifDataError:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        status = response.status_code
        where = f"{self.url(rel)}: {message}"
        if status == 404:
            return NotFound(f"{self.url(rel)}: no such file or directory")
        if status == 401:
            return InvalidToken(f"{self.endpoint}: {message}")
        if status == 403:
            return AccessDenied(where)
        if status == 400:
            return BadArgument(where)
        if status == 409:
            return Conflict(where)
        if status in (502, 503, 504):
            return StorageUnavailable(where)
        return StorageError(where)

    def _entry(self, raw: dict[str, Any]) -> Info:
        info: Info = {"name": self._rel(raw["name"]), "size": int(raw.get("size") or 0),
                      "type": raw["type"]}  # fmt: skip
        for key in ("checksum", "mtime"):
            if raw.get(key) is not None:
                info[key] = raw[key]
        return info

    def info(self, rel: str) -> Info:
        return self._entry(self._call("GET", "info", rel, params={"path": self.remote(rel)}))

    def ls(self, rel: str) -> list[Info]:
        found = self._call("GET", "ls", rel, params={"path": self.remote(rel)})
        return [self._entry(e) for e in found["entries"]]

    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        try:
            top = self.info(rel)
        except FileNotFoundError:
            return {}
        if top["type"] == "file":
            return {rel: top}
        out: dict[str, Info] = {}
        pending = [rel]
        while pending:
            for entry in self.ls(pending.pop()):
                if entry["type"] == "directory":
                    pending.append(entry["name"])
                    if withdirs:
                        out[entry["name"]] = entry
                else:
                    out[entry["name"]] = entry
        return out

    # -- reads ---------------------------------------------------------------

    def presigned(self, rel: str) -> tuple[str, int]:
        """A presigned GET of ``rel`` and its size (kept until shortly before it expires)."""
        now = time.time()
        with self._lock:
            held = self._urls.get(rel)
        if held is not None and now < held[2]:
            return held[0], held[1]
        vended = self._call("POST", "presign", rel, json={"path": self.remote(rel)})
        lifetime = float(vended["expires_at"]) - now
        use_until = float(vended["expires_at"]) - min(URL_MARGIN, lifetime / 10)
        with self._lock:
            if len(self._urls) >= URLS_KEPT:  # forget the expired ones, else all
                kept = {k: v for k, v in self._urls.items() if v[2] > now}
                self._urls = kept if len(kept) < URLS_KEPT else {}
            self._urls[rel] = (vended["url"], int(vended["size"]), use_until)
        return vended["url"], int(vended["size"])

    def _forget(self, rel: str) -> None:
        with self._lock:
            self._urls.pop(rel, None)

    def cat_file(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        url, size = self.presigned(rel)
        lo = 0 if start is None else (max(0, size + start) if start < 0 else min(start, size))
        hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        if hi <= lo:
            return b""
        for attempt in range(2):
            response = self._get(url, rel, lo, hi)
            if response.status_code in (200, 206):
                break
            if response.status_code == 403 and attempt == 0:  # expired (or clock skew)
                self._forget(rel)
                url, size = self.presigned(rel)
                continue
            raise StorageError(f"{self.url(rel)}: object storage answered "
                               f"HTTP {response.status_code}")  # fmt: skip
        data = response.content
        if response.status_code == 200:  # the whole object: a server that ignored Range
            data = data[lo:hi]
        if len(data) != hi - lo:
            raise StorageError(f"{self.url(rel)}: {len(data)} bytes arrived of {hi - lo} asked")
        return data

    def _get(self, url: str, rel: str, lo: int, hi: int) -> httpx.Response:
        try:
            return self.objects.get(url, headers={"Range": f"bytes={lo}-{hi - 1}"})
        except httpx.TransportError as exc:
            raise StorageUnavailable(f"cannot reach object storage for {self.url(rel)}: "
                                     f"{type(exc).__name__}") from None  # fmt: skip

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        if size is None:
            try:
                _, size = self.presigned(rel)  # the size, and the URL the reads will use
            except FileNotFoundError:
                if self.info(rel)["type"] == "directory":
                    raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel)) from None
                raise
        return RangeReader(self, rel, size, block_size or 4 * 2**20)

    # -- uploads: a new version of a dataset ---------------------------------

    def upload(self, dataset: str, files: Mapping[str, bytes | os.PathLike[str]]) -> int:
        """Upload ``files`` (path in the version -> bytes or a local file) as a new version
        of ``dataset`` (the token's principal must be allowed to write it); returns its number.
        Anything that fails aborts the upload: nothing is recorded."""
        sizes = {
            p: len(d) if isinstance(d, bytes) else os.path.getsize(d) for p, d in files.items()
        }
        started = self._call(
            "POST",
            "uploads",
            "",
            json={"dataset": dataset, "files": [{"path": p, "size": n} for p, n in sizes.items()]},
        )
        upload_id = started["upload"]
        try:
            for item in started["files"]:
                data = files[item["path"]]
                with contextlib.ExitStack() as stack:
                    body = (
                        data if isinstance(data, bytes) else stack.enter_context(open(data, "rb"))
                    )
                    put = self.objects.put(item["url"], content=body)
                if put.status_code != 200:
                    raise StorageError(
                        f"{self.url('')}: upload of {item['path']} answered HTTP {put.status_code}"
                    )
            done = self._call("POST", f"uploads/{upload_id}/commit", "")
        except BaseException:
            with contextlib.suppress(AifDataError):
                self._call("POST", f"uploads/{upload_id}/abort", "")
            raise
        return int(done["version"])

    # -- writes through aif://: none -------------------------------------------

    def _read_only(self, rel: str = "") -> AccessDenied:
        return AccessDenied(
            f"{self.url(rel)}: tier kind 'service' is read-only (uploads: POST /api/v1/uploads)"
        )

    def open_write(self, rel: str, block_size: int | None = None) -> TierWriter:
        raise self._read_only(rel)

    def pipe_file(self, rel: str, data: bytes) -> None:
        raise self._read_only(rel)

    def put_file(self, local_path: str, rel: str) -> None:
        raise self._read_only(rel)

    def copy(self, rel1: str, rel2: str) -> None:
        raise self._read_only(rel2)

    def rm_file(self, rel: str) -> None:
        raise self._read_only(rel)

    def rmdir(self, rel: str) -> None:
        raise self._read_only(rel)

    def makedirs(self, rel: str) -> None:
        raise self._read_only(rel)

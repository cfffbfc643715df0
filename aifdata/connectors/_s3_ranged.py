"""Large S3 reads straight into the caller's buffer: parallel ranged GETs over http.client.

A 1 GiB result costs more to *allocate* than to fetch here: every fresh page
faults. So a whole-object read allocates its result once (see
:mod:`._buffers`), and each ranged GET copies from the socket into its slice
of it with ``readinto``: no intermediate buffers, no joins. Requests are signed
with botocore's SigV4 signer; connections are kept per thread; throttling,
5xx answers and dropped connections are retried with exponential backoff.
"""

from __future__ import annotations

import http.client
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from ._buffers import prefault
from ._s3_settings import S3Settings

_RETRY_STATUS = {429, 500, 502, 503, 504}
_CODE = re.compile(rb"<Code>([^<]+)</Code>")


class S3HTTPError(Exception):
    """An S3 error answer, shaped like botocore's (``response['Error']['Code']``)."""

    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(f"HTTP {status} {code} for {key}")
        self.status = status
        self.response: dict[str, Any] = {
            "Error": {"Code": code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


class RangedReader:
    """Reads byte ranges of keys in one bucket into caller-provided buffers."""

    def __init__(self, settings: S3Settings, executor: Callable[[], ThreadPoolExecutor]) -> None:
        """``executor`` returns the (shared, lazily made) pool that runs the parts."""
        self.settings = settings
        self._executor = executor
        endpoint = urlsplit(settings.endpoint)
        self.https = endpoint.scheme == "https"
        self.host = endpoint.hostname or "localhost"
        self.port = endpoint.port or (443 if self.https else 80)
        self.base_path = endpoint.path.rstrip("/")
        self.path_style = bool(settings.endpoint_url)
        self._local = threading.local()
        key, secret, token = settings.credentials()
        self._credentials = ReadOnlyCredentials(key, secret, token) if key else None

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("RangedReader holds sockets; pickle its S3Settings instead")

    # -- public --------------------------------------------------------------

    def read_into(self, key: str, start: int, view: memoryview, etag: str | None = None) -> int:
        """Fill ``view`` with the bytes of ``key`` from ``start``; return the object size.

        With ``etag``, a changed object fails (412) instead of mixing versions.
        """
        size: int = self._with_retries(lambda: self._get_into(key, start, view, etag))
        return size

    def get(self, key: str, start: int, end: int) -> tuple[bytes, int]:
        """Bytes ``[start, end)`` of ``key`` (clipped to its end) and the object's size."""
        buffer = bytearray(end - start)
        try:
            size = self.read_into(key, start, memoryview(buffer))
        except S3HTTPError as exc:
            if exc.status == 416 and start == 0:  # an empty object has no byte 0
                return b"", 0
            raise
        return bytes(buffer[: max(0, min(end, size) - start)]), size

    def read_parts_into(
        self, key: str, start: int, view: memoryview, part_size: int, etag: str | None = None
    ) -> None:
        """Fill ``view`` from ``start`` with ranged GETs of ``part_size`` bytes, in parallel."""
        bounds = [(o, min(o + part_size, len(view))) for o in range(0, len(view), part_size)]
        if len(bounds) == 1:
            self.read_into(key, start, view, etag)
            return
        pool = self._executor()
        futures = [
            pool.submit(self.read_into, key, start + lo, view[lo:hi], etag) for lo, hi in bounds
        ]
        for future in futures:
            future.result()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            timeout = self.settings.read_timeout
            if self.https:
                context = ssl.create_default_context()
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=timeout, context=context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _url_path(self, key: str) -> tuple[str, str]:
        quoted = quote(key, safe="/~")
        bucket = self.settings.bucket
        if self.path_style:
            return f"{self.host}:{self.port}", f"{self.base_path}/{bucket}/{quoted}"
        return f"{bucket}.{self.host}", f"/{quoted}"

    def _signed_headers(
        self, key: str, first: int, last: int, etag: str | None
    ) -> tuple[str, dict[str, str]]:
        host, path = self._url_path(key)
        scheme = "https" if self.https else "http"
        wanted = {"Range": f"bytes={first}-{last}"}
        if etag:
            wanted["If-Match"] = etag
        request = AWSRequest("GET", f"{scheme}://{host}{path}", headers=wanted)
        if self._credentials is not None:
            S3SigV4Auth(self._credentials, "s3", self.settings.region).add_auth(request)
        headers = dict(request.headers.items())
        headers["Host"] = host
        return path, headers

    def _get_into(self, key: str, start: int, view: memoryview, etag: str | None) -> int:
        if len(view) == 0:
            return 0
        prefault(view)
        path, headers = self._signed_headers(key, start, start + len(view) - 1, etag)
        conn = self._connection()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        if response.status not in (200, 206):
            body = response.read()
            match = _CODE.search(body)
            code = match.group(1).decode() if match else str(response.status)
            raise S3HTTPError(response.status, code, key)
        size = _total_size(response, start)
        expected = min(len(view), max(size - start, 0))
        got = 0
        while got < expected:
            n = response.readinto(view[got:expected])
            if not n:
                raise ConnectionError(f"connection dropped after {got} of {expected} bytes")
            got += n
        if not response.isclosed():
            response.read()  # drain (nothing left for a well-formed answer) to reuse the socket
        return size

    def _with_retries(self, call: Any) -> Any:
        attempts = max(self.settings.max_attempts, 1)
        for attempt in range(attempts):
            try:
                return call()
            except S3HTTPError as exc:
                if exc.status not in _RETRY_STATUS or attempt == attempts - 1:
                    raise
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                if attempt == attempts - 1:
                    raise
            time.sleep(min(0.1 * 2**attempt, 5.0) * (0.5 + random.random()))
        raise AssertionError("unreachable")


def _total_size(response: http.client.HTTPResponse, start: int) -> int:
    content_range = response.getheader("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    length = response.getheader("Content-Length")
    return start + int(length) if length else start

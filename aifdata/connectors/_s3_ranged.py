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

from .._errors import AifDataError, StorageError, StorageUnavailable
from ._buffers import prefault
from ._s3_errors import S3Fault
from ._s3_settings import S3Settings

#: Bytes per socket read: how far a cut answer is known to have got (the resume point).
_CHUNK = 256 * 2**10
_RETRY_STATUS = {429, 500, 502, 503, 504}
_CODE = re.compile(rb"<Code>([^<]+)</Code>")


class S3HTTPError(Exception):
    """An S3 error answer, shaped like botocore's (``response['Error']['Code']``)."""

    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(f"HTTP {status} {code} for {key}")
        self.status, self.code = status, code
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

        An answer cut short is resumed from the byte it reached, within the retry budget.
        With ``etag`` (else the first answer's), a changed object fails (412) instead of
        mixing versions.
        """
        attempts = _Attempts(self.settings)
        progress = _Progress()
        while True:
            try:
                size = self._get_into(key, start, view, etag, attempts, progress)
                return size
            except S3HTTPError as exc:
                if exc.status not in _RETRY_STATUS:
                    raise
                failure: BaseException = exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = exc
            etag = etag or progress.etag
            if not attempts.another():
                raise self._fault(failure, key, progress, attempts) from failure

    def _fault(
        self, exc: BaseException, key: str, progress: _Progress, attempts: _Attempts
    ) -> S3Fault:
        """What happened, in words: no answer, reset, cut short, refused, HTTP status."""
        s = self.settings
        endpoint = s.endpoint
        what = f"s3://{s.bucket}/{key}"
        got = progress.got
        kind: type[AifDataError] = StorageUnavailable
        if isinstance(exc, S3HTTPError):
            said = f"{endpoint} answered HTTP {exc.status} {exc.code}"
        elif isinstance(exc, _Timeout) and exc.connecting:
            said = f"could not connect to {endpoint} within {exc.seconds:.3g} s"
        elif isinstance(exc, TimeoutError):
            seconds = getattr(exc, "seconds", s.read_timeout)
            said = (
                f"no answer from {endpoint} within {seconds:.3g} s"
                if got == 0 and not progress.answered
                else f"{endpoint} sent nothing for {seconds:.3g} s after {got} bytes of {key}"
            )
        elif isinstance(exc, ConnectionRefusedError):
            said = f"{endpoint} refused the connection"
        elif isinstance(exc, ConnectionResetError):
            said = f"connection reset by {endpoint} after {got} bytes of {key}"
        elif isinstance(exc, _CutShort | http.client.IncompleteRead):
            said = (
                f"{endpoint} closed the connection after {got} of {progress.expected} "
                f"bytes of {key}"
            )
        else:
            said = f"{endpoint} failed: {type(exc).__name__}: {exc}"
            kind = StorageError
        return S3Fault(kind, f"{said}, reading {what} ({attempts.summary()})")

    def get(self, key: str, start: int, end: int) -> tuple[bytes, int]:
        """Bytes ``[start, end)`` of ``key`` (clipped to its end) and the object's size."""
        buffer = bytearray(end - start)
        try:
            size = self.read_into(key, start, memoryview(buffer))
        except S3HTTPError as exc:
            if exc.status == 416:  # from past the end, or from 0 of an empty object
                return b"", start
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

    def _get_into(
        self,
        key: str,
        start: int,
        view: memoryview,
        etag: str | None,
        attempts: _Attempts,
        progress: _Progress,
    ) -> int:
        """One ranged GET from where ``progress`` stopped; ``progress`` follows every byte."""
        if len(view) == 0:
            return 0
        if progress.got == 0:
            prefault(view)
        first = start + progress.got
        path, headers = self._signed_headers(key, first, start + len(view) - 1, etag)
        conn = self._connection()
        self._connect(conn, attempts)
        # the socket itself: a server that says "Connection: close" makes getresponse drop
        # conn.sock, while the response goes on reading from this socket
        sock = conn.sock
        sock.settimeout(attempts.wait())
        conn.request("GET", path, headers=headers)
        response = self._answer(conn, attempts)
        if response.status not in (200, 206):
            body = response.read()
            match = _CODE.search(body)
            code = match.group(1).decode() if match else str(response.status)
            raise S3HTTPError(response.status, code, key)
        progress.answered = True
        progress.etag = progress.etag or response.getheader("ETag")
        size = _total_size(response, first)
        progress.expected = min(len(view), max(size - start, 0))
        while progress.got < progress.expected:
            sock.settimeout(attempts.wait())
            chunk = view[progress.got : min(progress.got + _CHUNK, progress.expected)]
            n = self._readinto(response, chunk, attempts)
            if not n:
                raise _CutShort()
            progress.got += n
        if not response.isclosed():
            response.read()  # drain (nothing left for a well-formed answer) to reuse the socket
        return size

    def _connect(self, conn: http.client.HTTPConnection, attempts: _Attempts) -> None:
        if conn.sock is not None:
            return
        seconds = attempts.wait(self.settings.connect_timeout)
        conn.timeout = seconds
        try:
            conn.connect()
        except TimeoutError as exc:
            raise _Timeout(seconds, connecting=True) from exc

    @staticmethod
    def _answer(conn: http.client.HTTPConnection, attempts: _Attempts) -> Any:
        seconds = attempts.last_wait
        try:
            return conn.getresponse()
        except TimeoutError as exc:
            raise _Timeout(seconds) from exc

    @staticmethod
    def _readinto(response: Any, view: memoryview, attempts: _Attempts) -> int:
        """One socket read's worth into ``view`` (``read1``: what arrived is counted even
        when the connection then stalls or breaks)."""
        seconds = attempts.last_wait
        try:
            data = response.read1(len(view))
        except TimeoutError as exc:
            raise _Timeout(seconds) from exc
        view[: len(data)] = data
        return len(data)


class _Timeout(TimeoutError):
    """Nothing came for ``seconds`` (while connecting, or waiting for bytes)."""

    def __init__(self, seconds: float, connecting: bool = False) -> None:
        super().__init__(f"nothing for {seconds:g} s")
        self.seconds, self.connecting = seconds, connecting


class _CutShort(ConnectionError):
    """The connection ended before the body had all its ``Content-Length`` bytes."""


class _Progress:
    """How far one read got, across its attempts."""

    def __init__(self) -> None:
        self.got = 0
        self.expected = 0
        self.answered = False
        self.etag: str | None = None


class _Attempts:
    """The attempts of one request and its retry budget.

    No attempt starts once ``retry_budget`` seconds have passed since the first; every
    wait (connect, next bytes) is cut to what is left of the budget, so a request ends,
    in bytes or an error, within about ``retry_budget`` seconds.
    """

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.started = time.monotonic()
        self.count = 1
        self.last_wait = settings.read_timeout

    def left(self) -> float:
        return self.settings.retry_budget - (time.monotonic() - self.started)

    def wait(self, seconds: float | None = None) -> float:
        """How long the next wait may last: its timeout, cut to the budget left."""
        timeout = self.settings.read_timeout if seconds is None else seconds
        self.last_wait = max(min(timeout, self.left()), 0.05)
        return self.last_wait

    def another(self) -> bool:
        """Back off and count one more attempt; False when retries or budget are spent."""
        if self.count > self.settings.retries:
            return False
        pause = min(0.1 * 2 ** (self.count - 1), 2.0) * (0.5 + random.random())
        if self.left() < pause + 0.1:
            return False
        time.sleep(pause)
        self.count += 1
        return True

    def summary(self) -> str:
        spent = time.monotonic() - self.started
        tries = "1 attempt" if self.count == 1 else f"{self.count} attempts"
        return f"{tries} in {spent:.1f} s; {self.settings.limits}"


def _total_size(response: http.client.HTTPResponse, start: int) -> int:
    content_range = response.getheader("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    length = response.getheader("Content-Length")
    return start + int(length) if length else start

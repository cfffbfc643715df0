"""Large S3 reads straight into the caller's buffer: parallel ranged GETs over http.client.

A 1 GiB result costs more to *allocate* than to fetch here: every fresh page
faults. So a whole-object read allocates its result once (see
:mod:`._buffers`), and each ranged GET copies from the socket into its slice
of it with ``readinto``: no intermediate buffers, no joins. Requests are signed
with botocore's SigV4 signer; connections are kept per thread; throttling,
5xx answers and dropped connections are retried with exponential backoff.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
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
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


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

    def read_into(
        self,
        key: str,
        start: int,
        view: memoryview,
        etag: str | None = None,
        shared: _SharedRead | None = None,
        progress: _Progress | None = None,
    ) -> int:
        """Fill ``view`` with the bytes of ``key`` from ``start``; return the object size.

        An answer cut short is resumed from the byte it reached, within the retry budget
        (``retry_budget + len(view) / min_rate`` seconds in all; ``shared``: also within
        the deadline of the whole read that this is a part of). With ``etag`` (else the
        first answer's), a changed object fails (412) instead of mixing versions.
        """
        attempts = _Attempts(self.settings, len(view), shared)
        progress = progress or _Progress()  # given: the caller learns the ETag it saw
        while True:
            try:
                size = self._get_into(key, start, view, etag, attempts, progress)
                return size
            except S3Fault:
                self._drop_connection()  # an answer not read to its end
                raise
            except S3HTTPError as exc:
                if exc.status == 412:
                    raise self._changed(key, etag or progress.etag, progress) from exc
                if exc.status not in _RETRY_STATUS:
                    raise
                failure: BaseException = exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = exc
            etag = etag or progress.etag
            if not attempts.another():
                raise self._fault(failure, key, progress, attempts) from failure

    def _changed(self, key: str, etag: str | None, progress: _Progress) -> S3Fault:
        s = self.settings
        return S3Fault(
            StorageError,
            f"s3://{s.bucket}/{key} changed while being read: {s.endpoint} no longer has "
            f"the version with ETag {etag} (HTTP 412 to If-Match after {progress.got} bytes); "
            "read it again",
        )

    def _misplaced(self, key: str, first: int, last: int, said: str) -> S3Fault:
        """An answer whose body does not start at the byte asked for."""
        s = self.settings
        return S3Fault(
            StorageError,
            f"{s.endpoint} answered a request for bytes {first}-{last} of "
            f"s3://{s.bucket}/{key} with {said}: refusing to place those bytes "
            "(a server or proxy that ignores Range?)",
        )

    def _too_slow(self, key: str, progress: _Progress, attempts: _Attempts) -> S3Fault:
        s = self.settings
        spent = time.monotonic() - attempts.started
        return S3Fault(
            StorageUnavailable,
            f"answer too slow: {progress.got} of {progress.expected} bytes in {spent:.1f} s "
            f"from {s.endpoint}, reading s3://{s.bucket}/{key} ({attempts.allowance})",
        )

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
        data, size, _ = self.get_versioned(key, start, end)
        return data, size

    def get_versioned(self, key: str, start: int, end: int) -> tuple[bytes, int, str | None]:
        """:meth:`get`, and the ETag of the version read (for the other parts of one read)."""
        buffer = bytearray(end - start)
        progress = _Progress()
        try:
            size = self.read_into(key, start, memoryview(buffer), progress=progress)
        except S3HTTPError as exc:
            if exc.status == 416:  # from past the end, or from 0 of an empty object
                return b"", start, None
            raise
        return bytes(buffer[: max(0, min(end, size) - start)]), size, progress.etag

    def read_parts_into(
        self, key: str, start: int, view: memoryview, part_size: int, etag: str | None = None
    ) -> None:
        """Fill ``view`` from ``start`` with ranged GETs of ``part_size`` bytes, in parallel."""
        bounds = [(o, min(o + part_size, len(view))) for o in range(0, len(view), part_size)]
        if len(bounds) == 1:
            self.read_into(key, start, view, etag)
            return
        shared = _SharedRead(self.settings.budget_for(len(view)))
        pool = self._executor()
        futures = [
            pool.submit(self._read_part, key, start + lo, view[lo:hi], etag, shared)
            for lo, hi in bounds
        ]
        wait(futures, return_when=FIRST_EXCEPTION)
        if shared.error is None:
            return
        _abandon(futures, shared)
        raise shared.error

    def _read_part(
        self, key: str, start: int, view: memoryview, etag: str | None, shared: _SharedRead
    ) -> int:
        """One part of a parallel read; its failure stops the others at once."""
        if shared.failed:
            raise _Abandoned("another part of this read failed")
        try:
            return self.read_into(key, start, view, etag, shared)
        except BaseException as exc:
            shared.fail(exc)
            raise

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
        first, last = start + progress.got, start + len(view) - 1
        path, headers = self._signed_headers(key, first, last, etag)
        conn = self._connection()
        self._connect(conn, attempts)
        # the socket itself: a server that says "Connection: close" makes getresponse drop
        # conn.sock, while the response goes on reading from this socket
        sock = conn.sock
        with attempts.watching(sock):
            return self._answer_into(
                key, conn, sock, (first, last), path, headers, view, attempts, progress, start
            )

    def _answer_into(
        self,
        key: str,
        conn: http.client.HTTPConnection,
        sock: Any,
        asked: tuple[int, int],
        path: str,
        headers: dict[str, str],
        view: memoryview,
        attempts: _Attempts,
        progress: _Progress,
        start: int,
    ) -> int:
        sock.settimeout(attempts.wait())
        conn.request("GET", path, headers=headers)
        response = self._answer(conn, attempts)
        if response.status not in (200, 206):
            body = response.read()
            match = _CODE.search(body)
            code = match.group(1).decode() if match else str(response.status)
            raise S3HTTPError(response.status, code, key)
        self._check_placement(key, response, asked, len(view) - progress.got)
        progress.answered = True
        progress.etag = progress.etag or response.getheader("ETag")
        size = _total_size(response, asked[0])
        progress.expected = min(len(view), max(size - start, 0))
        while progress.got < progress.expected:
            if attempts.left() <= 0:
                raise self._too_slow(key, progress, attempts)
            sock.settimeout(attempts.wait())
            chunk = view[progress.got : min(progress.got + _CHUNK, progress.expected)]
            n = self._readinto(response, chunk, attempts)
            if not n:
                raise _CutShort()
            progress.got += n
        if not response.isclosed():
            response.read()  # drain (nothing left for a well-formed answer) to reuse the socket
        return size

    def _check_placement(
        self, key: str, response: Any, asked: tuple[int, int], wanted: int
    ) -> None:
        """The body starts at the first byte asked for: a 206 whose Content-Range says so,
        or a 200 (the whole object) to a request from byte 0 that covers all of it."""
        first, last = asked
        if response.status == 206:
            begins = _range_start(response.getheader("Content-Range"))
            if begins != first:
                said = f"206 Partial Content from byte {begins}"
                raise self._misplaced(key, first, last, said)
            return
        length = response.getheader("Content-Length")
        whole = length is not None and length.isdigit() and int(length) <= wanted
        if first != 0 or not whole:
            said = f"200 OK and {length or 'an unknown number of'} bytes of the whole object"
            raise self._misplaced(key, first, last, said)

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


class _SharedRead:
    """One deadline for all the parts of a read; once a part fails, the others stop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.failed = False
        #: The first failure of a part: the read's error (the others follow from it).
        self.error: BaseException | None = None
        self._sockets: set[Any] = set()
        self._lock = threading.Lock()

    def left(self) -> float:
        return 0.0 if self.failed else self.deadline - time.monotonic()

    def track(self, sock: Any) -> None:
        with self._lock:
            if self.failed:
                raise _Abandoned("another part of this read failed")
            self._sockets.add(sock)

    def untrack(self, sock: Any) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def fail(self, error: BaseException | None = None) -> None:
        """Stop every part: no new attempt, and the answers in flight are cut off."""
        with self._lock:
            if not self.failed:
                self.error = error
            self.failed = True
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _abandon(futures: list[Future[int]], shared: _SharedRead) -> None:
    """After a part failed: the parts not started never start, the running ones stop."""
    shared.fail()
    for future in futures:
        future.cancel()
    wait(futures)


class _Abandoned(ConnectionAbortedError):
    """A part stopped because another part of the same read failed."""


class _Attempts:
    """The attempts of one request and its retry budget.

    No attempt starts once ``retry_budget + nbytes / min_rate`` seconds have passed since
    the first (nor once the whole read it is a part of has failed or spent its own); every
    wait (connect, next bytes) is cut to what is left, so a request ends, in bytes or an
    error, within that time.
    """

    def __init__(
        self, settings: S3Settings, nbytes: int = 0, shared: _SharedRead | None = None
    ) -> None:
        self.settings = settings
        self.nbytes = nbytes
        self.budget = settings.budget_for(nbytes)
        self.shared = shared
        self.started = time.monotonic()
        self.count = 1
        self.last_wait = settings.read_timeout

    def left(self) -> float:
        own = self.budget - (time.monotonic() - self.started)
        return own if self.shared is None else min(own, self.shared.left())

    @property
    def allowance(self) -> str:
        """The time this request was allowed, and why, for messages."""
        s = self.settings
        if self.shared is not None and self.shared.seconds < self.budget + 1e-9:
            budget = self.shared.seconds
            nbytes = round((budget - s.retry_budget) * s.min_rate)
        else:
            budget, nbytes = self.budget, self.nbytes
        return (
            f"retry_budget {s.retry_budget:g} s + {nbytes} bytes at min_rate "
            f"{s.min_rate:g} bytes/s = {budget:.1f} s"
        )

    @contextlib.contextmanager
    def watching(self, sock: Any) -> Iterator[None]:
        """While an answer is awaited on ``sock``, a failed read can cut it off."""
        if self.shared is None:
            yield
            return
        self.shared.track(sock)
        try:
            yield
        finally:
            self.shared.untrack(sock)

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


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``bytes FIRST-LAST/TOTAL`` (None when absent or malformed)."""
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    return int(match.group(1)) if match else None


def _total_size(response: http.client.HTTPResponse, start: int) -> int:
    content_range = response.getheader("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    length = response.getheader("Content-Length")
    return start + int(length) if length else start

"""Bulk S3 reads: obstore's native client for many requests, http.client for big ones.

Pure-Python S3 clients spend milliseconds of CPU per request and s3fs reads a
large object several times slower than the network allows
(``benchmarks/bench_read.py`` measures both). Here:

* many small objects and ranges go through obstore (Rust), called from a
  thread pool: its blocking calls release the GIL, which measured faster and
  cheaper per request than driving its async API from one event loop;
* a large read allocates its ``bytes`` result once and fills it with parallel
  ranged GETs that copy from the socket straight into place
  (:mod:`._s3_ranged`, :mod:`._buffers`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import obstore
from obstore.exceptions import GenericError
from obstore.store import S3Store

from .._errors import StorageUnavailable
from .._threads import ThreadPool
from ._buffers import MIN_SIZE, fresh_bytes
from ._s3_errors import S3Fault
from ._s3_ranged import RangedReader
from ._s3_settings import S3Settings

#: A whole-object read first asks for this much; smaller objects take one request.
FIRST_REQUEST = 8 * 2**20
#: The first request of a whole-object read when obstore cannot be used (smaller:
#: the buffer is allocated before the size is known).
FALLBACK_FIRST_REQUEST = 2**20
_obstore_pid: int | None = None


def obstore_usable() -> bool:
    """Whether obstore works in this process.

    obstore runs on a Rust (tokio) runtime whose threads do not survive a
    fork: in a child forked from a process that used it (a PyTorch DataLoader
    worker, a ``fork`` multiprocessing pool), its calls would block forever.
    There, reads go through the http.client path instead.
    """
    global _obstore_pid
    pid = os.getpid()
    if _obstore_pid is None:
        _obstore_pid = pid
    return _obstore_pid == pid


def make_store(settings: S3Settings) -> S3Store:
    """An obstore S3 store for the tier's bucket (keys are passed whole)."""
    key, secret, token = settings.credentials()
    config: dict[str, Any] = {"region": settings.region}
    if settings.endpoint_url:
        config["endpoint"] = settings.endpoint_url
        config["virtual_hosted_style_request"] = False
    if settings.anon:
        config["skip_signature"] = True
    elif key:
        config.update(access_key_id=key, secret_access_key=secret)
        if token:
            config["token"] = token
    client_options = {
        "allow_http": True,
        "connect_timeout": timedelta(seconds=settings.connect_timeout),
        "read_timeout": timedelta(seconds=settings.read_timeout),
        # a whole-request bound: enough for the largest answer obstore is asked for
        # (FIRST_REQUEST bytes at min_rate); larger ranges go through http.client
        "timeout": timedelta(seconds=settings.budget_for(FIRST_REQUEST)),
        "pool_max_idle_per_host": str(settings.max_concurrency),
    }
    retry_config = {
        "max_retries": settings.retries,
        # no retry starts once a wait for an answer could outlast the budget
        "retry_timeout": timedelta(seconds=max(settings.retry_budget - settings.read_timeout, 0)),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=2),
            "base": 2.0,
        },
    }
    return S3Store(
        settings.bucket,
        config=config,  # type: ignore[arg-type]
        client_options=client_options,  # type: ignore[arg-type]
        retry_config=retry_config,  # type: ignore[arg-type]
    )


class NativeReader:
    """Whole-object, ranged and many-object reads of one bucket."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.store = make_store(settings)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.ranged = RangedReader(settings, self._executor)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _map(self, fn: Callable[..., Any], *columns: Sequence[Any]) -> list[Any]:
        """Run ``fn`` over the rows of ``columns`` in the pool, in order.

        Each worker pulls the next index from one shared iterator, so there is
        one task per worker rather than one future per request; an exception
        is returned in place of its result.
        """
        rows = list(zip(*columns, strict=True))
        results: list[Any] = [None] * len(rows)
        indexes = iter(range(len(rows)))  # next() on it is atomic under the GIL

        def worker() -> None:
            for i in indexes:
                try:
                    results[i] = fn(*rows[i])
                except Exception as exc:
                    results[i] = exc

        workers = min(self.settings.max_concurrency, len(rows))
        if workers <= 1:
            worker()
            return results
        pool = self._executor()
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
        return results

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPool(
                    self.settings.max_concurrency, thread_name_prefix="aifdata-s3"
                )
            return self._pool

    def read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of ``key`` in ``[start, end)`` (None: to the end)."""
        lo = start or 0
        if end is None:
            return self._read_to_end(key, lo)
        if end - lo >= FIRST_REQUEST:  # its first part tells the size: a range past the end clips
            return self._large_range(key, lo, end)
        return self.range(key, lo, end)

    def range(self, key: str, start: int, end: int) -> bytes:
        """One ranged GET (end past the object's end is clipped; past the end: ``b""``)."""
        if end <= start:
            return b""
        return self.ranged.get(key, start, end)[0]

    def _bulk_range(self, key: str, start: int, end: int) -> bytes:
        """A range of a many-range read: obstore, else (fork, error) :meth:`range`."""
        if end <= start or not obstore_usable():
            return self.range(key, start, end)
        if end - start > FIRST_REQUEST:  # past obstore's whole-request bound: in parts
            return self._large_range(key, start, end)
        fetch = lambda: obstore.get_range(self.store, key, start=start, end=end).to_bytes()  # noqa: E731
        return self._native_or(fetch, lambda: self.range(key, start, end), key)

    def _large_range(self, key: str, start: int, end: int) -> bytes:
        """``[start, end)`` clipped to the object: its first request tells the size."""
        head, size, etag = self.ranged.get_versioned(key, start, start + FIRST_REQUEST)
        end = min(end, size)
        if start + len(head) >= end:
            return head[: max(end - start, 0)]
        return self._read_large(key, start, end - start, head, etag)  # one version throughout

    def _native_or(self, fetch: Callable[[], bytes], again: Callable[[], bytes], key: str) -> bytes:
        """``fetch`` through obstore; when it fails quickly (a status, a dropped or cut
        answer), ``again`` through http.client, which says exactly what happened and resumes
        cut answers; when it failed after waiting ``read_timeout``, the endpoint is not
        answering and that is the error."""
        started = time.monotonic()
        try:
            return fetch()
        except GenericError as exc:
            spent = time.monotonic() - started
            if spent < self.settings.read_timeout:
                return again()
            s = self.settings
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise S3Fault(
                StorageUnavailable,
                f"no complete answer from {s.endpoint} within {spent:.0f} s, reading "
                f"s3://{s.bucket}/{key} ({s.limits}; {reason})",
            ) from exc

    def _read_to_end(self, key: str, start: int) -> bytes:
        if start or not obstore_usable():
            return self._read_to_end_http(key, start)
        first: list[Any] = []

        def fetch() -> bytes:
            result = obstore.get(self.store, key)
            size = result.meta["size"]
            if size <= FIRST_REQUEST:
                return result.bytes().to_bytes()
            first.append((size, result.meta.get("e_tag")))  # large: in parallel parts
            return b""

        head = self._native_or(fetch, lambda: self._read_to_end_http(key, start), key)
        if not first:
            return head
        size, etag = first[0]
        return self._read_large(key, 0, size, b"", etag)

    def _read_to_end_http(self, key: str, start: int) -> bytes:
        data, total = self.ranged.get(key, start, start + FALLBACK_FIRST_REQUEST)
        if start + len(data) >= total:
            return data
        return self._read_large(key, start, total - start, data)

    def _read_large(
        self, key: str, start: int, length: int, head: Any, etag: str | None = None
    ) -> bytes:
        """Allocate the result once; fill it with parallel ranged GETs after ``head``."""
        if length < MIN_SIZE:
            return bytes(head) + self.range(key, start + len(head), start + length)
        result, view = fresh_bytes(length)
        try:
            view[: len(head)] = head
            rest = view[len(head) :]
            self.ranged.read_parts_into(key, start + len(head), rest, self.settings.part_size, etag)
        finally:
            view.release()
        return result

    def read_many(self, keys: Sequence[str]) -> list[bytes | BaseException]:
        """Whole contents of many keys, ``max_concurrency`` requests in flight."""
        return self._map(lambda key: self._read_to_end(key, 0), keys)

    def read_ranges(
        self, keys: Sequence[str], starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes | BaseException]:
        """Many ``[start, end)`` ranges (absolute, non-negative), in order."""
        return self._map(self._bulk_range, keys, starts, ends)

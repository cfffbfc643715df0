"""Bulk S3 reads through obstore's native (Rust) client.

Pure-Python S3 clients spend about 3 ms of CPU per request and s3fs reads a
large object several times slower than the network allows; ``benchmarks/
bench_read.py`` measures both. This module moves the byte-heavy path (whole
objects, ranges, many small objects) to obstore, driven from fsspec's I/O
event loop so that many requests overlap without a thread each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import fsspec.asyn
import obstore
from obstore.store import S3Store

from ._s3_settings import S3Settings


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
        "connect_timeout": f"{settings.connect_timeout}s",
        "timeout": f"{settings.read_timeout}s",
        "pool_max_idle_per_host": str(settings.max_concurrency),
    }
    retry_config = {
        "max_retries": max(settings.max_attempts - 1, 0),
        "retry_timeout": timedelta(seconds=settings.read_timeout),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=5),
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

    def _run(self, coro: Any) -> Any:
        return fsspec.asyn.sync(fsspec.asyn.get_loop(), lambda: coro)

    def read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of ``key`` in ``[start, end)`` (None = to the end), in parallel parts."""
        return self._run(self._read(key, start, end))

    def read_many(self, keys: Sequence[str]) -> list[bytes | BaseException]:
        """Whole contents of many keys, ``max_concurrency`` requests in flight."""
        return self._run(self._read_many(keys))

    def read_ranges(
        self, keys: Sequence[str], starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes | BaseException]:
        """Many ``[start, end)`` ranges (absolute, non-negative), in order."""
        return self._run(self._read_ranges(keys, starts, ends))

    async def _read(self, key: str, start: int | None, end: int | None) -> bytes:
        part = self.settings.part_size
        lo = start or 0
        if end is not None:
            return await self._range(key, lo, end)
        first = await obstore.get_async(self.store, key, options={"range": (lo, lo + part)})
        size = first.meta["size"]
        head = await first.bytes_async()
        if lo + len(head) >= size:
            return head.to_bytes()
        bounds = [(s, min(s + part, size)) for s in range(lo + len(head), size, part)]
        parts = await self._bounded([self._range(key, s, e) for s, e in bounds])
        return b"".join([head, *parts])

    async def _range(self, key: str, start: int, end: int) -> Any:
        if end <= start:
            return b""
        return await obstore.get_range_async(self.store, key, start=start, end=end)

    async def _read_many(self, keys: Sequence[str]) -> list[bytes | BaseException]:
        async def one(key: str) -> bytes:
            result = await obstore.get_async(self.store, key)
            return (await result.bytes_async()).to_bytes()

        return await self._bounded([one(k) for k in keys], return_exceptions=True)

    async def _read_ranges(
        self, keys: Sequence[str], starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes | BaseException]:
        async def one(key: str, start: int, end: int) -> bytes:
            data = await self._range(key, start, end)
            return data if isinstance(data, bytes) else data.to_bytes()

        coros = [one(k, s, e) for k, s, e in zip(keys, starts, ends, strict=True)]
        return await self._bounded(coros, return_exceptions=True)

    async def _bounded(self, coros: list[Any], return_exceptions: bool = False) -> list[Any]:
        limit = asyncio.Semaphore(self.settings.max_concurrency)

        async def gated(coro: Any) -> Any:
            async with limit:
                return await coro

        return await asyncio.gather(*map(gated, coros), return_exceptions=return_exceptions)

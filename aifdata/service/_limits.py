"""The limits a request meets before any work: its body's size and its token's rate."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .._errors import RateLimited, RequestTooLarge

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


class RateLimiter:
    """A token bucket per key (an API token's id; a client's address before it has one):
    ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s bucket, or raise :class:`RateLimited`."""
        self._spend(key, 1.0)

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` if ``key``'s bucket is empty (spending nothing)."""
        self._spend(key, 0.0)

    def _spend(self, key: str, cost: float) -> None:
        with self._lock:
            now = self.clock()
            tokens, when = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise RateLimited(
                    f"too many requests: at most {self.rate:g} per second"
                    f" ({self.burst} at once); retry in {wait} s",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - cost, now)
            if len(self._buckets) > 100_000:  # forget full buckets: they hold nothing
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        full = [k for k, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


class BodyLimit:
    """ASGI middleware: a request whose body is larger than ``max_bytes`` is refused (413),
    by its Content-Length before it is read, or as soon as more arrives than it may hold."""

    def __init__(self, app: Any, max_bytes: int, refuse: Callable[[Exception], Any]) -> None:
        self.app, self.max_bytes, self.refuse = app, max_bytes, refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = self.refuse(self._too_large())
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: Message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> RequestTooLarge:
        return RequestTooLarge(f"request body larger than {self.max_bytes:,} bytes")

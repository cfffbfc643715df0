"""The limits a request meets before any work: its body's size, its token's rate, and how
many of its token's requests are running."""

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


class InFlight:
    """How many requests of each key (an API token's id) are running: at most ``limit``
    at once. A request holds a :class:`Slot` until its work really ends, even after it
    timed out (its worker thread still runs)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, key: str) -> Slot:
        """A slot for one more request of ``key``, or :class:`RateLimited` when it has
        ``limit`` running."""
        with self._lock:
            running = self._running.get(key, 0)
            if running >= self.limit:
                raise RateLimited(
                    f"too many requests at once: at most {self.limit} of one token may run;"
                    " retry when one has finished",
                    retry_after=1,
                )
            self._running[key] = running + 1
        return Slot(self, key)

    def running(self, key: str) -> int:
        """How many requests of ``key`` hold a slot."""
        with self._lock:
            return self._running.get(key, 0)

    def _leave(self, key: str) -> None:
        with self._lock:
            left = self._running.pop(key) - 1
            if left:
                self._running[key] = left


class Slot:
    """One request's place among its token's running requests, given back when every
    holder released it: the request, and each worker thread that :meth:`hold` s it."""

    def __init__(self, owner: InFlight, key: str) -> None:
        self._owner, self._key, self._holders = owner, key, 1
        self._lock = threading.Lock()

    def hold(self) -> Slot:
        """One more holder (a worker thread that may outlive the request)."""
        with self._lock:
            if self._holders == 0:
                raise RuntimeError("the slot was given back already")
            self._holders += 1
        return self

    def release(self) -> None:
        """One holder lets go; the last gives the slot back."""
        with self._lock:
            self._holders -= 1
            last = self._holders == 0
        if last:
            self._owner._leave(self._key)


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

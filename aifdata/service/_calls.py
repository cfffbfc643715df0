"""How a request to ``aifdata serve`` runs: who it acts as, and the limits it meets.

Every request names an API token (``Authorization: Bearer aif_...``, or the cookie
``aifdata_token`` that the web page sets). Its work runs in a worker thread, inside
:func:`~aifdata.catalog.acting_as` the token's principal (set in that thread, not copied
from the event loop's context), so each grant check and audit row names the token's
principal, never the server process's ``$AIFDATA_USER``. A request that changes something
(not GET, HEAD or OPTIONS) with the cookie's token must also send ``X-Requested-With:
aifdata``, which a page on another site cannot make a browser send.

Endpoints are plain functions of a :class:`Call` (see :func:`api_route`); another module
adds its own by passing :func:`api_route` routes (or any Starlette routes) to
:func:`~aifdata.service.build_app` as ``extra_routes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._errors import AccessDenied, BadArgument, InvalidToken, RequestTimeout
from .._filesystem import MountedFileSystem
from ..catalog import ApiToken, Catalog, Principal, acting_as, verify_token
from ._limits import InFlight, RateLimiter, Slot
from ._responses import JsonResponse, error_response, hide_location
from ._settings import ServiceSettings

T = TypeVar("T")

#: The cookie the web page keeps the token in.
TOKEN_COOKIE = "aifdata_token"
#: The header a request that changes something must send when its token is the cookie: a
#: page on another site can make a browser send the cookie, but not this header.
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "aifdata"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What a request without a token is told.
NO_TOKEN = f"no token: send 'Authorization: Bearer <token>' (or the {TOKEN_COOKIE} cookie)"


@dataclass(frozen=True)
class Caller:
    """Who a request acts as: the principal and the token that says so."""

    principal: Principal
    token: ApiToken


class Service:
    """What every request shares: the catalog, the settings, the rate limits, the count of
    each token's requests running."""

    def __init__(self, catalog: Catalog, settings: ServiceSettings) -> None:
        self.catalog, self.settings = catalog, settings
        self.limiter = RateLimiter(settings.rate_per_token, settings.burst)
        #: Requests with a token that did not authenticate, by client address.
        self.failures = RateLimiter(settings.rate_per_token, settings.burst)
        self.in_flight = InFlight(settings.max_in_flight_per_token)

    @cached_property
    def filesystem(self) -> MountedFileSystem:
        """The catalog's ``aif://`` filesystem (its gate asks who acts at each call)."""
        return self.catalog.filesystem()

    def identify(self, token: str | None, client: str = "") -> Caller:
        """The caller a token names, its rate spent; :class:`InvalidToken` or
        :class:`RateLimited` otherwise. Blocking: call it in a worker thread."""
        if not token:
            raise InvalidToken(NO_TOKEN)
        self.failures.check(f"addr:{client}")  # a client guessing tokens is slowed down
        try:
            found = verify_token(self.catalog, token)
        except InvalidToken:
            self.failures.take(f"addr:{client}")
            raise
        self.limiter.take(found.id)
        return Caller(found.acting, found)

    def admit(self, token: str | None, client: str = "") -> tuple[Caller, Slot]:
        """:meth:`identify`, then a slot among the token's running requests
        (:class:`RateLimited` when it has ``max_in_flight_per_token``): release it when
        the request's work ends. Blocking: call it in a worker thread."""
        caller = self.identify(token, client)
        return caller, self.in_flight.enter(caller.token.id)

    async def call(self, request: Request, work: Callable[[Caller], T]) -> T:
        """Run ``work(caller)`` in a worker thread as the request's caller, within the
        request timeout, holding one of its token's slots until the thread ends."""
        token, client = token_of(request), request.client.host if request.client else ""
        if _forgeable(request):
            raise AccessDenied(
                f"a {request.method} request with the {TOKEN_COOKIE} cookie must send"
                f" '{CSRF_HEADER}: {CSRF_VALUE}' (the web page's scripts do)"
            )

        def run() -> T:
            caller, slot = self.admit(token, client)
            try:
                with acting_as(caller.principal), self.catalog.one_policy():
                    return work(caller)
            except Exception as exc:
                hide_location(exc, self.catalog)
                raise
            finally:
                slot.release()

        return await self.in_thread(run)

    async def run_as(self, principal: Principal, work: Callable[[], T]) -> T:
        """Run ``work()`` in a worker thread acting as ``principal``, within the timeout."""

        def run() -> T:
            with acting_as(principal), self.catalog.one_policy():
                try:
                    return work()
                except Exception as exc:
                    hide_location(exc, self.catalog)
                    raise

        return await self.in_thread(run)

    async def in_thread(self, work: Callable[[], T]) -> T:
        """``work()`` in a worker thread; :class:`RequestTimeout` when it takes too long
        (the thread is left to finish; its answer is dropped)."""
        limit = self.settings.request_timeout
        ends = time.monotonic() + limit

        def timed() -> T:
            token = _REQUEST_ENDS.set(ends)
            try:
                return work()
            finally:
                _REQUEST_ENDS.reset(token)

        with anyio.move_on_after(limit) as scope:
            return await anyio.to_thread.run_sync(timed, abandon_on_cancel=True)
        assert scope.cancelled_caught
        raise RequestTimeout(f"the request took longer than {limit:g} s")


#: When the request a worker thread serves is answered 504 (``time.monotonic()``).
_REQUEST_ENDS: ContextVar[float | None] = ContextVar("aifdata_request_ends", default=None)


def request_ends() -> float | None:
    """When the request this worker thread serves times out (``time.monotonic()``; None
    outside a request): work that must not outlive its answer stops before then."""
    return _REQUEST_ENDS.get()


async def read_body(request: Request, seconds: float) -> bytes:
    """The request's body, arrived within ``seconds`` (:class:`RequestTimeout` after): a
    client sending it a byte at a time holds a connection no longer than a request may
    take (the body is read before its token is checked)."""
    with anyio.move_on_after(seconds) as scope:
        return await request.body()
    assert scope.cancelled_caught
    raise RequestTimeout(f"the request body took longer than {seconds:g} s to arrive")


def token_of(request: Request) -> str | None:
    """The token a request names: ``Authorization: Bearer ...``, else the cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return request.cookies.get(TOKEN_COOKIE)


def _forgeable(request: Request) -> bool:
    """Whether a request changes something on the strength of the cookie alone (which
    another site's page can make a browser send)."""
    by_cookie = "authorization" not in request.headers and TOKEN_COOKIE in request.cookies
    unsafe = request.method not in SAFE_METHODS
    return by_cookie and unsafe and request.headers.get(CSRF_HEADER) != CSRF_VALUE


def no_nul(name: str, value: str) -> str:
    """``value``, refused (BadArgument) when it holds a NUL, which no name, path or word
    holds (and PostgreSQL's text refuses)."""
    if "\x00" in value:
        raise BadArgument(f"parameter {name!r} holds a NUL character")
    return value


@dataclass(frozen=True)
class Call:
    """One request to a JSON endpoint, as its handler sees it (in a worker thread, acting
    as :attr:`caller`)."""

    service: Service
    caller: Caller
    params: QueryParams
    body: bytes = b""

    @property
    def catalog(self) -> Catalog:
        return self.service.catalog

    def text(self, name: str, default: str | None = None, max_chars: int = 1024) -> str:
        """The query parameter ``name`` (given once); BadArgument if missing or too long."""
        values = self.params.getlist(name)
        if len(values) > 1:
            raise BadArgument(f"parameter {name!r} given {len(values)} times; give it once")
        if not values:
            if default is None:
                raise BadArgument(f"parameter {name!r} is missing")
            return default
        if len(values[0]) > max_chars:
            raise BadArgument(f"parameter {name!r} is longer than {max_chars} characters")
        return no_nul(name, values[0])

    def optional(self, name: str, max_chars: int = 1024) -> str | None:
        """The query parameter ``name``, None when missing or empty."""
        return self.text(name, "", max_chars) or None

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        """The query parameter ``name`` as a whole number from ``low`` to ``high``."""
        text = self.text(name, "", 20)
        if not text:
            return default
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise BadArgument(
                f"parameter {name!r} must be a whole number from {low} to {high}, got {text!r}"
            )
        return int(text)


Handler = Callable[[Call], Any]


def api_route(path: str, handler: Handler, methods: Sequence[str] = ("GET",)) -> Route:
    """A JSON endpoint: ``handler(call)`` runs in a worker thread as the caller and returns
    what is sent as JSON; an error is sent as ``{"error": {"type", "message"}}``."""

    async def endpoint(request: Request) -> Response:
        try:
            service: Service = request.app.state.service
            timeout = service.settings.request_timeout
            body = b"" if request.method in ("GET", "HEAD") else await read_body(request, timeout)
            params = request.query_params
            result = await service.call(request, lambda c: handler(Call(service, c, params, body)))
        except Exception as exc:
            return error_response(exc)
        return JsonResponse(result)

    return Route(path, endpoint, methods=list(methods), name=handler.__name__)

"""The MCP tools over streamable HTTP, for ``aifdata serve`` to mount at ``/mcp``.

Every request must carry ``Authorization: Bearer TOKEN``; the host's
``authenticate(token)`` names its principal (raising refuses it: 401, before
any MCP message is read; :class:`RateLimited`: 429). It may also give the request a
:class:`~._limits.Slot` among its token's running requests (:class:`Admitted`), held
until the request is answered and every tool call's worker thread has ended.
The server is stateless (each POST is answered alone, as JSON), so each tool call acts
as the token of its own request, and no session outlives a revoked token. The host app
runs :meth:`McpEndpoint.running` in its lifespan (the SDK's session manager holds the
task group requests run in)::

    mcp = mcp_http(catalog, config, authenticate)
    app = Starlette(routes=[Route("/mcp", mcp.app)], lifespan=mcp.lifespan)

(``Route`` serves exactly ``/mcp``; ``Mount("/mcp", mcp.app)`` would serve ``/mcp/``.)
A host with a lifespan of its own enters ``async with mcp.running():`` in it. Without
it, requests fail: the SDK's session manager has no task group to run them in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from .. import AifDataError, Catalog, Config, one_line
from .._errors import InvalidToken, ServiceLimit
from ..catalog import Principal
from ._limits import Slot
from ._mcp import mcp_server
from ._responses import error_response, hide_location

#: Where a request's scope carries the principal its token named.
PRINCIPAL_KEY = "aifdata.principal"
#: Where a request's scope carries its slot among its token's running requests.
SLOT_KEY = "aifdata.slot"

#: The address of the client whose token ``authenticate`` is checking (set around the call,
#: so a host can slow down one client's bad tokens without slowing down every client).
REQUEST_CLIENT: ContextVar[str] = ContextVar("aifdata_mcp_client", default="")

#: What an ``authenticate`` callback may raise for a token it refuses, besides aifdata's
#: own errors (anything else is a server error).
REFUSED = (PermissionError, LookupError, ValueError)


@dataclass(frozen=True)
class Admitted:
    """What ``authenticate`` may answer: the token's principal, and the request's slot
    among its token's running requests."""

    principal: Principal
    slot: Slot | None = None


@dataclass(frozen=True)
class BearerApp:
    """An ASGI app: each request as its bearer token's principal; 401 without a good token."""

    session_manager: StreamableHTTPSessionManager
    authenticate: Callable[[str], Principal | Admitted]
    #: Whose location no error message names.
    catalog: Catalog | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        token = _bearer(scope)
        if token is None:
            refusal = InvalidToken("no token: send 'Authorization: Bearer <token>'")
            await error_response(refusal)(scope, receive, send)
            return
        client = scope.get("client")
        address = REQUEST_CLIENT.set(str(client[0]) if client else "")
        try:
            found = await anyio.to_thread.run_sync(self.authenticate, token)
        except (InvalidToken, ServiceLimit) as exc:  # as the API says it: 401, 429
            await error_response(exc)(scope, receive, send)
            return
        except REFUSED as exc:  # an authenticate callback's own refusal
            refusal = InvalidToken(f"the bearer token was refused: {one_line(exc)}")
            await error_response(refusal)(scope, receive, send)
            return
        except AifDataError as exc:  # a fault of the catalog: a 500, as the API answers it,
            # whose text (naming the catalog's location) stays in the server's log
            hidden = hide_location(exc, self.catalog) if self.catalog is not None else exc
            await error_response(hidden)(scope, receive, send)
            return
        finally:
            REQUEST_CLIENT.reset(address)
        admitted = found if isinstance(found, Admitted) else Admitted(found)
        scope = {**scope, PRINCIPAL_KEY: admitted.principal, SLOT_KEY: admitted.slot}
        try:
            await self.session_manager.handle_request(scope, receive, send)
        finally:
            if admitted.slot is not None:
                admitted.slot.release()


@dataclass(frozen=True)
class McpEndpoint:
    """The MCP tools as an ASGI app (:attr:`app`, to route ``/mcp`` to), and what must run
    while it serves (:meth:`running`, in the host app's lifespan)."""

    server: MCPServer
    app: BearerApp

    def running(self) -> AbstractAsyncContextManager[None]:
        """The SDK session manager's run, for the host app's lifespan (once per endpoint):
        ``async with endpoint.running(): yield`` inside the host's own lifespan."""
        return self.app.session_manager.run()

    @asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """A Starlette ``lifespan=`` for a host with nothing else to run at start-up."""
        async with self.running():
            yield


def mcp_http(
    catalog: Catalog,
    config: Config,
    authenticate: Callable[[str], Principal | Admitted],
    *,
    timeout: float | None = None,
) -> McpEndpoint:
    """The MCP tools over ``catalog`` as a streamable HTTP endpoint whose requests act as
    ``authenticate(bearer token)``, each tool call a tool error past ``timeout`` seconds.
    Mount :attr:`McpEndpoint.app`; run :meth:`McpEndpoint.running` in the host app's
    lifespan."""
    server = mcp_server(catalog, config, request_principal, slot_of=request_slot, timeout=timeout)
    # DNS-rebinding checks keep web pages from reaching a local server that trusts whoever
    # reaches it; every request here needs a bearer token, which such a page does not hold
    # (and the host's name is the site's, not a list known here).
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return McpEndpoint(server, BearerApp(server.session_manager, authenticate, catalog))


def request_principal(ctx: Context) -> Principal:
    """The principal the request's bearer token named (set by :class:`BearerApp`)."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    who = scope.get(PRINCIPAL_KEY)
    if not isinstance(who, Principal):
        raise ToolError("no authenticated principal for this request")
    return who


def request_slot(ctx: Context) -> Slot | None:
    """The slot the request holds among its token's running requests (set by
    :class:`BearerApp`)."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    slot = scope.get(SLOT_KEY)
    return slot if isinstance(slot, Slot) else None


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None

"""The catalog as a service: ``aifdata serve`` (an HTTP API with tokens that vends
presigned URLs, and a web page) and ``aifdata mcp`` (a Model Context Protocol server).

Every request acts as its token's principal (:func:`aifdata.catalog.acting_as`), with
the same grants and audit as the library.

For the parts built on it (the web page, the MCP server, presigned URLs):

* ``build_app(catalog, settings, extra_routes)``: Starlette routes of their own; each finds
  the :class:`Service` at ``request.app.state.service``.
* ``api_route(path, handler, methods)``: a JSON endpoint whose ``handler(call)`` runs in a
  worker thread as the caller, errors sent as ``{"error": {"type", "message"}}``
  (:func:`error_response`); ``call.text/integer/optional`` read query parameters.
* ``await service.call(request, work)``: ``work(caller)`` as the request's token's principal
  (Bearer header, else the ``aifdata_token`` cookie, :data:`TOKEN_COOKIE`), rate-limited
  and within the timeout; ``await service.run_as(principal, work)`` for a principal found
  otherwise. A request that changes something with the cookie alone must send
  ``X-Requested-With: aifdata`` (:data:`CSRF_HEADER`, :data:`CSRF_VALUE`).
* ``service.identify(token_text)`` -> :class:`Caller` (blocking: in a worker thread).
"""

from ._app import build_app
from ._calls import (
    CSRF_HEADER,
    CSRF_VALUE,
    TOKEN_COOKIE,
    Call,
    Caller,
    Service,
    api_route,
    token_of,
)
from ._mcp import mcp_server, run_stdio
from ._mcp_http import McpEndpoint, mcp_http
from ._responses import error_response
from ._settings import ServiceSettings
from ._vending import presign_file
from ._web import WEB_ROUTES

__all__ = [
    "CSRF_HEADER",
    "CSRF_VALUE",
    "TOKEN_COOKIE",
    "WEB_ROUTES",
    "Call",
    "Caller",
    "McpEndpoint",
    "Service",
    "ServiceSettings",
    "api_route",
    "build_app",
    "error_response",
    "mcp_http",
    "mcp_server",
    "presign_file",
    "run_stdio",
    "token_of",
]

"""The catalog as a service: ``aifdata serve`` (an HTTP API with tokens that vends
presigned URLs, and a web page) and ``aifdata mcp`` (a Model Context Protocol server).

Every request acts as its token's principal (:func:`aifdata.catalog.acting_as`), with
the same grants and audit as the library."""

from ._app import build_app
from ._calls import TOKEN_COOKIE, Call, Caller, Service, api_route, token_of
from ._mcp import mcp_server, run_stdio
from ._mcp_http import McpEndpoint, mcp_http
from ._responses import error_response
from ._settings import ServiceSettings
from ._vending import presign_file
from ._web import WEB_ROUTES

__all__ = [
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

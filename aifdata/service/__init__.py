"""The catalog as a service: ``aifdata serve`` (an HTTP API with tokens that vends
presigned URLs, and a web page) and ``aifdata mcp`` (a Model Context Protocol server).

Every request acts as its token's principal (:func:`aifdata.catalog.acting_as`), with
the same grants and audit as the library."""

from ._app import build_app
from ._calls import TOKEN_COOKIE, Call, Caller, Service, api_route, token_of
from ._responses import error_response
from ._settings import ServiceSettings
from ._vending import presign_file

__all__ = [
    "TOKEN_COOKIE",
    "Call",
    "Caller",
    "Service",
    "ServiceSettings",
    "api_route",
    "build_app",
    "error_response",
    "presign_file",
    "token_of",
]

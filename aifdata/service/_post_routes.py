"""JSON endpoints that act (``POST``): they take their token from the
``Authorization: Bearer`` header only, never from the web page's cookie, so another
site's page cannot make a signed-in browser call them (a cross-site form or ``fetch``
sends the cookie, but cannot set that header without a CORS preflight this service
never grants).

Their handlers get the path's parameters (``{id}``) with the query's, and the request's
JSON body through :func:`json_body`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._errors import BadArgument, InvalidToken
from ._calls import Call, Handler, Service, read_body
from ._responses import JsonResponse, error_response

#: What a POST without the header is told.
BEARER_ONLY = (
    "this endpoint takes its token from 'Authorization: Bearer <token>' only (not a cookie)"
)


def bearer_token(request: Request) -> str:
    """The token of the ``Authorization: Bearer`` header; :class:`InvalidToken` without it."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidToken(BEARER_ONLY)
    return value.strip()


def post_route(path: str, handler: Handler) -> Route:
    """A POST endpoint: ``handler(call)`` runs as the caller named by the bearer header."""

    async def endpoint(request: Request) -> Response:
        try:
            bearer_token(request)
            service: Service = request.app.state.service
            body = await read_body(request, service.settings.request_timeout)
            params = QueryParams([*request.query_params.multi_items(),
                                  *request.path_params.items()])  # fmt: skip
            result = await service.call(request, lambda c: handler(Call(service, c, params, body)))
        except Exception as exc:
            return error_response(exc)
        return JsonResponse(result)

    return Route(path, endpoint, methods=["POST"], name=handler.__name__)


def json_body(call: Call) -> dict[str, Any]:
    """The request's body: one JSON object (BadArgument otherwise)."""
    try:
        body = json.loads(call.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadArgument(f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadArgument(f"the request body must be a JSON object, got {type(body).__name__}")
    return body

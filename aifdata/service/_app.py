"""The ASGI application of ``aifdata serve``: the JSON endpoints, the body limit, and JSON
for what no route answers.

A group of endpoints is one module with a ``ROUTES`` list of :func:`~._calls.api_route`
routes (``_api``: the catalog's read endpoints; ``_vending``: presigned GETs, ``info``, ``ls``;
``_uploads``: presigned PUTs and their commit), named once in :data:`ROUTES` here.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import aifdata.service._api as _api

from .._errors import NotFound
from ..catalog import Catalog
from ._calls import Service
from ._limits import BodyLimit
from ._responses import error_response
from ._settings import ServiceSettings
from ._uploads import ROUTES as UPLOAD_ROUTES
from ._vending import ROUTES as VENDING_ROUTES

#: The service's own endpoints, a module's ``ROUTES`` at a time.
ROUTES: tuple[BaseRoute, ...] = (*_api.ROUTES, *VENDING_ROUTES, *UPLOAD_ROUTES)


async def _no_endpoint(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(
            {"error": {"type": "MethodNotAllowed", "message": message}}, status_code=405
        )
    return error_response(NotFound(f"no endpoint {request.method} {request.url.path}"))


def build_app(
    catalog: Catalog,
    settings: ServiceSettings | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    *,
    mcp: bool = False,
) -> Starlette:
    """The service's ASGI application over ``catalog`` (``uvicorn`` runs it).

    ``extra_routes`` adds routes of other parts (the web page); they find the
    :class:`Service` at ``request.app.state.service``. ``mcp`` serves the MCP tools at
    ``/mcp`` (streamable HTTP), each request as its bearer token's principal, within the
    token's rate and its cap of requests running, each tool call within the request
    timeout; the app's lifespan then runs the MCP SDK's session manager.
    """
    settings = settings or ServiceSettings.from_config(catalog.config)
    service = Service(catalog, settings)
    routes: list[BaseRoute] = [*ROUTES, *extra_routes]
    lifespan = None
    if mcp:
        from ._mcp_http import REQUEST_CLIENT, Admitted, mcp_http

        def admit(token: str) -> Admitted:
            caller, slot = service.admit(token, REQUEST_CLIENT.get())
            return Admitted(caller.principal, slot)

        endpoint = mcp_http(catalog, catalog.config, admit, timeout=settings.request_timeout)
        routes.append(Route("/mcp", endpoint.app))
        lifespan = endpoint.lifespan
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(BodyLimit, max_bytes=settings.max_request_bytes, refuse=error_response)
        ],
        exception_handlers={404: _no_endpoint, 405: _no_endpoint},
        lifespan=lifespan,
    )
    app.state.service = service
    return app

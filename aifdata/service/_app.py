"""The ASGI application of ``aifdata serve``: the JSON endpoints of :mod:`._api`, the body
limit, and JSON for what no route answers."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from .._errors import NotFound
from ..catalog import Catalog
from ._api import ROUTES
from ._calls import Service
from ._limits import BodyLimit
from ._responses import error_response
from ._settings import ServiceSettings
from ._uploads import ROUTES as UPLOAD_ROUTES
from ._vending import ROUTES as VENDING_ROUTES


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
) -> Starlette:
    """The service's ASGI application over ``catalog`` (``uvicorn`` runs it).

    ``extra_routes`` adds routes of other parts (the web page, the MCP server); they find
    the :class:`Service` at ``request.app.state.service``.
    """
    settings = settings or ServiceSettings.from_config(catalog.config)
    app = Starlette(
        routes=[*ROUTES, *VENDING_ROUTES, *UPLOAD_ROUTES, *extra_routes],
        middleware=[
            Middleware(BodyLimit, max_bytes=settings.max_request_bytes, refuse=error_response)
        ],
        exception_handlers={404: _no_endpoint, 405: _no_endpoint},
    )
    app.state.service = Service(catalog, settings)
    return app

"""Errors as JSON: ``{"error": {"type": ..., "message": ...}}`` with an HTTP status, and the
same one-line message the command line prints."""

from __future__ import annotations

import json
import logging
import math
from typing import Any, TypeVar

from starlette.responses import JSONResponse

from .._errors import (
    AccessDenied,
    AifDataError,
    BadArgument,
    BadName,
    BadURL,
    Conflict,
    FormatError,
    InvalidToken,
    NotFound,
    PathEscape,
    RateLimited,
    RequestTimeout,
    RequestTooLarge,
    StorageUnavailable,
    UnknownDataset,
    one_line,
)
from ..catalog import Catalog

log = logging.getLogger("aifdata.service")
E = TypeVar("E", bound=BaseException)

#: The status of each error, the most specific class first.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidToken, 401),
    (RequestTooLarge, 413),
    (RateLimited, 429),
    (RequestTimeout, 504),
    (UnknownDataset, 404),  # before AccessDenied: a hidden dataset is a missing one
    (PathEscape, 400),
    (BadName, 400),
    (BadURL, 400),
    (BadArgument, 400),
    (FormatError, 422),
    (Conflict, 409),
    (NotFound, 404),
    (FileNotFoundError, 404),
    (AccessDenied, 403),
    (PermissionError, 403),
    (StorageUnavailable, 502),
)


class JsonResponse(JSONResponse):
    """JSON, with what the standard encoder does not know (a path, a date) as its text."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str)
        return text.encode("utf-8")


def hide_location(exc: E, catalog: Catalog) -> E:
    """``exc``, its message saying "the catalog" where it named the catalog's location (a
    file on the server, or a database's host, user and name): no caller learns it."""
    where = str(catalog.path)
    if where and exc.args and isinstance(exc.args[0], str) and where in exc.args[0]:
        exc.args = (exc.args[0].replace(where, "the catalog"), *exc.args[1:])
    return exc


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an error the service reports as it is (None: an internal error)."""
    return next((status for cls, status in STATUS if isinstance(exc, cls)), None)


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON response for an error; an unexpected one is logged, and its text kept from
    the caller."""
    status = status_of(exc)
    if status is None:
        log.error("internal error", exc_info=exc)
        kind, message, status = "InternalError", "internal error (the server's log says why)", 500
    else:
        kind = type(exc).__name__ if isinstance(exc, AifDataError) else _builtin_kind(status)
        message = one_line(exc)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="aifdata"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    body = {"error": {"type": kind, "message": message}}
    return JsonResponse(body, status_code=status, headers=headers)


def _builtin_kind(status: int) -> str:
    return {404: "NotFound", 403: "AccessDenied"}.get(status, "Error")

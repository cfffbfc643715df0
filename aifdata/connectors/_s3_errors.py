"""Translate S3 client errors to aifdata errors, once, at the connector boundary.

Three clients can fail under the S3 connector: s3fs (which already maps S3
error codes to builtins), botocore (``ClientError`` with a code) and obstore
(its own exception classes). One table per client maps the error *type or
code* to an aifdata class; messages are never parsed. The result names the
``s3://bucket/key`` and the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator

from .._errors import (
    AccessDenied,
    AifDataError,
    NotFound,
    StorageError,
    StorageUnavailable,
)


class S3Fault(Exception):
    """What went wrong on the wire, already said in full (no answer, reset, cut short,
    refused, HTTP 5xx), with the aifdata class it becomes; raised by the clients that
    aifdata drives itself (ranged reads, the request budget of s3fs calls)."""

    def __init__(self, kind: type[AifDataError], message: str) -> None:
        super().__init__(message)
        self.kind = kind


class BudgetSpent(Exception):
    """An S3 API call (``operation``), its retries included, outlasted the retry budget.

    Not a ``TimeoutError``: fsspec would turn that into its own ``FSTimeoutError``."""

    def __init__(self, operation: str, budget: float) -> None:
        super().__init__(f"{operation}: no complete answer within {budget:g} s")
        self.operation, self.budget = operation, budget


_CODE_TO_ERROR: dict[str, type[AifDataError]] = {
    "NoSuchKey": NotFound,
    "NoSuchBucket": NotFound,
    "NotFound": NotFound,
    "404": NotFound,
    "AccessDenied": AccessDenied,
    "403": AccessDenied,
    "InvalidAccessKeyId": AccessDenied,
    "SignatureDoesNotMatch": AccessDenied,
    "AllAccessDisabled": AccessDenied,
    "SlowDown": StorageUnavailable,
    "ServiceUnavailable": StorageUnavailable,
    "503": StorageUnavailable,
    "RequestTimeout": StorageUnavailable,
    "InternalError": StorageUnavailable,
    "500": StorageUnavailable,
    "502": StorageUnavailable,
    "504": StorageUnavailable,
}


def _obstore_table() -> dict[type[BaseException], type[AifDataError]]:
    try:
        from obstore import exceptions as obs
    except ImportError:  # pragma: no cover - obstore is a core dependency
        return {}
    return {
        obs.NotFoundError: NotFound,
        obs.PermissionDeniedError: AccessDenied,
        obs.UnauthenticatedError: AccessDenied,
    }


def _botocore_connection_errors() -> tuple[type[BaseException], ...]:
    from botocore import exceptions as bce

    return (
        bce.EndpointConnectionError,
        bce.ConnectTimeoutError,
        bce.ConnectionClosedError,
        bce.ReadTimeoutError,
    )


_OBSTORE_ERRORS = _obstore_table()
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    socket.timeout,
    asyncio.TimeoutError,
    *_botocore_connection_errors(),
)
_CONNECTION_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ETIMEDOUT}


def translate(exc: BaseException, url: str, endpoint: str) -> AifDataError:
    """Return the aifdata error for ``exc`` raised while touching ``url``."""
    if isinstance(exc, AifDataError):
        return exc
    if isinstance(exc, S3Fault):
        return exc.kind(str(exc))
    if isinstance(exc, BudgetSpent):
        return StorageUnavailable(
            f"no answer from {endpoint} within {exc.budget:.3g} s "
            "(retry_budget + bytes sent / min_rate), "
            f"{exc.operation} for {url}"
        )
    where = f"{url} (endpoint {endpoint})"
    kind = _classify(exc)
    if kind is NotFound:
        return NotFound(f"{where}: no such key or bucket")
    if kind is AccessDenied:
        return AccessDenied(f"{where}: access denied by the S3 server")
    if kind is StorageUnavailable:
        return StorageUnavailable(f"{_what_happened(exc, endpoint)} for {url}: {_reason(exc)}")
    return StorageError(f"{where}: {_reason(exc)}")


def _what_happened(exc: BaseException, endpoint: str) -> str:
    """The fault in words, from the exception types (and S3 status) down its causes."""
    from botocore import exceptions as bce

    for link in _causes(exc):
        status = _client_error_status(link)
        if status is not None:
            return f"{endpoint} answered HTTP {status} {_client_error_code(link)}"
        if isinstance(link, bce.ReadTimeoutError | socket.timeout):
            return f"no answer from {endpoint} within the read timeout"
        if isinstance(link, bce.ConnectTimeoutError):
            return f"could not connect to {endpoint} within the connect timeout"
        if isinstance(link, bce.ConnectionClosedError) or _errno_of(link) == errno.ECONNRESET:
            return f"connection reset by {endpoint}"
    return f"cannot reach S3 endpoint {endpoint}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _client_error_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if isinstance(status, int) else None


def _classify(exc: BaseException) -> type[AifDataError]:
    for cls, error in _OBSTORE_ERRORS.items():
        if isinstance(exc, cls):
            return error
    code = _client_error_code(exc)
    if code is not None:
        return _CODE_TO_ERROR.get(code, StorageError)
    if isinstance(exc, FileNotFoundError):
        return NotFound
    if isinstance(exc, PermissionError):
        return AccessDenied
    if isinstance(exc, _CONNECTION_ERRORS) or _errno_of(exc) in _CONNECTION_ERRNOS:
        return StorageUnavailable
    if exc.__cause__ is not None and exc.__cause__ is not exc:
        return _classify(exc.__cause__)
    return StorageError


def _client_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code is not None:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return str(status) if status is not None else None
    return None


def _errno_of(exc: BaseException) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def translated(url: str, endpoint: str) -> Iterator[None]:
    """Re-raise anything but an aifdata error as its aifdata translation."""
    try:
        yield
    except AifDataError:
        raise
    except (IsADirectoryError, NotADirectoryError, FileExistsError):
        raise
    except Exception as exc:
        raise translate(exc, url, endpoint) from exc

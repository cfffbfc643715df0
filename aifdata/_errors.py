"""The exceptions aifdata raises.

Every error derives from :class:`AifDataError`, and each subclass also derives
from the builtin that callers already catch, so ``except FileNotFoundError``
keeps working around aifdata code::

    AifDataError
     ├── ConfigError (ValueError)        a config file or object is wrong
     ├── NotFound (FileNotFoundError)    no such file, prefix or bucket
     │    ├── MountNotFound              no mount holds this logical path
     │    └── UnknownDataset (+ AccessDenied)  no such dataset, or one the caller may not read
     ├── AccessDenied (PermissionError)  storage or policy refused the operation
     │    ├── PathEscape                 the path would leave its tier's root
     │    └── InvalidToken               an API token that is malformed, unknown, expired or revoked
     ├── StorageUnavailable (ConnectionError)  the endpoint cannot be reached
     ├── StorageError (OSError)          any other storage failure
     ├── CatalogError                    the catalog file cannot be opened or written
     │    └── IngestError                an ingest failed part-way; nothing was recorded
     ├── FormatError (ValueError)        bad bytes in a file of a known format
     ├── BadURL (ValueError)             a mistyped URL, or a scheme no tier serves
     ├── BadName (ValueError)            a malformed dataset name, NAME@VERSION or grant pattern
     ├── BadArgument (ValueError)        a service request's parameter is missing or malformed
     ├── Conflict                        the request does not fit the data's state (a file
     │                                   only on a PFS tier; an upload not all arrived)
     └── ServiceLimit                    a service request went past a limit
          ├── RequestTooLarge            its body is larger than the service takes
          ├── RateLimited                its token made too many requests (retry_after seconds)
          └── RequestTimeout (TimeoutError)  it took longer than the service allows
"""

from __future__ import annotations


class AifDataError(Exception):
    """Root of every error raised by aifdata."""


class ConfigError(AifDataError, ValueError):
    """A configuration file or object is malformed; the message names the file and key."""


class NotFound(AifDataError, FileNotFoundError):
    """A file, prefix or bucket does not exist."""


class MountNotFound(NotFound):
    """No mount in the mount table holds the logical path."""


class AccessDenied(AifDataError, PermissionError):
    """Storage or an access policy refused the operation."""


class UnknownDataset(NotFound, AccessDenied):
    """No dataset by that name that the caller may read: it does not exist, or it is one
    they may not see. The two are not told apart (same class, same text)."""


class PathEscape(AccessDenied):
    """A path would resolve outside the root of its tier (``..``, absolute, symlink out)."""


class InvalidToken(AccessDenied):
    """An API token that does not authenticate: malformed, unknown, expired or revoked. The
    four are not told apart (same class, same text); the audit trail records which."""


class StorageUnavailable(AifDataError, ConnectionError):
    """The storage endpoint cannot be reached (refused, timed out, dropped)."""


class StorageError(AifDataError, OSError):
    """Any other failure reported by a storage back end."""


class CatalogError(AifDataError):
    """The catalog cannot be opened or written (locked, newer schema, unreadable)."""


class IngestError(CatalogError):
    """An ingest failed part-way; the message names the file. Nothing was recorded."""


class FormatError(AifDataError, ValueError):
    """A file does not hold what its format promises; names the file and offset."""


class BadURL(AifDataError, ValueError):
    """A URL with a mistyped or unsupported scheme (a usage error in the CLI)."""


class BadName(AifDataError, ValueError):
    """A malformed dataset name, ``NAME@VERSION`` reference or grant pattern (a usage error in
    the CLI); the message says which forms are accepted."""


class BadArgument(AifDataError, ValueError):
    """A service request's parameter is missing or malformed; the message names it."""


class Conflict(AifDataError):
    """The request does not fit the state of the data: a presigned URL for a file that only a
    PFS tier holds, the commit of an upload whose files have not all arrived."""


class ServiceLimit(AifDataError):
    """A request to ``aifdata serve`` went past one of its limits."""


class RequestTooLarge(ServiceLimit):
    """A request's body is larger than the service takes."""


class RateLimited(ServiceLimit):
    """A token made more requests than its rate allows; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(ServiceLimit, TimeoutError):
    """A request took longer than the service allows."""


def one_line(exc: BaseException) -> str:
    """An error in one line, as the command line and the service report it."""
    if isinstance(exc, OSError) and not isinstance(exc, AifDataError) and exc.strerror:
        # "[Errno 2] No such file or directory: 'x'" -> "x: no such file or directory"
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror[0].lower() + exc.strerror[1:]
        return f"{where}: {what}" if where else what
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    message = text[0] if text else type(exc).__name__
    if message.endswith(":") and len(text) > 1:  # "Parameter validation failed:" then why
        message = f"{message} {text[1]}"
    if not isinstance(exc, AifDataError) and type(exc).__name__ not in message:
        message = f"{type(exc).__name__}: {message}"
    return message

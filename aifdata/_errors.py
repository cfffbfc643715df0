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
     │    └── PathEscape                 the path would leave its tier's root
     ├── StorageUnavailable (ConnectionError)  the endpoint cannot be reached
     ├── StorageError (OSError)          any other storage failure
     ├── CatalogError                    the catalog file cannot be opened or written
     │    └── IngestError                an ingest failed part-way; nothing was recorded
     ├── FormatError (ValueError)        bad bytes in a file of a known format
     ├── BadURL (ValueError)             a mistyped URL, or a scheme no tier serves
     └── BadName (ValueError)            a malformed dataset name, NAME@VERSION or grant pattern
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

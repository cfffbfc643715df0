"""What a storage kind is: everything aifdata knows of ``s3``, ``pfs`` or a third kind.

A :class:`StorageKind` gathers, in one place, what the rest of aifdata asks of
a kind of storage: the config key of a tier's location (``url`` or ``path``)
and the options a tier may set (with their checks), how a location is written
in its one canonical spelling, the other spellings that reach the same bytes
(a symlinked directory), whether it is fast local storage (read first by
default), which URLs it serves, and which :class:`~aifdata.connectors.Connector`
serves a tier of it. A kind imports its heavy libraries only in its connector,
so checking a config never pays for them.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def shown(value: Any) -> str:
    """A short, one-line repr of a value given in a config."""
    return _REPR.repr(value)


@dataclass(frozen=True)
class OptionCheck:
    """What a tier option must be: a phrase for messages and a predicate."""

    expected: str
    accepts: Callable[[Any], bool]

    def problem(self, value: Any) -> str | None:
        return None if self.accepts(value) else f"expected {self.expected}, got {shown(value)}"


def _is_http_url(value: Any) -> bool:
    if value is None:
        return True
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def _is_positive_seconds(value: Any) -> bool:
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and float(value) > 0


TEXT = OptionCheck("a string", lambda v: v is None or isinstance(v, str))
FLAG = OptionCheck("true or false", lambda v: isinstance(v, bool))
COUNT = OptionCheck("a positive integer", _is_positive_int)
BYTES = OptionCheck("a positive integer (bytes)", _is_positive_int)
SECONDS = OptionCheck("a positive number (seconds)", _is_positive_seconds)
HTTP_URL = OptionCheck("an http:// or https:// URL", _is_http_url)
TABLE = OptionCheck(
    "a table of string keys",
    lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
)


def join(root: str, rel: str) -> str:
    """``root/rel`` (``root`` alone for the empty ``rel``); a bare root (``/``,
    ``memory://``) keeps its slashes."""
    base = root if root == "/" or root.endswith("://") else root.rstrip("/")
    if not rel:
        return base
    return f"{base}{rel}" if base.endswith("/") else f"{base}/{rel}"


class StorageKind:
    """One kind of storage. Subclass it, set the class attributes, and register the
    instance under ``[project.entry-points."aifdata.connectors"]``."""

    #: The ``kind = "..."`` of a tier.
    name: ClassVar[str]
    #: The config key that holds a tier's location.
    location_key: ClassVar[str] = "url"
    #: How a location looks, for messages.
    location_shape: ClassVar[str] = "a URL"
    #: Option name -> its check.
    options: ClassVar[Mapping[str, OptionCheck]] = {}
    #: Options whose values are secrets: a tier's repr shows them as ``'***'``.
    secret_options: ClassVar[frozenset[str]] = frozenset()
    #: Fast storage on (or mounted into) this machine: read before remote tiers by default.
    local: ClassVar[bool] = False
    #: Copies on it belong to one node (a node-local cache): kept in the node's own
    #: index, never recorded in the site catalog, never a write tier.
    node_local: ClassVar[bool] = False
    #: Whether its URLs outside every mount may be opened directly, with default settings
    #: (``s3://`` with the usual AWS variables); otherwise only through a mount's tier.
    direct: ClassVar[bool] = False
    #: ``"module:Class"`` of the connector, imported when a tier is first used.
    connector: ClassVar[str]
    #: What to install when the connector's libraries are missing.
    install_hint: ClassVar[str] = "pip install aifdata"

    def __repr__(self) -> str:
        return f"<storage kind {self.name!r}>"

    def location_problem(self, location: Any) -> str | None:
        """Why ``location`` cannot be a tier's location of this kind, or None."""
        ok = isinstance(location, str) and bool(location)
        return None if ok else f"expected {self.location_shape}, got {shown(location)}"

    def option_problem(self, options: Mapping[str, Any]) -> tuple[str, str] | None:
        """The first (option, problem) among ``options``, or None when all are valid."""
        for option, value in options.items():
            check = self.options.get(option)
            if check is None:
                return option, f"unknown {self.name} option; expected one of " + (
                    ", ".join(sorted(self.options)) or "(none)"
                )
            problem = check.problem(value)
            if problem:
                return option, problem
        return None

    def normalise(self, location: str) -> str:
        """The one spelling of a tier's location (no trailing slash)."""
        return location.rstrip("/")

    def serves(self, url: str) -> bool:
        """Whether ``url`` (outside any mount) is a location of this kind."""
        return False

    def direct_filesystem(self, url: str) -> Any:
        """The fsspec filesystem for a URL of this kind outside every mount, with the
        kind's default settings (only kinds with ``direct`` set are asked)."""
        raise NotImplementedError(f"tier kind {self.name!r} opens no URL outside a mount")

    def aliases(self, url: str) -> set[str]:
        """``url`` and the other spellings that reach the same bytes (grants match them all)."""
        return {url}

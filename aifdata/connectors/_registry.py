"""The table of storage kinds: built-ins by dotted path, third parties by entry point.

Like fsspec's ``registry.py``, a kind is named by ``"module:object"`` and its
module is imported only when a tier of that kind is first checked. A third
party adds a kind with one module and one entry point::

    [project.entry-points."aifdata.connectors"]
    toy = "toykind:TOY"          # a StorageKind instance (or subclass)

A broken or duplicate entry point warns instead of breaking every config.
"""

from __future__ import annotations

import threading
import warnings
from importlib.metadata import entry_points

from .._errors import ConfigError
from ._kind import StorageKind, load_object

ENTRY_POINT_GROUP = "aifdata.connectors"
_BUILTINS = {
    "s3": "aifdata.connectors._s3_settings:S3_KIND",
    "pfs": "aifdata.connectors.pfs:PFS_KIND",
    "fsspec": "aifdata.connectors.fsspec_tier:FSSPEC_KIND",
}
_loaded: dict[str, StorageKind] = {}
_lock = threading.Lock()
_extra: dict[str, str] | None = None


def _entry_points() -> dict[str, str]:
    global _extra
    if _extra is None:
        found: dict[str, str] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _BUILTINS or ep.name in found:
                warnings.warn(
                    f"storage kind {ep.name!r} from {ep.value} is ignored: the name is taken",
                    stacklevel=3,
                )
                continue
            found[ep.name] = ep.value
        _extra = found
    return _extra


def rescan() -> None:
    """Forget the entry points read so far (after installing a kind at run time)."""
    global _extra
    with _lock:
        _extra = None
        for name in [n for n in _loaded if n not in _BUILTINS]:
            del _loaded[name]


def names() -> list[str]:
    """Every kind's name: the built-ins first, then the installed ones, sorted."""
    return [*_BUILTINS, *sorted(set(_entry_points()) | set(_loaded) - set(_BUILTINS))]


def register(kind: StorageKind | type[StorageKind]) -> StorageKind:
    """Add (or replace) a kind at run time; returns the instance registered."""
    instance = kind() if isinstance(kind, type) else kind
    with _lock:
        _loaded[instance.name] = instance
    return instance


def get_kind(name: str) -> StorageKind:
    """The kind called ``name``; ConfigError names the known ones."""
    with _lock:
        found = _loaded.get(name)
    if found is not None:
        return found
    target = _BUILTINS.get(name) if isinstance(name, str) else None
    target = target or (_entry_points().get(name) if isinstance(name, str) else None)
    if target is None:
        known = ", ".join(repr(n) for n in names())
        raise ConfigError(f"tier kind {name!r} is not one of {known}")
    made = load_object(target, f"tier kind {name!r}", "pip install the package that provides it")
    kind = made() if isinstance(made, type) else made
    if not isinstance(kind, StorageKind) or kind.name != name:
        raise ConfigError(f"tier kind {name!r}: {target} is not a StorageKind named {name!r}")
    with _lock:
        return _loaded.setdefault(name, kind)


def kind_of_url(url: str) -> StorageKind | None:
    """The kind that serves a location given outside any mount (``s3://...``, a path)."""
    for name in names():
        try:
            kind = get_kind(name)
        except ConfigError:
            continue
        if kind.serves(url):
            return kind
    return None

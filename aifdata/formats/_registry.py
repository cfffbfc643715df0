"""The format registry: built-ins loaded on first use, third parties by entry point.

A third-party package registers a plug-in class in its ``pyproject.toml``::

    [project.entry-points."aifdata.formats"]
    fasta = "mypackage.fasta:FastaFormat"
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points

from .._errors import FormatError
from ._base import FormatPlugin, use_lookup

ENTRY_POINT_GROUP = "aifdata.formats"
#: name -> "module:Class", imported only when the format is first asked for.
_BUILTINS = {
    "fastq": "aifdata.formats.fastq:FastqFormat",
    "geotiff": "aifdata.formats.geotiff:GeoTiffFormat",
    "root": "aifdata.formats.root:RootFormat",
}
#: Names formats had before codecs became a layer under them: old name -> format. A
#: partition planned then still names the old one; the format reads it (see
#: ``TextFormat.formerly``), and ``format=`` takes it. Not listed by :func:`available`.
ALIASES = {"fastq-gzip": "fastq", "fastq-bgzf": "fastq"}
_loaded: dict[str, FormatPlugin] = {}
_extra: dict[str, str] = {}
_unavailable: set[str] = set()  # formats whose library is missing: not retried per file
_lock = threading.Lock()
_scanned = False


def _entry_points() -> dict[str, str]:
    global _scanned
    if not _scanned:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _extra.setdefault(ep.name, ep.value)
        _scanned = True
    return _extra


def available() -> list[str]:
    """Names of every format: built-in, registered, or installed by entry point."""
    return sorted({*_BUILTINS, *_entry_points(), *_loaded})


def register(plugin: type[FormatPlugin] | FormatPlugin) -> FormatPlugin:
    """Add (or replace) a format plug-in; returns the instance registered."""
    instance = plugin() if isinstance(plugin, type) else plugin
    with _lock:
        _loaded[instance.name] = instance
        _unavailable.discard(instance.name)
    return instance


def get(name: str) -> FormatPlugin:
    """The plug-in called ``name``; FormatError (a ValueError) lists the known ones."""
    with _lock:
        found = _loaded.get(name)
    if found is not None:
        return found
    if name in ALIASES and name not in _entry_points():  # a name from before codecs
        return get(ALIASES[name])
    target = _BUILTINS.get(name) or _entry_points().get(name)
    if target is None:
        raise FormatError(f"no format {name!r}; known formats: {', '.join(available())}")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "aifdata":
            raise  # a bug in aifdata, not a missing extra
        raise FormatError(
            f"format {name!r} needs {exc.name or 'a missing package'}:"
            " pip install 'aifdata[formats]'"
        ) from exc
    return register(cls)


def _plugins() -> list[FormatPlugin]:
    """Every plug-in that loads (one whose library is missing cannot claim a file)."""
    names = [name for name in available() if name not in _unavailable]
    with _lock:
        if all(name in _loaded for name in names):
            return [_loaded[name] for name in names]
    out = []
    for name in names:
        try:
            out.append(get(name))
        except FormatError:
            _unavailable.add(name)
    return out


def detect(path: str, head: bytes | None = None) -> FormatPlugin | None:
    """The format of a file: by name first, confirmed by sniffing ``head`` when given."""
    plugins = _plugins()
    by_name = [p for p in plugins if p.matches_name(path)]
    if head is None:
        return by_name[0] if by_name else None
    for plugin in by_name + [p for p in plugins if p not in by_name]:
        if plugin.sniff(head, path):
            return plugin
    return None


use_lookup(get)

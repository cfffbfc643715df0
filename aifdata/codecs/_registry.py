"""The codec registry: built-ins loaded on first use, third parties by entry point.

A third-party package registers a codec class in its ``pyproject.toml``::

    [project.entry-points."aifdata.codecs"]
    zstd = "mypackage.zstd:ZstdCodec"

Compressions that aifdata recognises but has no codec for (zstd, bzip2) are
named by their magic bytes, so such a file is refused as what it is.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points

from .._errors import FormatError
from ._base import Codec

ENTRY_POINT_GROUP = "aifdata.codecs"
#: name -> ("module:Class", what to install when its library is missing).
_BUILTINS = {
    "none": ("aifdata.codecs.plain:Plain", ""),
    "bgzf": ("aifdata.codecs.bgzf:Bgzf", "aifdata[formats]"),
    "gzip": ("aifdata.codecs.gzip:Gzip", "aifdata[formats]"),
}
#: Compressions known by their first bytes but without a built-in codec: name -> magic.
_FOREIGN = {
    "zstd": (b"\x28\xb5\x2f\xfd",),
    "bzip2": tuple(b"BZh" + bytes([level]) + b"\x31\x41\x59\x26\x53\x59" for level in b"123456789"),
    "xz": (b"\xfd7zXZ\x00",),
}
_loaded: dict[str, Codec] = {}
_extra: dict[str, str] = {}
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
    """Names of every codec: built-in, registered, or installed by entry point."""
    return sorted({*_BUILTINS, *_entry_points(), *_loaded})


def register(codec: type[Codec] | Codec) -> Codec:
    """Add (or replace) a codec; returns the instance registered."""
    instance = codec() if isinstance(codec, type) else codec
    with _lock:
        _loaded[instance.name] = instance
    return instance


def get(name: str) -> Codec:
    """The codec called ``name``; FormatError (a ValueError) lists the known ones."""
    with _lock:
        found = _loaded.get(name)
    if found is not None:
        return found
    target, hint = _BUILTINS.get(name) or (_entry_points().get(name), "")
    if target is None:
        raise FormatError(f"no codec {name!r}; known codecs: {', '.join(available())}")
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "aifdata":
            raise  # a bug in aifdata, not a missing extra
        install = f"pip install '{hint}'" if hint else f"install what provides {target}"
        raise FormatError(
            f"codec {name!r} needs {exc.name or 'a missing package'}: {install}"
        ) from exc
    return register(cls)


def detect(head: bytes, url: str = "") -> Codec:
    """The codec of a file from its first bytes (``none`` when no compression is seen).

    FormatError for a compression known by its magic bytes that no codec reads.
    """
    for name in available():
        if name == "none":
            continue
        try:
            codec = get(name)
        except FormatError:
            continue  # its library is missing: it cannot claim a file
        if codec.sniff(head):
            return codec
    for name, magics in _FOREIGN.items():
        if head.startswith(magics):
            if name in available():
                get(name)  # installed but its library is missing: say what to install
            raise FormatError(
                f"{url}: byte 0: {name}-compressed data (it starts with {head[:4].hex(' ')});"
                f" no codec reads {name} (codecs: {', '.join(available())}; a package adds"
                f" one through the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
    return get("none")

"""The codec registry: built-ins loaded on first use, third parties by entry point.

A third-party package registers a codec class in its ``pyproject.toml``::

    [project.entry-points."aifdata.codecs"]
    zstd = "mypackage.zstd:ZstdCodec"

Compressions that aifdata recognises but has no codec for (zstd, bzip2) are
named by their magic bytes, so such a file is refused as what it is.
"""

from __future__ import annotations

from .._errors import FormatError
from .._plugins import Registry
from ._base import Codec

ENTRY_POINT_GROUP = "aifdata.codecs"
_FORMATS_EXTRA = "pip install 'aifdata[formats]'"
#: Compressions known by their first bytes but without a built-in codec: name -> magic.
_FOREIGN = {
    "zstd": (b"\x28\xb5\x2f\xfd",),
    "bzip2": tuple(b"BZh" + bytes([level]) + b"\x31\x41\x59\x26\x53\x59" for level in b"123456789"),
    "xz": (b"\xfd7zXZ\x00",),
}


REGISTRY: Registry[Codec] = Registry(
    ENTRY_POINT_GROUP,
    "codec",
    {
        "none": "aifdata.codecs.plain:Plain",
        "bgzf": "aifdata.codecs.bgzf:Bgzf",
        "gzip": "aifdata.codecs.gzip:Gzip",
    },
    FormatError,
    lambda name: f"no codec {name!r}; known codecs: {', '.join(available())}",
    Codec,
    hints={"bgzf": _FORMATS_EXTRA, "gzip": _FORMATS_EXTRA},
)


def available() -> list[str]:
    """Names of every codec: built-in, registered, or installed by entry point."""
    return sorted(REGISTRY.names())


def register(codec: type[Codec] | Codec) -> Codec:
    """Add (or replace) a codec; returns the instance registered."""
    return REGISTRY.register(codec)


def get(name: str) -> Codec:
    """The codec called ``name``; FormatError (a ValueError) lists the known ones."""
    return REGISTRY.get(name)


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

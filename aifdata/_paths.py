"""Clean logical paths: one spelling per file, and no way out of a tier.

Every path that reaches a connector passed through :func:`clean_path`, so a
connector only ever sees a relative POSIX path without ``.``, ``..``, empty
segments or NUL bytes. Percent-encoded dot segments (``%2e%2e``) and encoded
slashes are refused rather than decoded: a key that contains ``%`` is legal in
S3, but a spelling that *decodes* to a way out never is.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ._errors import PathEscape

PROTOCOL = "aif"
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


_PREFIX = f"{PROTOCOL}://"
_MAGIC = re.compile(r"[*?\[]")
_SUSPECT = re.compile(r"//|/\./|\.\.|%|\\|\x00")


def _is_canonical(path: str) -> bool:
    """True for the common, already-clean spelling (cheap: no splitting)."""
    return (
        not path.startswith(("/", "./", f"{PROTOCOL}:"))
        and not path.endswith(("/", "/."))
        and path != "."
        and _SUSPECT.search(path) is None
    )


def strip_protocol(path: str) -> str:
    """Drop ``aif://`` (or ``aif::``) and surrounding slashes."""
    for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}::"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    return path


def clean_path(path: str) -> str:
    """Return the canonical relative form of a logical path, or raise PathEscape.

    ``a//b/./c/`` becomes ``a/b/c`` and a bare leading ``/`` is the namespace
    root; ``..`` anywhere, an absolute path after ``aif://``, a backslash, NUL,
    or an encoded dot segment or separator is refused.
    """
    bare = path[len(_PREFIX) :] if path.startswith(_PREFIX) else path
    if _is_canonical(bare):
        return bare
    original = path
    path = strip_protocol(path)
    if path.startswith("/") and path != original:
        raise PathEscape(f"refusing path {original!r}: absolute path after '{PROTOCOL}://'")
    if "\x00" in path or "\\" in path:
        raise PathEscape(f"refusing path {original!r}: NUL or backslash in path")
    if _ENCODED_SEPARATOR.search(path):
        raise PathEscape(f"refusing path {original!r}: percent-encoded separator")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    for part in parts:
        if part == ".." or unquote(part) in ("..", "."):
            raise PathEscape(f"refusing path {original!r}: '..' segment leaves its root")
    return "/".join(parts)


def has_magic(path: str) -> bool:
    """Whether ``path`` holds glob characters."""
    return _MAGIC.search(path) is not None

"""Turn a user's URL (``aif://``, ``s3://`` or a local path) into a filesystem and a path."""

from __future__ import annotations

import os
import re
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from ._config import Config
from ._errors import BadURL
from ._filesystem import AifFileSystem


def resolve_url(url: str, config: Config, catalog: Any = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem and path for ``aif://``, ``s3://`` or a local path (or ``file://``).

    ``catalog`` is the one whose grants an ``aif://`` filesystem enforces
    (default: the one in ``$AIFDATA_HOME``).

    An ``s3://`` URL inside a mount's S3 tier uses that tier's endpoint and
    credentials; any other goes to s3fs with the usual AWS settings.
    """
    if url.startswith("aif://"):
        fs = AifFileSystem(config, catalog=catalog)
        return fs, fs._strip_protocol(url)
    if url.startswith("s3://"):
        return _s3_filesystem(url, config), url.removeprefix("s3://")
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    _refuse_other_schemes(url)
    local = LocalFileSystem()
    return local, os.path.abspath(url)


def _s3_filesystem(url: str, config: Config) -> AbstractFileSystem:
    from .connectors.s3 import S3Connector

    bare = url.removeprefix("s3://")
    for mount in config.mounts:
        for tier in mount.tiers:
            root = tier.url.removeprefix("s3://")
            if tier.kind == "s3" and (bare == root or bare.startswith(root.split("/")[0] + "/")):
                return S3Connector(tier).fs
    import s3fs

    return s3fs.S3FileSystem()


def _refuse_other_schemes(url: str) -> None:
    """A URL that is neither ``aif://``, ``s3://`` nor a local path is a mistake: say which."""
    scheme, sep, rest = url.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]+", scheme):
        return  # a local path (``C:`` style drive letters are one letter: not a scheme)
    if scheme.lower() in ("aif", "s3") and not rest.startswith("//"):
        raise BadURL(f"{url}: did you mean {scheme.lower()}://{rest.lstrip('/')}?")
    if rest.startswith("//"):
        raise BadURL(f"{url}: {scheme}:// is not supported here: use aif://, s3:// or a path")

"""Turn a user's URL (``aif://``, ``s3://``, another kind's URL, a local path) into a
filesystem and a path.

The ``aif://`` scheme is served by a resolver that the layer which builds the
virtual filesystem registers at import (:func:`register_scheme`), so the
modules that open bytes (format plug-ins, ingest) never import it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from ._config import Config, Mount
from ._errors import BadURL, PathEscape
from .connectors import Tier, connector_for, kind_of_url

#: How a scheme's URLs become a filesystem and a path, given the mount table.
Resolver = Callable[[str, Config], tuple[AbstractFileSystem, str]]
_resolvers: dict[str, Resolver] = {}


def register_scheme(scheme: str, resolver: Resolver) -> None:
    """Serve ``scheme://`` URLs with ``resolver`` (replacing any earlier one)."""
    _resolvers[scheme] = resolver


def resolve_url(url: str, config: Config) -> tuple[AbstractFileSystem, str]:
    """The filesystem and path for ``aif://``, ``s3://``, a local path (or ``file://``), or a
    URL inside a mount's tier of another kind.

    A URL inside a mount's tier uses that tier's endpoint, credentials and
    options; an ``s3://`` URL outside every mount goes to s3fs with the usual
    AWS settings.
    """
    if not url.strip():
        raise BadURL(f"{url!r}: an empty URL; expected aif://PATH, s3://BUCKET/KEY or a path")
    scheme = url.partition("://")[0] if "://" in url else ""
    resolver = _resolvers.get(scheme)
    if resolver is not None:
        return resolver(url, config)
    if url.startswith("file://"):
        url = url.removeprefix("file://")
    if "://" in url:
        return _tier_filesystem(url, config)
    _refuse_other_schemes(url)
    return LocalFileSystem(), os.path.abspath(url)


def _tier_filesystem(url: str, config: Config) -> tuple[AbstractFileSystem, str]:
    """A URL of a remote kind: the filesystem of the tier that holds it, else of the kind."""
    if url.startswith("s3://") and not url.removeprefix("s3://").split("/")[0]:
        raise BadURL(f"{url}: no bucket; expected s3://BUCKET/KEY")
    located = config.tier_at(url)
    if located is None and url.startswith("s3://"):  # another key of a mounted bucket
        located = _same_bucket(url, config)
    if located is not None:
        mount, tier, rel = located
        _refuse_dot_segments(url, tier)
        fs = _wrapped_filesystem(connector_for(tier))
        if fs is not None:
            return fs, fs._strip_protocol(url)
        logical = f"aif://{mount.prefix}/{rel}" if rel else f"aif://{mount.prefix}"
        raise BadURL(  # a kind with no fsspec filesystem of its own
            f"{url}: tier {tier.name!r} of mount {mount.prefix!r} holds it: use {logical}"
        )
    kind = kind_of_url(url)
    if kind is None or not kind.direct:
        _refuse_other_schemes(url)
        raise BadURL(f"{url}: no storage kind serves this URL")
    fs = kind.direct_filesystem(url)
    return fs, fs._strip_protocol(url)


def _refuse_dot_segments(url: str, tier: Tier) -> None:
    """A URL inside a tier gets that tier's credentials: it may not walk out of it."""
    rest = url[len(tier.url) :] if url.startswith(tier.url) else url.partition("://")[2]
    if any(part in (".", "..") for part in rest.split("/")):
        raise PathEscape(f"{url}: refusing '.' or '..' in a URL of tier {tier.name!r}")


def _same_bucket(url: str, config: Config) -> tuple[Mount, Tier, str] | None:
    bucket = url.removeprefix("s3://").split("/")[0]
    for mount in config.mounts:
        for tier in mount.tiers:
            if tier.kind == "s3" and tier.url.removeprefix("s3://").split("/")[0] == bucket:
                return mount, tier, ""
    return None


def _wrapped_filesystem(connector: object) -> AbstractFileSystem | None:
    fs = getattr(connector, "fs", None)
    return fs if isinstance(fs, AbstractFileSystem) else None


def _refuse_other_schemes(url: str) -> None:
    """A URL that is neither ``aif://``, ``s3://`` nor a local path is a mistake: say which."""
    scheme, sep, rest = url.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]+", scheme):
        return  # a local path (``C:`` style drive letters are one letter: not a scheme)
    if scheme.lower() in ("aif", "s3") and not rest.startswith("//"):
        raise BadURL(f"{url}: did you mean {scheme.lower()}://{rest.lstrip('/')}?")
    if rest.startswith("//"):
        raise BadURL(f"{url}: {scheme}:// is not supported here: use aif://, s3:// or a path")

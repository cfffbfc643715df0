"""What an answer of the service may show a reader: no more than they may read, and
nothing of the server's own filesystem.

* A path the caller may not read is answered as a missing file (:func:`readable_path`),
  the same words whether the file is there or not, so probing maps nothing.
* A dataset's files that lie inside another dataset the caller may not read (one whose
  location is inside this one's) are left out and counted (:func:`visible_files`), as
  lineage counts the datasets it hides.
* A copy on a local tier (a PFS directory) is named by its tier and ``aif://`` path,
  never the server's path (:func:`public_url`); an ``s3://`` URL stays (a cloud user may
  presign it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .._config import Config
from .._errors import NotFound
from .._filesystem import MountedFileSystem
from .._router import Route
from ..catalog import Catalog, Dataset, current_principal
from ..catalog._records import FileRecord
from ..connectors import join
from ._vending import check_read, missing, refuse_unservable


def readable_path(catalog: Catalog, fs: MountedFileSystem, path: str, action: str) -> None:
    """Refuse ``path`` as a missing file unless the current principal may read it and it
    is inside a dataset (refusals audited, as ``info`` and ``presign`` refuse)."""
    refuse_unservable(catalog, fs, path)
    check_read(catalog, fs, path, action)


def route_of(fs: MountedFileSystem, path: str) -> dict[str, Any]:
    """:meth:`~MountedFileSystem.where` of a readable ``path`` with :func:`public_url`
    copies; a file no tier holds is refused as :func:`~._vending.missing`."""
    try:
        route = fs.where(path)
    except NotFound:
        raise missing(path) from None
    return public_route(fs.config, route)


def public_route(config: Config, route: Route) -> dict[str, Any]:
    """A route as JSON, its URL an ``aif://`` path when the serving copy is local."""
    out = route.as_dict()
    mount, _ = config.resolve(route.path)
    tier = next((t for t in mount.tiers if t.name == route.tier), None)
    if tier is None or tier.local or not _remote(route.url):
        out["url"] = f"aif://{route.path}"
    return out


def public_url(config: Config, url: str) -> str | None:
    """``url`` as a reader may see it: ``aif://`` for a copy on a mount's local tier, the
    URL itself on remote storage (``s3://``), None for a server path outside every mount."""
    located = config.locate(url)
    if located is not None:
        mount, tier, rel = located
        if tier.local or not _remote(url):
            return f"aif://{mount.prefix}/{rel}"
        return url
    return url if _remote(url) else None


def public_replicas(config: Config, f: FileRecord) -> list[dict[str, Any]]:
    """A file's copies, each by its tier and :func:`public_url`."""
    return [{"tier": tier, "url": public_url(config, url)} for tier, url in f.replicas]


def visible_files(catalog: Catalog, config: Config, ds: Dataset) -> tuple[Dataset, int]:
    """``ds`` without the files inside a dataset the current principal may not read, and
    how many were left out."""
    policy, who = catalog.policy(config), current_principal()
    if policy.is_admin(who):
        return ds, 0

    def hidden(f: FileRecord) -> bool:
        urls = [u for _, u in f.replicas] or [f"{ds.source.rstrip('/')}/{f.path}"]
        if not f.replicas and urls[0].startswith("aif://"):
            urls = sorted(physical_urls(config, urls[0].removeprefix("aif://")))
        return any(
            not policy.allows(who, "read", policy.dataset(name)) for name in policy.covering(urls)
        )

    shown = tuple(f for f in ds.files if not hidden(f))
    return dataclasses.replace(ds, files=shown), len(ds.files) - len(shown)


def physical_urls(config: Config, path: str) -> set[str]:
    """Where the logical ``path`` is on every tier of its mount (none: no mount)."""
    try:
        mount, rel = config.resolve(path)
    except NotFound:
        return set()
    return {url for tier in mount.tiers for url in tier.storage_kind.aliases(join(tier.url, rel))}


def _remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")

"""The JSON endpoints under ``/api/v1/``: each a function of a :class:`Call`, run as the caller.

Names with slashes travel as query parameters (``dataset?name=genomics/run42``). A dataset
name is checked as a name (no glob characters, no ``.``/``..`` segments) and a path as a
clean ``aif://`` path (no glob characters, no way out of its root, no other scheme) before
anything looks them up, so no spelling reaches more than the plain one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import formats
from .._errors import AccessDenied, BadArgument, Conflict, NotFound
from .._filesystem import MountedFileSystem
from .._paths import clean_path, has_magic, strip_protocol
from ..catalog import PRIVILEGES, Catalog, Dataset, current_principal, split_ref
from ..catalog._policy import check_dataset_name, covers
from ..formats import MAX_PARTITIONS
from ._calls import Call, api_route, no_nul
from ._public import public_replicas, public_url, readable_path, route_of, visible_files
from ._vending import refuse_unservable

API = "/api/v1"
#: At most this many files are listed (with the tier serving each) per request.
MAX_FILES = 100_000


def whoami(call: Call) -> dict[str, Any]:
    """The caller: principal, groups, whether a catalog admin, and their token."""
    who, token = call.caller.principal, call.caller.token
    return {
        "principal": str(who),
        "user": who.user,
        "groups": list(who.groups),
        "admin": call.catalog.policy().is_admin(who),
        "token": {"id": token.id, "label": token.label, "expires": token.expires},
    }


def search(call: Call) -> dict[str, Any]:
    """Datasets whose name, description, tags or formats match every word of ``q`` (and each
    ``tag=KEY=VALUE`` given, the ``format`` and the ``owner``)."""
    query = call.text("q", "", 500)
    limit = call.integer("limit", 50, 1, 500)
    hits = call.catalog.search(
        query, format=call.optional("format", 64), owner=call.optional("owner", 256),
        tags=_tags(call), limit=limit or 50,
    )  # fmt: skip
    rows = [
        {"name": h.name, "description": h.description, "owner": h.owner,
         "tags": dict(h.tags), "score": round(h.score, 4)}
        for h in hits
    ]  # fmt: skip
    return {"query": query, "hits": rows}


def _tags(call: Call) -> dict[str, str]:
    tags = {}
    for text in call.params.getlist("tag")[:20]:
        key, sep, value = no_nul("tag", text).partition("=")
        if not sep or not key or len(text) > 256:
            raise BadArgument(f"parameter 'tag' must be KEY=VALUE, got {text[:60]!r}")
        tags[key] = value
    return tags


def datasets(call: Call) -> dict[str, Any]:
    """The names of the datasets the caller may read."""
    return {"datasets": call.catalog.datasets()}


def dataset_name(call: Call, name: str = "name") -> str:
    """A dataset name parameter, checked as a name (BadName: 400)."""
    return check_dataset_name(call.text(name, max_chars=300))


def dataset(call: Call) -> dict[str, Any]:
    """A dataset version: its versions, its files (size, checksum, format, the tier that
    serves each), and what the caller may do with it and through which grants."""
    name = dataset_name(call)
    version = call.integer("version", None, 1, 2**31)
    limit = call.integer("files", 10_000, 0, MAX_FILES) or 0
    catalog, config = call.catalog, call.service.filesystem.config
    ds, hidden = visible_files(catalog, config, catalog.dataset(name, version))
    return {
        "name": ds.name,
        "version": ds.version,
        "versions": catalog.versions(name),
        "description": ds.description,
        "owner": ds.owner,
        "tags": dict(ds.tags),
        "source": public_url(config, ds.source) or "",
        "created": ds.created,
        "digest": ds.digest,
        "file_count": len(ds.files),
        "hidden_files": hidden,
        "total_bytes": ds.total_bytes,
        "files": _files(call, ds, limit),
        "lineage": [r.as_dict() for r in ds.lineage],
        "access": _access(call, name),
    }


def _files(call: Call, ds: Dataset, limit: int) -> list[dict[str, Any]]:
    files = ds.files[:limit]
    config = call.service.filesystem.config
    urls = ds.urls(config)[:limit]
    tiers = _served_by(call, urls)
    return [
        {"path": f.path, "size": f.size, "checksum": f.checksum, "format": f.format,
         "url": public_url(config, url), "served_by": tiers.get(url),
         "replicas": public_replicas(config, f)}
        for f, url in zip(files, urls, strict=True)
    ]  # fmt: skip


def _served_by(call: Call, urls: list[str]) -> dict[str, str]:
    """The tier that would serve a read of each ``aif://`` URL now, routed a mount at a
    time (one bulk look per tier); a URL outside every mount, one no tier holds, or one the
    caller may not read (inside another dataset too) has none."""
    fs = call.service.filesystem
    paths = {clean_path(u): u for u in urls if u.startswith("aif://")}
    by_mount: dict[Any, dict[str, str]] = {}
    for path in fs._readable(list(paths)):
        mount, rel = fs.split(path)
        by_mount.setdefault(mount, {})[rel] = paths[path]
    found = {}
    for mount, rels in by_mount.items():
        for rel, route in fs._router(mount).route_many(list(rels)).items():
            if not isinstance(route, NotFound):
                found[rels[rel]] = route.tier
    return found


def _access(call: Call, name: str) -> dict[str, Any]:
    """What the caller may do with dataset ``name``, and the grants they hold on it."""
    policy, who = call.catalog.policy(), call.caller.principal
    resource = policy.dataset(name)
    held = [
        {"principal": g.principal, "privilege": g.privilege, "pattern": g.pattern}
        for g in policy.grants
        if g.principal in who.identities and covers(g.pattern, name)
    ]
    return {
        "privileges": [p for p in PRIVILEGES if policy.allows(who, p, resource)],
        "owner": resource.owner == who.user,
        "catalog_admin": policy.is_admin(who),
        "grants": held,
    }


def lineage(call: Call) -> dict[str, Any]:
    """The upstream and downstream graphs of ``ref`` (NAME or NAME@VERSION)."""
    ref = call.text("ref", max_chars=320)
    name, _ = split_ref(ref)
    check_dataset_name(name)
    depth = call.integer("depth", None, 0, 100)
    trees = call.catalog.lineage(ref, depth=depth)
    return {direction: node.as_dict() for direction, node in trees.items()}


def aif_path(call: Call, name: str = "path") -> str:
    """An ``aif://`` path parameter, clean (PathEscape, BadArgument: 400)."""
    text = call.text(name, max_chars=2048)
    if "://" in text and not text.startswith("aif://"):
        raise BadArgument(f"parameter {name!r} must be an aif:// path, got {text!r}")
    if has_magic(strip_protocol(text)):
        raise BadArgument(f"parameter {name!r} names one file: no * ? [ in {text!r}")
    path = clean_path(text)
    if not path:
        raise BadArgument(f"parameter {name!r} must name a file, got {text!r}")
    return path


def where(call: Call) -> dict[str, Any]:
    """Which tier (and replica) would serve a read of an ``aif://`` file, and why (a copy
    on a local tier named by its ``aif://`` path). A file the caller may not read is
    refused as a missing one."""
    path, fs = aif_path(call), call.service.filesystem
    readable_path(call.catalog, fs, path, "where")
    return route_of(fs, path)


def partitions(call: Call) -> dict[str, Any]:
    """The format plug-ins' partition plan of an ``aif://`` file (``path``) or of every file
    of a dataset version (``name``, ``version``; ``n`` shared out by file size). Nothing is
    converted: a partition is a few numbers any worker reads with."""
    n = call.integer("n", None, 1, MAX_PARTITIONS)
    target = call.integer("target_bytes", None, 1, 2**62)
    if n is not None and target is not None:
        raise BadArgument("give n or target_bytes, not both")
    fmt = call.optional("format", 64)
    fs = call.service.filesystem
    if "name" in call.params:
        if "path" in call.params:
            raise BadArgument("give path or name, not both")
        ds = call.catalog.dataset(dataset_name(call), call.integer("version", None, 1, 2**31))
        parts = _dataset_plan(call.catalog, fs, ds, n, target, fmt)
        planned = {"dataset": ds.name, "version": ds.version}
    else:
        path = aif_path(call)
        readable_path(call.catalog, fs, path, "partition")  # before a byte is read
        parts = formats.partition(
            f"aif://{path}", n=n, target_bytes=target, format=fmt, config=fs.config
        )
        planned = {"path": f"aif://{path}"}
    rows = [
        {"url": p.url, "format": p.format, "ordinal": p.ordinal, "spec": p.options,
         "fingerprint": p.fingerprint}
        for p in parts
    ]  # fmt: skip
    return {**planned, "partitions": rows}


def _dataset_plan(
    catalog: Catalog,
    fs: MountedFileSystem,
    ds: Dataset,
    n: int | None,
    target: int | None,
    fmt: str | None,
) -> list[formats.Partition]:
    """The partitions of every file of ``ds`` (``n`` shared out by file size), each read
    through the service's gate like a plan of one path: a file inside a dataset the
    caller may not read (one whose location is inside this one's) is refused, without
    naming it (its name is not the caller's to learn)."""
    urls = ds.urls(fs.config)
    outside = next((u for u in urls if not u.startswith("aif://")), None)
    if outside is not None:
        shown = public_url(fs.config, outside) or "a file on the server"
        raise Conflict(f"dataset {ds.name!r}: {shown} is outside every mount; plan it with"
                       " the library where that storage is reachable")  # fmt: skip
    paths = [clean_path(u) for u in urls]
    readable = set(fs._readable(paths))
    for path in paths:
        refuse_unservable(catalog, fs, path)
    hidden = [p for p in paths if p not in readable]
    if hidden:
        with contextlib.suppress(AccessDenied):
            fs.info(hidden[0])  # the gate's refusal, audited
        raise AccessDenied(
            f"dataset {ds.name!r}: {len(hidden)} of its files lie inside datasets"
            f" {current_principal()} may not read; plan the others by path"
        )
    total, out = max(1, ds.total_bytes), []
    for f, url, path in zip(ds.files, urls, paths, strict=True):
        share = None if n is None else max(1, round(n * f.size / total))
        chosen = fmt or (f.format if f.format != "unknown" else None)
        source = formats.RangeSource.on(fs, path, url)
        out.extend(formats.plan_source(source, n=share, target_bytes=target, format=chosen))
    return out


def audit(call: Call) -> dict[str, Any]:
    """The newest audit rows (catalog admins only)."""
    limit = call.integer("limit", 100, 1, 10_000) or 100
    return {"audit": call.catalog.audit_log(limit)}


ROUTES = [
    api_route(f"{API}/{handler.__name__}", handler)
    for handler in (whoami, search, datasets, dataset, lineage, where, partitions, audit)
]

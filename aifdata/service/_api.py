"""The JSON endpoints under ``/api/v1/``: each a function of a :class:`Call`, run as the caller.

Names with slashes travel as query parameters (``dataset?name=genomics/run42``). A dataset
name is checked as a name (no glob characters, no ``.``/``..`` segments) and a path as a
clean ``aif://`` path (no glob characters, no way out of its root, no other scheme) before
anything looks them up, so no spelling reaches more than the plain one.
"""

from __future__ import annotations

from typing import Any

from .. import formats
from .._errors import BadArgument, NotFound
from .._paths import clean_path, has_magic, strip_protocol
from ..catalog import PRIVILEGES, Dataset, split_ref
from ..catalog._policy import check_dataset_name, covers
from ..formats import MAX_PARTITIONS
from ._calls import Call, api_route

API = "/api/v1"
#: At most this many files are listed (with the tier serving each) per request.
MAX_FILES = 10_000


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
    """Datasets whose name, description, tags or formats match every word of ``q``."""
    query = call.text("q", "", 500)
    limit = call.integer("limit", 50, 1, 500)
    hits = call.catalog.search(
        query, format=call.optional("format", 64), owner=call.optional("owner", 256),
        limit=limit or 50,
    )  # fmt: skip
    rows = [
        {"name": h.name, "description": h.description, "owner": h.owner,
         "tags": dict(h.tags), "score": round(h.score, 4)}
        for h in hits
    ]  # fmt: skip
    return {"query": query, "hits": rows}


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
    limit = call.integer("files", 1000, 0, MAX_FILES) or 0
    catalog = call.catalog
    ds = catalog.dataset(name, version)
    return {
        "name": ds.name,
        "version": ds.version,
        "versions": catalog.versions(name),
        "description": ds.description,
        "owner": ds.owner,
        "tags": dict(ds.tags),
        "source": ds.source,
        "created": ds.created,
        "digest": ds.digest,
        "file_count": len(ds.files),
        "total_bytes": ds.total_bytes,
        "files": _files(call, ds, limit),
        "lineage": [r.as_dict() for r in ds.lineage],
        "access": _access(call, name),
    }


def _files(call: Call, ds: Dataset, limit: int) -> list[dict[str, Any]]:
    rows = []
    urls = ds.urls(call.catalog.config)
    for f, url in zip(ds.files[:limit], urls[:limit], strict=True):
        rows.append(
            {"path": f.path, "size": f.size, "checksum": f.checksum, "format": f.format,
             "url": url, "served_by": _served_by(call, url),
             "replicas": [{"tier": t, "url": u} for t, u in f.replicas]}
        )  # fmt: skip
    return rows


def _served_by(call: Call, url: str) -> str | None:
    """The tier that would serve a read of ``url`` now (None: outside every mount, or no
    tier holds it)."""
    if not url.startswith("aif://"):
        return None
    try:
        return call.service.filesystem.where(url).tier
    except (NotFound, FileNotFoundError):
        return None


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
    """Which tier (and replica) would serve a read of an ``aif://`` file, and why."""
    return call.service.filesystem.where(aif_path(call)).as_dict()


def partitions(call: Call) -> dict[str, Any]:
    """The format plug-in's partition plan of an ``aif://`` file (nothing is converted)."""
    path = aif_path(call)
    n = call.integer("n", None, 1, MAX_PARTITIONS)
    target = call.integer("target_bytes", None, 1, 2**62)
    if n is not None and target is not None:
        raise BadArgument("give n or target_bytes, not both")
    fmt = call.optional("format", 64)
    fs = call.service.filesystem
    fs.info(path)  # the caller's read right (audited when refused), before any byte is read
    parts = formats.partition(
        f"aif://{path}", n=n, target_bytes=target, format=fmt, config=fs.config
    )
    rows = [
        {"url": p.url, "format": p.format, "ordinal": p.ordinal, "spec": p.options,
         "fingerprint": p.fingerprint}
        for p in parts
    ]  # fmt: skip
    return {"path": f"aif://{path}", "partitions": rows}


def audit(call: Call) -> dict[str, Any]:
    """The newest audit rows (catalog admins only)."""
    limit = call.integer("limit", 100, 1, 10_000) or 100
    return {"audit": call.catalog.audit_log(limit)}


ROUTES = [
    api_route(f"{API}/{handler.__name__}", handler)
    for handler in (whoami, search, datasets, dataset, lineage, where, partitions, audit)
]

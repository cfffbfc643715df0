"""Presigned GETs, and the small listing endpoints a ``service`` tier reads through.

``POST /api/v1/presign`` ``{"path": "aif://...", "expires": seconds}`` takes four steps,
in this order, and a step that refuses ends the request before the next:

1. the path is checked as one object's name (:func:`~._presign.object_path`): no ``..``,
   no empty segment, nothing unprintable; ``*``, ``?``, ``[`` and encoded forms are
   literal characters of a key, never a pattern;
2. the caller's read right, through the catalog's gate (a refusal is an audit row,
   action ``presign``); the service vends only files inside a dataset;
3. the copy that serves it: the catalog's routing, and when that is a PFS copy, an S3
   copy of the same bytes (a file only a PFS tier holds is a 409);
4. only then one SigV4 URL for that one key, living ``min(expires, cap)`` seconds.

A file the caller may not read is refused as a missing one, with the same text.

Each URL vended is an audit row (action ``presign``, allowed, the caller, the ``aif://``
path, its dataset), written before the URL is returned: a site sees in its audit trail
who was handed a URL for what (an audit row leaves every worker's cached policy: see
:meth:`~aifdata.catalog.Catalog.policy_mark`). It is logged too (``aifdata.service.presign``).
"""

from __future__ import annotations

import logging
from typing import Any

import obstore
from obstore.exceptions import NotFoundError

from .._config import Mount
from .._errors import AccessDenied, BadArgument, Conflict, NotFound
from .._filesystem import MountedFileSystem
from .._router import Route
from ..catalog import Catalog, current_principal
from ..connectors import Connector, FileStat, join
from ..connectors._s3_native import obstore_usable
from ..connectors.s3 import S3Connector
from ._calls import Call, api_route
from ._post_routes import json_body, post_route
from ._presign import expiry, mint, object_path
from ._uploads import STAGING

API = "/api/v1"
#: Each URL vended is logged here too (an audit row in the catalog, as each refusal is).
log = logging.getLogger("aifdata.service.presign")


def missing(path: str) -> NotFound:
    """The one refusal of a file that is not there, or that the caller may not read."""
    return NotFound(f"aif://{path}: no such file or directory")


def check_read(
    catalog: Catalog, fs: MountedFileSystem, path: str, action: str, directory: bool = False
) -> None:
    """The current principal's read right on ``path`` (refusals audited by the gate), and
    that it is in a dataset (or, for a listing, a directory above one they may read):
    anything else is refused as missing."""
    try:
        catalog.gate(fs.config).check(path, "read", action)
    except AccessDenied:
        raise missing(path) from None
    if not exposed(catalog, fs, path, directory):
        who = current_principal()
        catalog.record_audit(who, action, f"aif://{path}", "read", path, allowed=False)
        raise missing(path)


def physical(fs: MountedFileSystem, path: str) -> set[str]:
    """Where ``path`` is on every tier of its mount, in every spelling (none: no mount)."""
    try:
        mount, rel = fs.config.resolve(path)
    except NotFound:
        return set()
    urls: set[str] = set()
    for tier in mount.tiers:
        urls |= tier.storage_kind.aliases(join(tier.url, rel))
    return urls


def in_flight(catalog: Catalog, fs: MountedFileSystem, path: str) -> bool:
    """Whether ``path`` is below a mount's upload area (``_aifdata-uploads/``) and in no
    committed upload (a dataset located there): an upload's manifest, or bytes not yet a
    version of their dataset. No one reads those through the service, even when a
    dataset's location holds that area (a dataset of a whole bucket, say)."""
    try:
        mount, rel = fs.config.resolve(path)
    except NotFound:
        return False
    if not rel.startswith(f"{STAGING}/"):
        return False
    policy = catalog.policy(fs.config)
    committed = policy.inside(physical(fs, f"{mount.prefix}/{STAGING}"))
    return not set(committed) & set(policy.covering(physical(fs, path)))


def refuse_unservable(catalog: Catalog, fs: MountedFileSystem, path: str) -> None:
    """Raise the refusal of a missing file when no mount holds ``path`` (the error of
    which would name the server's mount table file) or it is :func:`in_flight`."""
    try:
        fs.config.resolve(path)
    except NotFound:
        raise missing(path) from None
    if in_flight(catalog, fs, path):
        raise missing(path)


def exposed(catalog: Catalog, fs: MountedFileSystem, path: str, directory: bool) -> bool:
    """Whether the service shows ``path``: inside a dataset, or a directory holding a
    dataset the current principal may read (the service serves governed data only), and
    not an upload in flight."""
    if in_flight(catalog, fs, path):
        return False
    policy, urls = catalog.policy(fs.config), physical(fs, path)
    if policy.covering(urls):
        return True
    who = current_principal()
    return directory and any(
        policy.allows(who, "read", policy.dataset(name)) for name in policy.inside(urls)
    )


def dataset_of(catalog: Catalog, fs: MountedFileSystem, path: str) -> str:
    """The (innermost) dataset holding ``path``; the path itself should none hold it now."""
    names = catalog.policy(fs.config).covering(physical(fs, path))
    return names[0] if names else path


def presign_file(
    catalog: Catalog, fs: MountedFileSystem, path: str, seconds: int
) -> dict[str, Any]:
    """A presigned GET of the file ``path`` (clean, see :func:`~._presign.object_path`) for
    the current principal, living ``seconds``: the grant check, the S3 copy, then the URL."""
    check_read(catalog, fs, path, "presign")
    conn, rel, size, checksum = object_copy(fs, path)
    signed = mint(conn.settings, "GET", conn.key(rel), seconds)
    who = current_principal()
    catalog.record_audit(who, "presign", f"aif://{path}", "read", dataset_of(catalog, fs, path),
                         allowed=True)  # fmt: skip
    log.info("presign %s aif://%s for %d s", who, path, seconds)
    return {
        "path": f"aif://{path}", "url": signed.url, "method": "GET",
        "expires_at": signed.expires_at, "expires_in": seconds, "size": size,
        "checksum": checksum,
    }  # fmt: skip


def presign(call: Call) -> dict[str, Any]:
    """A presigned GET of one file the caller may read (see the module docstring)."""
    body = json_body(call)
    unknown = set(body) - {"path", "expires"}
    if unknown:
        raise BadArgument(f"unknown field(s) {', '.join(sorted(unknown))}; give path, expires")
    path = object_path(body.get("path"))
    settings = call.service.settings
    seconds = expiry(body.get("expires"), settings.presign_default_expiry,
                     settings.presign_max_expiry, call.caller.token.expires)  # fmt: skip
    return presign_file(call.catalog, call.service.filesystem, path, seconds)


def object_copy(fs: MountedFileSystem, path: str) -> tuple[S3Connector, str, int, str | None]:
    """The S3 copy that serves ``path``: its connector, tier-relative path, size and
    checksum (when the catalog verified it). NotFound when no tier holds it; Conflict
    when only a PFS (or other non-S3) tier holds the bytes a read gets."""
    found = _routed(fs, path)
    if found is None:
        raise missing(path)
    mount, rel, conns, stats, records, route = found
    served = conns[route.tier]
    if isinstance(served, S3Connector):
        return served, rel, int(stats[route.tier][rel].size), route.checksum
    for name in _read_ordered(mount):
        conn, st = conns[name], stats[name].get(rel)
        if (
            isinstance(conn, S3Connector)
            and st is not None
            and _same(route, conn, rel, st, records)
        ):
            record = records.get(conn.url(rel))
            return conn, rel, int(st.size), record.checksum if record else route.checksum
    raise Conflict(
        f"aif://{path} is served from tier {route.tier!r} ({served.tier.kind}), and no S3 tier"
        f" holds the same bytes: a presigned URL needs an S3 copy (an admin can copy it with:"
        f" aifdata stage ... --to {mount.write_tier})"
    )


Routed = tuple[Mount, str, dict[str, Connector], dict[str, dict[str, FileStat]], Any, Route]


def _routed(fs: MountedFileSystem, path: str) -> Routed | None:
    """The file ``path`` as the catalog's routing sees it: its mount and tier-relative path,
    the connectors, each tier's stat of it, the catalog's records, and the route a read
    takes. None when no tier holds a file there."""
    mount, rel = fs.split(path)
    if not rel:
        return None
    conns = {t.name: fs.connector(mount, t.name) for t in mount.tiers}
    stats = {name: _stats(conn, rel) for name, conn in conns.items()}
    if not any(stats.values()):
        return None
    router = fs._router(mount)
    records = router.records_for([rel])
    route = router.choose(rel, stats, records)
    if isinstance(route, NotFound):
        return None
    return mount, rel, conns, stats, records, route


def _stats(conn: Connector, rel: str) -> dict[str, FileStat]:
    """``conn.stats([rel])``; on S3, one HEAD through obstore's native client (several
    times cheaper than s3fs's when many requests run at once)."""
    if not (isinstance(conn, S3Connector) and obstore_usable()):
        return conn.stats([rel])
    try:
        meta = obstore.head(conn.native.store, conn.key(rel))
    except (FileNotFoundError, NotFoundError):
        return {}
    except Exception as exc:
        raise conn._fail(exc, rel) from exc
    etag = str(meta.get("e_tag") or "").strip('"') or None
    return {rel: FileStat(int(meta["size"]), meta["last_modified"].timestamp(), etag)}


def _read_ordered(mount: Mount) -> list[str]:
    names = list(mount.read_order)
    return names + [t.name for t in mount.tiers if t.name not in names]


def _same(route: Route, conn: Connector, rel: str, st: FileStat, records: Any) -> bool:
    """Whether an S3 copy holds the bytes ``route`` serves: verified by the catalog as the
    same checksum, or (nothing verified) of the same size, as the router's size rule."""
    if route.checksum:
        record = records.get(conn.url(rel))
        ok = record is not None and not record.bad and record.matches(st)
        return ok and record.checksum == route.checksum
    return route.size is not None and st.size == route.size


def _entry(info: dict[str, Any]) -> dict[str, Any]:
    out = {"name": info["name"], "type": info["type"], "size": int(info.get("size") or 0)}
    for key in ("checksum", "mtime"):
        if info.get(key) is not None:
            out[key] = info[key]
    return out


def info(call: Call) -> dict[str, Any]:
    """Name, type, size (and checksum) of one ``aif://`` path the caller may read."""
    path = object_path(call.text("path", max_chars=2048))
    fs = call.service.filesystem
    check_read(call.catalog, fs, path, "info", directory=True)
    found = _routed(fs, path)  # a file: one HEAD per tier, as routing asks
    if found is not None:
        _mount, rel, _conns, stats, _records, route = found
        st = stats[route.tier][rel]
        return {"name": path, "type": "file", "size": int(st.size), "mtime": st.mtime,
                "checksum": route.checksum}  # fmt: skip
    try:
        return _entry(fs.info(path))  # a directory
    except (AccessDenied, FileNotFoundError):
        raise missing(path) from None


def ls(call: Call) -> dict[str, Any]:
    """The entries of a directory the caller may read (those they may read only)."""
    path = object_path(call.text("path", max_chars=2048))
    check_read(call.catalog, call.service.filesystem, path, "ls", directory=True)
    try:
        entries = call.service.filesystem.ls(path, detail=True)
    except (AccessDenied, FileNotFoundError):
        raise missing(path) from None
    fs = call.service.filesystem
    shown = [e for e in entries if exposed(call.catalog, fs, e["name"], e["type"] == "directory")]
    return {"path": f"aif://{path}", "entries": [_entry(e) for e in shown]}


ROUTES = [
    post_route(f"{API}/presign", presign),
    api_route(f"{API}/info", info),
    api_route(f"{API}/ls", ls),
]

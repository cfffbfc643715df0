"""Uploads through presigned PUTs, ingested as a new version of a dataset on commit.

``POST /api/v1/uploads`` ``{"dataset": NAME, "files": [{"path", "size"}], "expires"}``
(the caller may write ``NAME``) returns an upload id and one presigned PUT per file,
into the upload's own prefix ``_aifdata-uploads/ID/`` on the S3 tier of the mount that holds
the dataset's latest version. ``POST /api/v1/uploads/ID/commit`` checks that every file
arrived with its size and nothing else did, copies the files server-side (S3 CopyObject)
to a prefix of the version's own, ``_aifdata-versions/ID-ATTEMPT/``, which no presigned
URL names, and
ingests that prefix (checksums read from the copies) as a new version of the dataset, as
the caller; then it deletes the staged files. A PUT URL used after the commit writes
only into the dead staging prefix, which nothing reads and the sweep removes. A failure
part-way records nothing and deletes the copies made so far; so does a commit that would
outlast the request timeout (copying and hashing run against it: an upload too large to
copy and checksum within one request cannot be committed, and is left to commit again
or abort). ``POST /api/v1/uploads/ID/abort`` deletes what arrived.

An upload's state is a small manifest beside its prefix (``_aifdata-uploads/ID.json``, written
with the server's credentials; no presigned URL reaches it): who made it, for which
dataset, its files, when its URLs expire, and whether it was committed (as which
version) or aborted. An upload not committed in time is refused at commit; once its URLs
expired, the next upload to that tier removes its staged bytes and its manifest (whatever
its state): the catalog never holds half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._config import Mount
from .._errors import BadArgument, Conflict, NotFound, RequestTimeout
from ..catalog import claim_upload, current_principal, record_upload, release_upload
from ..catalog._policy import check_dataset_name
from ..connectors.s3 import S3Connector
from ._calls import Call, request_ends
from ._post_routes import json_body, post_route
from ._presign import check_segments, expiry, mint

API = "/api/v1"
#: Where uploads land, under the S3 tier's root.
STAGING = "_aifdata-uploads"
#: Where a committed upload's copies live, under the same tier's root (no URL names it).
VERSIONS = "_aifdata-versions"
#: Server-side copies a commit runs at once.
COPY_WORKERS = 8
#: Files per upload, and the largest file (one PUT: S3's limit is 5 GiB).
MAX_FILES = 1000
MAX_FILE_BYTES = 5 * 2**30
#: Seconds after its URLs expire that an upload may still be committed; past it (and a
#: request's time), the next upload to the tier removes it.
COMMIT_GRACE = 600.0
_ID = re.compile(r"[0-9a-f]{16}")


log = logging.getLogger("aifdata.service.uploads")


def _staged(upload_id: str, path: str = "") -> str:
    base = f"{STAGING}/{upload_id}"
    return f"{base}/{path}" if path else base


def _final(attempt: str, path: str = "") -> str:
    base = f"{VERSIONS}/{attempt}"
    return f"{base}/{path}" if path else base


def _manifest_rel(upload_id: str) -> str:
    return f"{STAGING}/{upload_id}.json"


def upload_tier(mount: Mount) -> str:
    """The S3 tier uploads to ``mount`` land on: its write tier if that is S3, else the
    first S3 tier in read order. Conflict when it has none."""
    names = [mount.write_tier, *mount.read_order]
    for name in names:
        if mount.tier(name).kind == "s3":
            return name
    raise Conflict(f"mount {mount.prefix!r} has no S3 tier: uploads land on S3")


def _files(given: Any) -> list[dict[str, Any]]:
    if not isinstance(given, list) or not 1 <= len(given) <= MAX_FILES:
        raise BadArgument(f"'files' must be a list of 1 to {MAX_FILES} {{path, size}} objects")
    files, seen = [], set()
    for item in given:
        if not isinstance(item, dict) or set(item) != {"path", "size"}:
            raise BadArgument(f'each file is {{"path": ..., "size": ...}}, got {item!r}')
        path, size = item["path"], item["size"]
        if not isinstance(path, str) or len(path) > 1024:
            raise BadArgument(f"a file's path must be text of at most 1024 characters: {path!r}")
        check_segments(path, "file path")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_BYTES:
            raise BadArgument(f"{path}: size must be a whole number of bytes up to 5 GiB")
        if path in seen:
            raise BadArgument(f"{path}: given twice")
        seen.add(path)
        files.append({"path": path, "size": size})
    for path in seen:  # "a" and "a/b" cannot both be files
        parts = path.split("/")
        clash = next(("/".join(parts[:i]) for i in range(1, len(parts))
                      if "/".join(parts[:i]) in seen), None)  # fmt: skip
        if clash:
            raise BadArgument(f"{clash} is a file, so {path} cannot be one under it")
    return files


def _dataset_mount(call: Call, name: str) -> Mount:
    """The mount of the dataset's latest version (Conflict when it is outside every mount)."""
    source = call.catalog.dataset(name).source
    config = call.service.filesystem.config
    if source.startswith("aif://"):
        return config.resolve(source.removeprefix("aif://"))[0]
    located = config.tier_at(source)
    if located is None:
        raise Conflict(f"dataset {name!r} lives at {source}, outside every mount")
    return located[0]


def _connector(call: Call, mount: Mount, tier: str) -> S3Connector:
    conn = call.service.filesystem.connector(mount, tier)
    assert isinstance(conn, S3Connector)
    return conn


def create(call: Call) -> dict[str, Any]:
    """Start an upload of new files for a dataset the caller may write."""
    body = json_body(call)
    unknown = set(body) - {"dataset", "files", "expires"}
    if unknown:
        raise BadArgument(f"unknown field(s) {', '.join(sorted(unknown))}; give dataset, files")
    given = body.get("dataset")
    name = check_dataset_name(given if isinstance(given, str) else "")
    files = _files(body.get("files"))
    settings = call.service.settings
    seconds = expiry(body.get("expires"), settings.presign_default_expiry,
                     settings.presign_max_expiry, call.caller.token.expires)  # fmt: skip
    catalog, who = call.catalog, current_principal()
    catalog.require(name, "write", "upload")
    mount = _dataset_mount(call, name)
    tier = upload_tier(mount)
    conn = _connector(call, mount, tier)
    sweep(conn)
    upload_id = secrets.token_hex(8)
    expires_at = time.time() + seconds
    manifest = {
        "id": upload_id, "dataset": name, "principal": str(who), "mount": mount.prefix,
        "tier": tier, "files": files, "created": time.time(), "expires_at": expires_at,
        "state": "open",
    }  # fmt: skip
    conn.pipe_file(_manifest_rel(upload_id), json.dumps(manifest).encode())
    urls = [
        {**f, "method": "PUT",
         "url": mint(conn.settings, "PUT", conn.key(_staged(upload_id, f["path"])), seconds).url}
        for f in files
    ]  # fmt: skip
    catalog.record_audit(who, "upload", f"upload {upload_id}: {len(files)} file(s)", "write",
                         name, allowed=True)  # fmt: skip
    return {"upload": upload_id, "dataset": name, "expires_at": expires_at, "files": urls}


def _find(call: Call, upload_id: str) -> tuple[S3Connector, dict[str, Any]]:
    """The caller's upload ``upload_id`` and the connector of its tier; NotFound (one text)
    for an id that is not, or not the caller's."""
    who = current_principal()
    absent = NotFound(f"no upload {upload_id!r} of {who}")
    if not _ID.fullmatch(upload_id):
        raise absent
    fs = call.service.filesystem
    seen = set()
    for mount in fs.config.mounts:
        for tier in mount.tiers:
            if tier.kind != "s3" or tier.url in seen:
                continue
            seen.add(tier.url)
            conn = _connector(call, mount, tier.name)
            try:
                manifest = json.loads(conn.cat_file(_manifest_rel(upload_id)))
            except FileNotFoundError:
                continue
            if manifest.get("principal") != str(who):
                raise absent
            return conn, manifest
    raise absent


def _save(conn: S3Connector, manifest: dict[str, Any]) -> None:
    conn.pipe_file(_manifest_rel(manifest["id"]), json.dumps(manifest).encode())


def _problems(conn: S3Connector, manifest: dict[str, Any], prefix: str) -> list[str]:
    """What keeps an upload's files under ``prefix`` from being committed: files missing,
    of another size, extra."""
    arrived = {rel: int(info["size"]) for rel, info in conn.find(prefix).items()
               if info["type"] == "file"}  # fmt: skip
    problems = []
    for f in manifest["files"]:
        got = arrived.pop(f"{prefix}/{f['path']}", None)
        if got is None:
            problems.append(f"{f['path']}: not uploaded")
        elif got != f["size"]:
            problems.append(f"{f['path']}: {got} bytes arrived, {f['size']} declared")
    problems += [f"{rel}: not declared" for rel in sorted(arrived)]
    return problems


def commit(call: Call) -> dict[str, Any]:
    """Ingest a copy of an upload whose files all arrived as a new version of its dataset."""
    upload_id = call.text("id", max_chars=64)
    # a little inside the request's own timeout, which started before this thread did: a
    # commit that records its version must never be answered 504
    limit = call.service.settings.request_timeout
    deadline = (request_ends() or time.monotonic() + limit) - 0.1 * limit
    _check_state(_find(call, upload_id)[1])
    # one commit at a time in any worker process: a claim older than two request
    # timeouts is taken over (its request died, or can no longer record: see _commit)
    claim = claim_upload(call.catalog, upload_id, stale_after=2 * limit)
    try:
        conn, manifest = _find(call, upload_id)  # again: another may have committed it
        _check_state(manifest)
        return _commit(call, conn, manifest, deadline, claim)
    finally:
        try:
            release_upload(call.catalog, upload_id, claim)  # only when nothing was recorded
        except Exception:  # it expires; the request's own answer stands
            log.warning("upload %s: the commit's claim was not given back", upload_id,
                        exc_info=True)  # fmt: skip


def _check_state(manifest: dict[str, Any]) -> None:
    upload_id = manifest["id"]
    if manifest["state"] == "committed":
        raise Conflict(f"upload {upload_id} was committed already, as version "
                       f"{manifest.get('version')}")  # fmt: skip
    if manifest["state"] != "open":
        raise Conflict(f"upload {upload_id} was {manifest['state']} already")


def _commit(
    call: Call, conn: S3Connector, manifest: dict[str, Any], deadline: float, claim: str
) -> dict[str, Any]:
    upload_id, name = manifest["id"], manifest["dataset"]
    catalog, who = call.catalog, current_principal()
    if time.time() > manifest["expires_at"] + COMMIT_GRACE:
        raise Conflict(f"upload {upload_id} expired; start another")
    catalog.require(name, "write", "upload-commit")  # grants may have changed since
    problems = _problems(conn, manifest, _staged(upload_id))
    if problems:
        catalog.record_audit(who, "upload-commit", f"upload {upload_id}: incomplete", "write",
                             name, allowed=False)  # fmt: skip
        shown = "; ".join(problems[:10]) + ("; ..." if len(problems) > 10 else "")
        raise Conflict(f"upload {upload_id} is not complete: {shown}")
    # each attempt copies to a prefix of its own: undoing one never touches another's
    attempt = f"{upload_id}-{secrets.token_hex(4)}"
    source = f"aif://{manifest['mount']}/{_final(attempt)}"
    try:
        _copy_all(conn, manifest, attempt, deadline)

        def recorded(db: Any, version: int | None) -> None:
            # in the transaction that records the version: in time, and still our claim
            _in_time(deadline, upload_id)
            record_upload(db, upload_id, claim, version)

        made = catalog.ingest(source, name, progress=lambda _n: _in_time(deadline, upload_id),
                              on_record=recorded)  # fmt: skip
    except BaseException:
        _remove(conn, _final(attempt))
        raise
    manifest.update(state="committed", version=made.version)
    with contextlib.suppress(Exception):  # the sweep removes what is left of either
        _save(conn, manifest)
        _remove(conn, _staged(upload_id))
    catalog.record_audit(who, "upload-commit", f"upload {upload_id} as version {made.version}",
                         "write", name, allowed=True)  # fmt: skip
    return {"upload": upload_id, "dataset": name, "version": made.version, "source": source,
            "files": len(made.files)}  # fmt: skip


def _in_time(deadline: float, upload_id: str) -> None:
    """Raise :class:`RequestTimeout` once a commit's time is spent (nothing is recorded)."""
    if time.monotonic() > deadline:
        raise RequestTimeout(
            f"upload {upload_id} is too large to copy and checksum within one request;"
            " nothing was recorded: commit it again, or abort it"
        )


def _copy_all(conn: S3Connector, manifest: dict[str, Any], attempt: str, deadline: float) -> None:
    """Copy the staged files server-side to the attempt's prefix, and check the copies'
    sizes (a PUT may have replaced a file since it was checked)."""
    upload_id = manifest["id"]

    def copy(path: str) -> None:
        _in_time(deadline, upload_id)
        conn.copy(_staged(upload_id, path), _final(attempt, path))

    with ThreadPoolExecutor(min(COPY_WORKERS, len(manifest["files"]))) as pool:
        list(pool.map(copy, [f["path"] for f in manifest["files"]]))
    problems = _problems(conn, manifest, _final(attempt))
    if problems:
        raise Conflict(f"upload {upload_id} changed while it was committed: {problems[0]}")


def abort(call: Call) -> dict[str, Any]:
    """Drop an open upload: what arrived is deleted; it can no longer be committed."""
    upload_id = call.text("id", max_chars=64)
    conn, manifest = _find(call, upload_id)
    if manifest["state"] != "open":
        raise Conflict(f"upload {upload_id} was {manifest['state']} already")
    manifest["state"] = "aborted"
    _save(conn, manifest)
    _remove(conn, _staged(upload_id))
    call.catalog.record_audit(current_principal(), "upload-abort", f"upload {upload_id}",
                              "write", manifest["dataset"], allowed=True)  # fmt: skip
    return {"upload": upload_id, "state": "aborted"}


def _remove(conn: S3Connector, prefix: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        conn.rm_many(sorted(conn.find(prefix)))


def sweep(conn: S3Connector, now: float | None = None, slack: float = 120.0) -> list[str]:
    """Remove the uploads on this tier that were not committed and can no longer be: their
    bytes, then their manifest, once their URLs expired (no PUT can arrive after).
    Returns their ids."""
    now = time.time() if now is None else now
    try:
        listed = conn.ls(STAGING)
    except FileNotFoundError:
        return []
    removed = []
    for entry in listed:
        rel = entry["name"]
        if entry["type"] != "file" or not rel.endswith(".json"):
            continue
        try:
            manifest = json.loads(conn.cat_file(rel))
        except (FileNotFoundError, ValueError):
            continue
        if now > float(manifest.get("expires_at", 0)) + COMMIT_GRACE + slack:
            _remove(conn, _staged(manifest["id"]))
            conn.rm_many([rel])
            removed.append(manifest["id"])
    return removed


ROUTES = [
    post_route(f"{API}/uploads", create),
    post_route(f"{API}/uploads/{{id}}/commit", commit),
    post_route(f"{API}/uploads/{{id}}/abort", abort),
]

"""Hydrate on read: leave a verified copy of a file on its mount's hydration tier.

Only files the catalog records hydrate. Under the file's lease
(:mod:`._lease`) the bytes stream from the tier that serves the read into the
hydration tier's atomic writer (a temporary name) while they are hashed; the
copy is renamed into place only when it holds the catalog's SHA-256 (for a
file ingested without one: its size, and the write tier's ETag as recorded),
sealed before its rename, and recorded: in the catalog for a shared (PFS) tier, in the
node's own index for a node-local cache. A reader that finds the lease taken
waits for the copy and reads it: one transfer per file across processes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._router import Route, Router
from .._streams import Streamed, checksum_of, format_checksum, new_digest
from .._threads import ThreadPool
from ..catalog import FileRecord
from ..connectors import Connector, FileStat
from ..connectors._seal import SEAL_ATTRIBUTE, local_path
from ._lease import Lease
from ._space import Keeper, make_room

#: A file up to this size is fetched whole, in one request as a plain read fetches
#: it, and written from memory; a larger one in windows of this size (:func:`_windows`).
WHOLE_FETCH_MAX = 64 * 2**20


class Hydrating(Keeper, Protocol):
    """What hydration needs of the tier manager."""

    def cache_index(self, conn: Connector) -> Any: ...


@dataclass(frozen=True)
class HydrateOutcome:
    """What hydrating one file did: ``outcome`` is ``"hydrated"``, ``"present"`` (a
    verified copy was there or another process made it), ``"skipped"`` (nothing to
    do: not recorded, no hydration tier) or ``"failed"`` (``reason`` says why)."""

    outcome: str
    bytes: int = 0
    reason: str = ""
    route: Route | None = field(default=None, compare=False, repr=False)
    #: Whether a failure came during or after a transfer (trying again costs one).
    costly: bool = field(default=False, compare=False, repr=False)


def hydrate(manager: Hydrating, router: Router, rel: str, source: Route) -> HydrateOutcome:
    """Copy ``rel`` from the tier of ``source`` onto the mount's hydration tier."""
    mount = router.mount
    tier = mount.hydration_tier
    if tier is None:
        return HydrateOutcome("skipped", reason=f"mount {mount.prefix!r} has no hydration tier")
    target = router.connectors[tier]
    row = manager.catalog.replica_file(router.connectors[mount.write_tier].url(rel))
    if row is None:
        return HydrateOutcome("skipped", reason="the catalog records no such file")
    if manager.catalog.read_only and not mount.tier(tier).storage_kind.node_local:
        return HydrateOutcome(
            "failed", reason="the catalog is read-only: a copy could not be recorded"
        )
    path = local_path(target, rel)
    if path is None:
        return HydrateOutcome("skipped", reason=f"tier {tier!r} is not a local directory")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lease = Lease(path, mount.hydrate_lease)
        if not lease.wait(lambda: _done(router, rel, tier, path, lease)):
            return _found(router, rel, tier, path)
        with lease:
            found = _present(router, rel, tier, path)
            if found is not None:
                return HydrateOutcome("present", route=found)
            return _copy(manager, router, rel, source, row)
    except Exception as exc:  # a hydration never fails the read: the caller warns
        return HydrateOutcome("failed", reason=_why(exc), costly=True)


def _done(router: Router, rel: str, tier: str, path: str, lease: Lease) -> bool:
    """Whether another process's copy is in place (looked up once its lease is gone)."""
    return not os.path.exists(lease.path) and _present(router, rel, tier, path) is not None


def _found(router: Router, rel: str, tier: str, path: str) -> HydrateOutcome:
    found = _present(router, rel, tier, path)
    if found is None:  # released between the look and the route
        return HydrateOutcome("failed", reason="another process's copy vanished")
    return HydrateOutcome("present", route=found)


def _present(router: Router, rel: str, tier: str, path: str) -> Route | None:
    """The route to a verified copy on ``tier``, if one is there now."""
    if not os.path.exists(path):
        return None
    route = router.route(rel)
    return route if route.tier == tier else None


def _copy(
    manager: Hydrating, router: Router, rel: str, source: Route, row: FileRecord
) -> HydrateOutcome:
    """Stream, verify, rename into place, seal, record; the route to the copy."""
    mount = router.mount
    tier = mount.hydration_tier or ""
    target, write = router.connectors[tier], router.connectors[mount.write_tier]
    # With a checksum the copy's bytes are checked: no need to ask the write tier first.
    before = _unchanged(write, rel, row) if not row.checksum else None
    if isinstance(before, str):
        return HydrateOutcome("failed", reason=before)
    full = make_room(manager, router, tier, row.size)
    if full is not None:
        return HydrateOutcome("failed", reason=full)
    problem = _stream(router.connectors[source.tier], target, rel, row, write)
    if problem is not None:
        return HydrateOutcome("failed", reason=problem, costly=True)
    stat = target.stats([rel]).get(rel)
    if stat is None:
        return HydrateOutcome("failed", reason="the copy vanished right after its rename")
    _record(manager, router, rel, row, stat, row.etag if before is None else before.etag)
    route = Route(
        source.path, tier, target.url(rel), f"hydrated from {source.tier!r}", row.size, (),
        row.checksum or None,
    )  # fmt: skip
    return HydrateOutcome("hydrated", row.size, route=route)


def _unchanged(write: Connector, rel: str, row: FileRecord) -> FileStat | str:
    """The write tier's stat when it still holds the recorded version, else why not."""
    st = write.stats([rel]).get(rel)
    if st is None:
        return f"{write.url(rel)} is gone"
    etags = (st.etag or "").strip('"'), (row.etag or "").strip('"')
    if st.size != row.size or (all(etags) and etags[0] != etags[1]):
        return f"{write.url(rel)} changed since the catalog recorded it (aifdata sync records it)"
    return st


def _stream(
    source: Connector, target: Connector, rel: str, row: FileRecord, write: Connector
) -> str | None:
    """Copy into the target's atomic writer, hashing; publish only verified bytes
    (without a checksum: of the recorded size, the write tier's ETag unchanged
    since before the copy). None when published, else why nothing was."""
    writer = target.open_write(rel)
    try:
        if row.size <= WHOLE_FETCH_MAX:  # one request, the connector's fastest read
            data = source.cat_file(rel)
            got = Streamed(len(data), checksum_of(data))
            writer.write(data)
        else:
            got = _windows(source, rel, row.size, writer)
    except BaseException:
        writer.discard()
        raise
    changed = f"{source.url(rel)} changed since the catalog recorded it (aifdata sync records it)"
    if got.size != row.size:
        problem: str | None = f"read {got.size} bytes, the catalog records {row.size}: {changed}"
    elif row.checksum and got.checksum != row.checksum:
        problem = f"checksum {got.checksum} differs from the catalog's {row.checksum}: {changed}"
    elif not row.checksum and isinstance(_unchanged(write, rel, row), str):
        problem = "the write tier's copy changed during the copy"
    else:
        problem = None
    if problem is not None:
        writer.discard()
        return problem
    if row.checksum:
        _seal_unpublished(writer, row.checksum)
    writer.close()
    return None


def _windows(source: Connector, rel: str, size: int, writer: Any) -> Streamed:
    """The recorded ``size`` bytes of a large file in windows of :data:`WHOLE_FETCH_MAX`
    (each the connector's parallel ranged read), the next fetched while one is hashed
    and written."""
    digest, got = new_digest(), 0
    bounds = [(lo, min(lo + WHOLE_FETCH_MAX, size)) for lo in range(0, size, WHOLE_FETCH_MAX)]
    with ThreadPool(1, thread_name_prefix="aifdata-hydrate") as ahead:
        pending = ahead.submit(source.cat_file, rel, *bounds[0])
        for i in range(len(bounds)):
            chunk = pending.result()
            if i + 1 < len(bounds):
                pending = ahead.submit(source.cat_file, rel, *bounds[i + 1])
            digest.update(chunk)
            writer.write(chunk)
            got += len(chunk)
            if len(chunk) < bounds[i][1] - bounds[i][0]:  # shorter than recorded: stop
                pending.cancel()
                break
    return Streamed(got, format_checksum(digest))


def _seal_unpublished(writer: Any, checksum: str) -> None:
    """Seal the copy (:mod:`aifdata.connectors._seal`) before its rename, not after:
    a seal changes the ctime, and a reader that stat'ed the published copy before
    it would find it changed since it was recorded and hash it again."""
    setxattr, fileno = getattr(os, "setxattr", None), getattr(writer, "fileno", None)
    if setxattr is None or fileno is None:
        return
    with contextlib.suppress(OSError, ValueError):  # no user attributes here: a note, not a duty
        fd = fileno()
        setxattr(fd, SEAL_ATTRIBUTE, f"{checksum} {os.fstat(fd).st_ctime_ns}".encode())


def _record(
    manager: Hydrating, router: Router, rel: str, row: FileRecord, stat: FileStat, etag: str | None
) -> None:
    tier = router.mount.hydration_tier or ""
    target = router.connectors[tier]
    if router.mount.tier(tier).storage_kind.node_local:
        manager.cache_index(target).record(target.url(rel), row.size, row.checksum, stat, etag)
    else:
        manager.catalog.record_replica(row.id, tier, target.url(rel), row.size, row.checksum, stat)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 400 else text[:400] + "..."

"""``sync``: record what changed on a mount's tiers as a new version of each dataset there.

Like FSx for Lustre's auto-import of ``NEW``, ``CHANGED`` and ``DELETED`` objects,
but both ways: the write tier (S3, listed with ETags) and every other shared tier
(the PFS, stat'ed: size, inode, ctime) are compared with the latest version's file
and replica rows of each dataset whose location meets the prefix.

- new: a file under the dataset's location that the version does not have;
- changed: a copy whose stat no longer matches its record, hashed again to other
  bytes (a metadata-only change, the same bytes, is no change); an unrecorded
  copy counts only on the write tier, or where the write tier has none: what
  routing would serve is what sync adopts;
- deleted: gone from the write tier and from every other tier;
- a conflict: different new bytes on two tiers (or deleted on the write tier and
  changed elsewhere) since the version; it is reported with every side and
  recorded only when ``prefer`` (``"s3"``: remote tiers, ``"pfs"``: local ones)
  chooses, never silently.

The new version's replica rows name only the copies that hold its bytes, so
routing skips stale copies at once. Routing takes the write tier as the reference
(a copy there that the catalog does not know is served: read-your-writes), so
when the version's bytes come from another tier (a change made on the PFS, or
``prefer="pfs"``) the write tier's copy is overwritten with them, verified as
``stage`` does (the export of FSx for Lustre). Stale copies on other tiers are
left in place, unrecorded: ``aifdata stage`` replaces them, ``aifdata release``
frees them. All versions are written in one catalog transaction, or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._config import Config, Mount
from .._errors import BadName, BadURL, CatalogError, MountNotFound, NotFound
from .._filesystem import MountedFileSystem
from .._router import ReplicaRecord
from .._threads import ThreadPool
from ..catalog import Catalog, FileRecord, current_principal
from ..catalog._stage import _copy_verified
from ..connectors import Connector, FileStat, join
from ..connectors._atomic import TempOwner
from ..connectors._seal import rehash
from ._sync_record import Copy, Known, Outcome, Scope, record, still_latest
from ._sync_report import CHANGED, CONFLICT, DELETED, GONE, NEW, Side, SyncChange, SyncReport

#: What ``prefer`` may name besides a tier: the remote tiers' side (S3) or the local
#: tiers' side (PFS).
PREFER = ("s3", "pfs")


def sync(
    catalog: Catalog,
    prefix: str,
    prefer: str | None = None,
    *,
    dry_run: bool = False,
    workers: int = 8,
) -> SyncReport:
    """Compare the tiers under the ``aif://`` ``prefix`` with the latest versions there and
    record what is new, changed and deleted as a new version of each dataset.

    Needs write on each dataset recorded (those the caller may only read are listed in
    :attr:`SyncReport.skipped`). With an unresolved conflict, or ``dry_run``, nothing
    is recorded and nothing written.
    """
    _check_prefer(catalog.config, prefer)
    if not dry_run:
        catalog._writable()
    scopes, skipped = _scopes(catalog, prefix)
    fs = MountedFileSystem(catalog.config)
    plans = [_plan(scope, fs, prefer, workers) for scope in scopes]
    changes = tuple(o.change for p in plans for o in p.outcomes if o.change is not None)
    report = SyncReport(prefix, changes, skipped=tuple(skipped), prefer=prefer, dry_run=dry_run)
    hashed = any(c.hashed for p in plans for o in p.outcomes for c in o.holders)
    if dry_run or report.conflicts or (report.up_to_date and not hashed):
        return report
    for p in plans:  # checked again in the transaction; here, before the write tier is written
        still_latest(catalog.conn, p.scope)
    exported = [url for p in plans for url in p.export()]
    versions = record(catalog, [(p.scope, p.conns, p.outcomes) for p in plans])
    return SyncReport(
        prefix, changes, tuple(versions), tuple(skipped), tuple(exported), prefer, dry_run
    )


def _check_prefer(config: Config, prefer: str | None) -> None:
    names = {t.name for m in config.mounts for t in m.tiers}
    if prefer is not None and prefer not in {*PREFER, *names}:
        known = ", ".join(sorted(names))
        raise BadName(f"--prefer {prefer!r}: expected s3, pfs or a tier name ({known})")


# -- what is compared --------------------------------------------------------


def _scopes(catalog: Catalog, prefix: str) -> tuple[list[Scope], list[str]]:
    """The datasets whose location meets ``prefix`` that the caller may write, and the
    names of those they may only read."""
    if not prefix.startswith("aif://"):
        raise BadURL(f"{prefix!r}: sync takes an aif:// prefix, e.g. aif://genomics/run42")
    path = MountedFileSystem._strip_protocol(prefix)
    catalog.gate().check(path, "read", "sync")
    mount, rel = catalog.config.resolve(path)
    policy, who = catalog.policy(), current_principal()
    scopes, skipped = [], []
    for name in catalog.datasets():
        scope = _scope(catalog, name, mount, rel)
        if scope is None:
            continue
        if policy.allows(who, "write", policy.dataset(name)):
            scopes.append(scope)
        else:
            skipped.append(name)
    if not scopes:
        if skipped:
            catalog.require(skipped[0], "write", "sync")  # refused (and audited) here
        raise NotFound(f"{prefix}: no dataset recorded there (aifdata ingest records one)")
    return scopes, skipped


def _scope(catalog: Catalog, name: str, mount: Mount, rel: str) -> Scope | None:
    row = catalog.conn.execute(
        "SELECT v.id, v.dataset_id, v.number, v.source, v.digest FROM versions v"
        " JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?"
        " ORDER BY v.number DESC LIMIT 1",
        (name,),
    ).fetchone()
    located = _location(catalog.config, row["source"]) if row is not None else None
    if row is None or located is None or located[0].prefix != mount.prefix:
        return None
    root = located[1]
    under = rel if _inside(rel, root) else root if _inside(root, rel) else None
    if under is None:
        return None
    scope = Scope(name, row["dataset_id"], row["number"], row["id"], row["source"],
                  row["digest"], mount, root, under)  # fmt: skip
    for known, rows in _version_files(catalog, row["id"]):
        located_rels = [loc[2] for url in rows if (loc := catalog.config.locate(url))]
        file_rel = located_rels[0] if located_rels else join(root, known.path)
        scope.files[file_rel] = Known(known, file_rel, rows)
    return scope


def _location(config: Config, source: str) -> tuple[Mount, str] | None:
    """The mount and mount path of a version's source (None: outside every mount)."""
    if source.startswith("aif://"):
        try:
            return config.resolve(MountedFileSystem._strip_protocol(source))
        except MountNotFound:
            return None
    located = config.tier_at(source)
    return None if located is None else (located[0], located[2])


def _inside(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


def _version_files(
    catalog: Catalog, version_id: int
) -> Iterable[tuple[FileRecord, dict[str, ReplicaRecord]]]:
    """Each file of a version with its replica rows (the bad ones too: they are hashed)."""
    rows: dict[int, dict[str, ReplicaRecord]] = {}
    for r in catalog.conn.execute(
        "SELECT r.file_id, r.url, r.size, r.checksum, r.mtime, r.etag, r.inode, r.device,"
        " r.ctime_ns, r.bad FROM replicas r JOIN files f ON f.id = r.file_id"
        " WHERE f.version_id = ?",
        (version_id,),
    ):
        rows.setdefault(r["file_id"], {})[r["url"]] = ReplicaRecord(*tuple(r)[2:])
    for f in catalog._files(version_id):
        yield f, rows.get(f.id, {})


# -- what each tier holds ----------------------------------------------------


@dataclass
class _Plan:
    """One dataset's outcome per file, and the connectors of its mount's shared tiers."""

    scope: Scope
    conns: dict[str, Connector]
    outcomes: list[Outcome]

    def export(self) -> list[str]:
        """Give the write tier the version's bytes where it holds others; their URLs."""
        write = self.scope.mount.write_tier
        done = []
        for outcome in self.outcomes:
            if outcome.export_from is not None:
                outcome.holders.append(_export(self.conns, write, outcome))
                done.append(self.conns[write].url(outcome.rel))
        return done


def _plan(scope: Scope, fs: MountedFileSystem, prefer: str | None, workers: int) -> _Plan:
    mount = scope.mount
    conns = {
        t.name: fs.connector(mount, t.name) for t in mount.tiers if not t.storage_kind.node_local
    }
    found = _found(scope, conns, workers)
    rels = sorted(
        {r for f in scope.files.values() if _inside(r := f.rel, scope.under)} | set(found)
    )
    judge = _Judge(scope, conns, prefer)
    return _Plan(scope, conns, [judge(rel, found.get(rel, {})) for rel in rels])


def _listed(conn: Connector, under: str) -> set[str]:
    """The files under ``under`` on one tier (aifdata's temporary and lease files left out)."""
    try:
        found = conn.find(under)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {
        rel
        for rel, info in found.items()
        if info.get("type") == "file" and not _ours(rel.rpartition("/")[2])
    }


def _ours(name: str) -> bool:
    return TempOwner.is_ours(name) or name.endswith(".aif-lease")


def _found(scope: Scope, conns: dict[str, Connector], workers: int) -> dict[str, dict[str, Copy]]:
    """rel -> tier -> the copy there and the bytes it holds (hashed where its stat does not
    show that it is the recorded one)."""
    recorded = {rel for rel in scope.files if _inside(rel, scope.under)}
    jobs: list[tuple[str, str, FileStat]] = []
    out: dict[str, dict[str, Copy]] = {}
    for tier, conn in conns.items():
        for rel, st in conn.stats(sorted(recorded | _listed(conn, scope.under))).items():
            known = scope.files.get(rel)
            row = known.rows.get(conn.url(rel)) if known is not None else None
            if known is not None and row is not None and not row.bad and row.matches(st):
                copy = Copy(tier, rel, conn.url(rel), st, known.record.checksum, True)
                out.setdefault(rel, {})[tier] = copy
            else:
                jobs.append((tier, rel, st))

    def hashed(job: tuple[str, str, FileStat]) -> Copy | None:
        tier, rel, _ = job
        conn = conns[tier]
        got = rehash(conn, rel)
        if got is None:  # deleted since it was listed
            return None
        if got.checksum is None:
            raise CatalogError(
                f"{conn.url(rel)}: changed while sync read it; nothing was recorded"
                " (sync again once it is still)"
            )
        known = scope.files.get(rel)
        row = known.rows.get(conn.url(rel)) if known is not None else None
        return Copy(tier, rel, conn.url(rel), got.stat, got.checksum, _good(row), hashed=True)

    with ThreadPool(max(1, workers)) as pool:
        for got in pool.map(hashed, jobs):
            if got is not None:
                out.setdefault(got.rel, {})[got.tier] = got
    return out


def _good(row: ReplicaRecord | None) -> bool:
    return row is not None and not row.bad


# -- what changed ------------------------------------------------------------


class _Judge:
    """Decides, for one file, what the new version holds and which copies hold it."""

    def __init__(self, scope: Scope, conns: dict[str, Connector], prefer: str | None) -> None:
        self.scope, self.conns, self.prefer = scope, conns, prefer
        self.write = scope.mount.write_tier

    def __call__(self, rel: str, found: dict[str, Copy]) -> Outcome:
        known = self.scope.files.get(rel)
        if known is None:
            return self._new(rel, found)
        return self._known(known, found)

    def _new(self, rel: str, found: dict[str, Copy]) -> Outcome:
        copies = list(found.values())
        if len({c.checksum for c in copies}) == 1:
            return self._outcome(rel, None, copies[0].checksum, found, NEW, copies)
        return self._conflict(rel, None, found, copies)

    def _known(self, known: Known, found: dict[str, Copy]) -> Outcome:
        rel, old = known.rel, known.record.checksum
        recorded = {t for t, conn in self.conns.items() if _good(known.rows.get(conn.url(rel)))}
        if not found:
            gone = [self._recorded_side(known, t) for t in sorted(recorded)]
            return self._outcome(rel, known, None, found, DELETED, gone)
        changed = [
            c
            for c in found.values()
            if c.checksum != old and (c.tier in recorded or c.tier == self.write or
                                      self.write not in found)
        ]  # fmt: skip
        write_deleted = self.write in recorded and self.write not in found
        if changed and (len({c.checksum for c in changed}) > 1 or write_deleted):
            sides = [self._recorded_side(known, self.write)] if write_deleted else []
            return self._conflict(rel, known, found, changed, sides)
        if changed:
            return self._outcome(rel, known, changed[0].checksum, found, CHANGED, changed)
        missing = [self._recorded_side(known, t) for t in sorted(recorded - set(found))]
        return self._outcome(rel, known, old, found, GONE if missing else None, missing)

    def _conflict(
        self,
        rel: str,
        known: Known | None,
        found: dict[str, Copy],
        copies: Sequence[Copy],
        deleted: Sequence[Side] = (),
    ) -> Outcome:
        sides = [*deleted, *(c.side() for c in copies)]
        chosen = self._preferred(sides)
        if chosen is None:
            return self._outcome(rel, known, None, found, CONFLICT, sides, unresolved=True)
        checksum = None if chosen.size is None else chosen.checksum  # None: deleted there
        return self._outcome(rel, known, checksum, found, CONFLICT, sides, chosen.tier)

    def _preferred(self, sides: Sequence[Side]) -> Side | None:
        """The side ``prefer`` names: a tier by its name, else ``s3`` the remote tiers
        and ``pfs`` the local ones."""
        prefer, mount = self.prefer, self.scope.mount
        if prefer is None:
            return None
        named = [s for s in sides if s.tier == prefer]
        if named or prefer not in PREFER:  # a tier: its side, if it is one of them
            return named[0] if named else None
        local = prefer == "pfs"
        return next((s for s in sides if mount.tier(s.tier).local == local), None)

    def _recorded_side(self, known: Known, tier: str) -> Side:
        """The side of a recorded copy that is gone (its size None), with its last marks."""
        url = self.conns[tier].url(known.rel)
        row = known.rows.get(url)
        etag, mtime = (row.etag, row.mtime) if row is not None else (None, None)
        return Side(tier, url, None, known.record.checksum, etag, mtime)

    def _outcome(
        self,
        rel: str,
        known: Known | None,
        checksum: str | None,
        found: dict[str, Copy],
        kind: str | None,
        sides: Sequence[Side | Copy],
        chosen: str | None = None,
        unresolved: bool = False,
    ) -> Outcome:
        shown = tuple(s if isinstance(s, Side) else s.side() for s in sides)
        change = None
        if kind is not None:
            change = SyncChange(self.scope.name, self.scope.path_of(rel), kind, shown, chosen)
        holders = [] if checksum is None else [c for c in found.values() if c.checksum == checksum]
        export_from = None
        there = found.get(self.write)
        if holders and not unresolved and there is not None and there.checksum != checksum:
            export_from = holders[0]
        path = self.scope.path_of(rel)
        return Outcome(rel, path, known.record if known else None, checksum, holders, change,
                       export_from, unresolved)  # fmt: skip


def _export(conns: dict[str, Connector], write: str, outcome: Outcome) -> Copy:
    """Copy the version's bytes over the write tier's copy, verified; the new copy."""
    source = outcome.export_from
    assert source is not None
    assert outcome.checksum is not None
    target = conns[write]
    wanted = FileRecord(0, outcome.path, source.stat.size, outcome.checksum, "", None, None)
    _copy_verified(conns[source.tier], target, outcome.rel, wanted)
    stat = target.stats([outcome.rel]).get(outcome.rel)
    if stat is None:
        raise CatalogError(f"{target.url(outcome.rel)}: vanished right after it was written")
    return Copy(write, outcome.rel, target.url(outcome.rel), stat, outcome.checksum, True)

"""``stage``: put verified copies of a dataset version on another tier of its mount.

Copies are verified against the catalog's SHA-256; files ingested without a
checksum (``checksum=False``) can only be checked by size. Each copy is
recorded with what identifies it unread: for a local (PFS) copy its inode,
device and ctime, which ``os.utime`` cannot set back, and, where the file
system has extended attributes, a seal with its checksum
(:mod:`aifdata.connectors._seal`).
"""

from __future__ import annotations

from collections.abc import Callable

from .._config import Config
from .._errors import CatalogError, ConfigError
from .._filesystem import MountedFileSystem
from .._streams import CHUNK_SIZE, copy_stream
from .._threads import ThreadPool
from ..connectors import Connector, FileStat
from ..connectors._seal import rehash, seal
from ._records import Dataset, FileRecord, StageReport

#: Records one verified copy: (file id, tier, url, size, checksum, stat).
RecordReplica = Callable[[int, str, str, int, str, FileStat], None]


def stage_version(
    config: Config, record_replica: RecordReplica, ds: Dataset, to: str, workers: int
) -> StageReport:
    """Copy what is missing or stale to tier ``to``; record every verified copy."""
    fs = MountedFileSystem(config)

    def one(record: FileRecord) -> tuple[str, int]:
        source, target, rel = _endpoints(fs, config, ds, record, to)
        stat = _already_there(target, rel, record)
        if stat is not None:
            outcome, copied = "present", 0
        else:
            _copy_verified(source, target, rel, record)
            outcome, copied = "copied", record.size
            stat = target.stats([rel]).get(rel)
            if stat is None:
                raise CatalogError(f"{target.url(rel)}: vanished right after staging")
        if record.checksum:  # what a copy's stat cannot show, its seal tells (local copies)
            stat = seal(target, rel, record.checksum, stat, write=outcome == "copied")
        record_replica(record.id, to, target.url(rel), record.size, record.checksum, stat)
        return outcome, copied

    with ThreadPool(max(1, workers)) as pool:
        results = list(pool.map(one, ds.files))
    paths = [f.path for f in ds.files]
    return StageReport(
        copied=tuple(p for p, (o, _) in zip(paths, results, strict=True) if o == "copied"),
        present=tuple(p for p, (o, _) in zip(paths, results, strict=True) if o == "present"),
        bytes_copied=sum(n for _, n in results),
    )


def _endpoints(
    fs: MountedFileSystem, config: Config, ds: Dataset, record: FileRecord, to: str
) -> tuple[Connector, Connector, str]:
    """The connector to read from, the one to write to, and the path within the mount."""
    for _tier, url in record.replicas:
        located = config.locate(url)
        if located is None:
            continue
        mount, tier, rel = located
        if to not in {t.name for t in mount.tiers}:
            names = ", ".join(t.name for t in mount.tiers)
            raise ConfigError(f"mount {mount.prefix!r} has no tier {to!r}; its tiers: {names}")
        if tier.name != to:
            return fs.connector(mount, tier.name), fs.connector(mount, to), rel
    raise CatalogError(
        f"{ds.name}@{ds.version}: {record.path} has no recorded copy under a mount with tier {to!r}"
    )


def _already_there(target: Connector, rel: str, record: FileRecord) -> FileStat | None:
    """The stat of a copy on the target that holds the catalog's bytes (as hashed), or None."""
    stat = target.stats([rel]).get(rel)
    if stat is None or stat.size != record.size:
        return None
    if not record.checksum:  # ingested without hashing: nothing better than the size
        return stat
    hashed = rehash(target, rel)
    return hashed.stat if hashed is not None and hashed.checksum == record.checksum else None


def _copy_verified(source: Connector, target: Connector, rel: str, record: FileRecord) -> None:
    """Stream source to target, hashing; publish only if the checksum matches the catalog."""
    writer = target.open_write(rel)
    try:
        with source.open_read(rel, CHUNK_SIZE, None) as src:
            got = copy_stream(src, writer, checksum=True).checksum
    except BaseException:
        writer.discard()
        raise
    if record.checksum and got != record.checksum:
        writer.discard()
        raise CatalogError(
            f"{source.url(rel)}: checksum {got} differs from the catalog's {record.checksum};"
            " nothing was staged"
        )
    writer.close()

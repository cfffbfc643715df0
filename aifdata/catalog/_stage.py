"""``stage``: put verified copies of a dataset version on another tier of its mount.

Copies are verified against the catalog's SHA-256; files ingested without a
checksum (``checksum=False``) can only be checked by size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .._config import Config
from .._errors import CatalogError, ConfigError
from .._filesystem import MountedFileSystem
from ..connectors import Connector, FileStat
from ._ingest import CHECKSUM_ALGORITHM
from ._records import Dataset, FileRecord, StageReport

#: Records one verified copy: (file id, tier, url, size, checksum, stat).
RecordReplica = Callable[[int, str, str, int, str, FileStat], None]

_BLOCK = 8 * 2**20


def stage_version(
    config: Config, record_replica: RecordReplica, ds: Dataset, to: str, workers: int
) -> StageReport:
    """Copy what is missing or stale to tier ``to``; record every verified copy."""
    fs = MountedFileSystem(config)

    def one(record: FileRecord) -> tuple[str, int]:
        source, target, rel = _endpoints(fs, config, ds, record, to)
        if _already_there(target, rel, record):
            outcome, copied = "present", 0
        else:
            _copy_verified(source, target, rel, record)
            outcome, copied = "copied", record.size
        stat = target.stats([rel]).get(rel)
        if stat is None:
            raise CatalogError(f"{target.url(rel)}: vanished right after staging")
        record_replica(record.id, to, target.url(rel), record.size, record.checksum, stat)
        return outcome, copied

    with ThreadPoolExecutor(max(1, workers)) as pool:
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


def _already_there(target: Connector, rel: str, record: FileRecord) -> bool:
    stat = target.stats([rel]).get(rel)
    if stat is None or stat.size != record.size:
        return False
    if not record.checksum:  # ingested without hashing: nothing better than the size
        return True
    digest = hashlib.sha256()
    with target.open_read(rel, _BLOCK, stat.size) as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}" == record.checksum


def _copy_verified(source: Connector, target: Connector, rel: str, record: FileRecord) -> None:
    """Stream source to target, hashing; publish only if the checksum matches the catalog."""
    digest = hashlib.sha256()
    writer = target.open_write(rel)
    try:
        with source.open_read(rel, _BLOCK, None) as src:
            while block := src.read(_BLOCK):
                digest.update(block)
                writer.write(block)
    except BaseException:
        writer.discard()
        raise
    got = f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"
    if record.checksum and got != record.checksum:
        writer.discard()
        raise CatalogError(
            f"{source.url(rel)}: checksum {got} differs from the catalog's {record.checksum};"
            " nothing was staged"
        )
    writer.close()

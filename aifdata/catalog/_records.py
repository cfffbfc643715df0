"""What the catalog hands out: dataset versions, their files, and staging reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .._config import Config, load_config
from ..formats import Partition, partition
from ._lineage import RunRecord


@dataclass(frozen=True)
class StageReport:
    """What ``stage`` did: files copied, files already in place, bytes copied."""

    copied: tuple[str, ...]
    present: tuple[str, ...]
    bytes_copied: int


class FileRecord(NamedTuple):
    """One file of a dataset version (``checksum`` is ``""`` if ingest skipped hashing)."""

    id: int
    path: str
    size: int
    checksum: str
    format: str
    mtime: float | None
    etag: str | None
    replicas: tuple[tuple[str, str], ...] = ()  # (tier, url)


@dataclass(frozen=True)
class Dataset:
    """One version of a dataset, with its files."""

    name: str
    version: int
    description: str
    owner: str
    tags: Mapping[str, str]
    source: str
    created: float
    digest: str
    files: tuple[FileRecord, ...] = field(repr=False)
    #: The runs that made this version (its upstream edges), oldest first.
    lineage: tuple[RunRecord, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def urls(self, config: Config | None = None) -> list[str]:
        """Where to read each file: ``aif://`` when a mount holds it (routed to the best
        tier), else its recorded ``s3://`` URL or local path."""
        config = config or load_config()
        out = []
        for f in self.files:
            url = f.replicas[0][1] if f.replicas else f"{self.source.rstrip('/')}/{f.path}"
            located = config.locate(url)
            out.append(f"aif://{located[0].prefix}/{located[2]}" if located else url)
        return out

    def partitions(
        self,
        n: int | None = None,
        target_bytes: int | None = None,
        format: str | None = None,
        config: Config | None = None,
    ) -> list[Partition]:
        """Partitions of every file of this version; ``n`` is shared out by file size."""
        config = config or load_config()
        total = max(1, self.total_bytes)
        out: list[Partition] = []
        for f, url in zip(self.files, self.urls(config), strict=True):
            share = None if n is None else max(1, round(n * f.size / total))
            fmt = format or (f.format if f.format != "unknown" else None)
            out.extend(partition(url, n=share, target_bytes=target_bytes, format=fmt,
                                 config=config))  # fmt: skip
        return out

"""Find the files under a source and checksum them, before anything is recorded.

Checksums are SHA-256 (written ``sha256:<hex>``), computed by streaming each
file in 8 MiB blocks (never whole in memory), several files at a time:
hashlib releases the GIL on large blocks. Any failure stops the ingest with an
:class:`~aifdata.IngestError` that names the file; the caller records nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem

from .._errors import IngestError, NotFound
from .._filesystem import AifFileSystem

CHECKSUM_ALGORITHM = "sha256"
_BLOCK = 8 * 2**20


@dataclass(frozen=True)
class SourceFile:
    """One file found under an ingest source, with its checksum."""

    path: str  # relative to the source root, '/'-separated
    url: str  # where it was read from
    size: int
    checksum: str
    mtime: float | None
    etag: str | None
    tier: str


def list_source(fs: AbstractFileSystem, root: str) -> dict[str, dict[str, Any]]:
    """Every file under ``root`` (or ``root`` itself), keyed by full path."""
    try:
        info = fs.info(root)
    except FileNotFoundError:
        raise NotFound(f"{_display(fs, root)}: nothing to ingest there") from None
    if info["type"] != "directory":
        return {root: info}
    found = fs.find(root, detail=True)
    return {name: entry for name, entry in found.items() if entry.get("type") == "file"}


def checksum(fs: AbstractFileSystem, path: str) -> str:
    """``sha256:<hex>`` of a file, streamed in blocks."""
    digest = hashlib.sha256()
    with fs.open(path, "rb", block_size=_BLOCK) as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"


def _physical(fs: AbstractFileSystem, name: str, entry: dict[str, Any]) -> tuple[Any, str, str]:
    """(filesystem-like reader, path for it, URL to record) for one listed file.

    Through ``aif://`` the bytes are read from the tier the listing names (the
    write tier first), never routed: the catalog must checksum the copy it
    records, at that copy's physical URL.
    """
    if isinstance(fs, AifFileSystem):
        conn, rel = fs.tier_copy(name, entry["tier"])
        return _ConnectorReader(conn), rel, conn.url(rel)
    return fs, name, _display(fs, name)


class _ConnectorReader:
    """Just enough of a filesystem (``open``) over one connector."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def open(self, rel: str, mode: str = "rb", block_size: int | None = None) -> Any:
        return self.conn.open_read(rel, block_size)


def scan(
    fs: AbstractFileSystem,
    root: str,
    workers: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[SourceFile]:
    """List and checksum every file under ``root``; raise IngestError on the first failure."""
    entries = list_source(fs, root)
    base = root.rstrip("/")
    single = len(entries) == 1 and base in entries

    def one(item: tuple[str, dict[str, Any]]) -> SourceFile:
        name, entry = item
        reader, path, url = _physical(fs, name, entry)
        try:
            digest = checksum(reader, path)
        except Exception as exc:
            where = url
            raise IngestError(f"{where}: cannot read it ({exc}); nothing was recorded") from exc
        if progress is not None:
            progress(entry.get("size") or 0)
        rel = name.rsplit("/", 1)[-1] if single else name[len(base) :].lstrip("/")
        return SourceFile(
            path=rel,
            url=url,
            size=int(entry.get("size") or 0),
            checksum=digest,
            mtime=_mtime(entry),
            etag=(entry.get("etag") or entry.get("ETag") or "").strip('"') or None,
            tier=str(entry.get("tier") or _kind(fs)),
        )

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return sorted(pool.map(one, sorted(entries.items())), key=lambda f: f.path)


def _mtime(entry: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified"):
        value = entry.get(key)
        if isinstance(value, int | float):
            return float(value)
        if value is not None and hasattr(value, "timestamp"):
            return float(value.timestamp())
    return None


def _kind(fs: AbstractFileSystem) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return {"file": "local"}.get(protocol, protocol)


def _display(fs: AbstractFileSystem, path: str) -> str:
    kind = _kind(fs)
    return path if kind == "local" else f"{kind}://{path}"

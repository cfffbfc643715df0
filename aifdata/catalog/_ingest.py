"""Find the files under a source and checksum them, before anything is recorded.

Checksums are SHA-256 (written ``sha256:<hex>``), computed by streaming each
large file in :data:`~aifdata._streams.CHUNK_SIZE` chunks (never whole in
memory), several files at a time: hashlib releases the GIL on large chunks.
Any failure stops the ingest with an
:class:`~aifdata.IngestError` that names the file; the caller records nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

from fsspec import AbstractFileSystem

from .._errors import IngestError, MountNotFound, NotFound
from .._filesystem import MountedFileSystem
from .._gc import gc_paused
from .._streams import CHUNK_SIZE, checksum_of, copy_stream
from .._threads import ThreadPool
from ..connectors import Connector
from ..connectors._atomic import TempOwner

#: Where a listed file's bytes are read: a tier's connector (``aif://``) or a filesystem.
Reader: TypeAlias = "Connector | AbstractFileSystem"


class SourceFile(NamedTuple):
    """One file found under an ingest source, with its checksum."""

    path: str  # relative to the source root, '/'-separated
    url: str  # where it was read from
    size: int
    checksum: str
    mtime: float | None
    etag: str | None
    tier: str
    format: str = "unknown"


def list_source(fs: AbstractFileSystem, root: str) -> dict[str, dict[str, Any]]:
    """Every file under ``root`` (or ``root`` itself), keyed by full path; aifdata's own
    temporary files are left out (an ingest only reads its source: it removes nothing)."""
    try:
        info = fs.info(root)
    except MountNotFound:
        raise
    except FileNotFoundError:
        raise NotFound(f"{_display(fs, root)}: nothing to ingest there") from None
    if info["type"] != "directory":
        return {root: info}
    found = fs.find(root, detail=True)
    return {
        name: entry
        for name, entry in found.items()
        if entry.get("type") == "file" and not TempOwner.is_ours(name.rpartition("/")[2])
    }


class _Located:
    """Where each listed file's bytes are read from, and the URL recorded for it.

    Through ``aif://`` the bytes are read from the tier the listing names (the
    write tier first), never routed: the catalog must checksum the copy it
    records, at that copy's physical URL. The listing was checked against
    the grants, so its files are not checked again one by one.
    """

    def __init__(self, fs: AbstractFileSystem, root: str) -> None:
        self.fs = fs
        self.mounted = fs if isinstance(fs, MountedFileSystem) else None
        self.aif = self.mounted is not None
        self.connectors: dict[str, Connector] = {}
        if self.mounted is not None:
            self.mount, _ = self.mounted.split(root)

    def where(self, name: str, entry: dict[str, Any]) -> tuple[Reader, str, str]:
        """(connector or filesystem, path on it, URL to record)."""
        if self.mounted is not None:
            rel = name[len(self.mount.prefix) + 1 :]
            conn = self.connectors.get(entry["tier"])
            if conn is None:
                conn = self.mounted.connector(self.mount, entry["tier"])
                self.connectors[entry["tier"]] = conn
            return conn, rel, conn.url(rel)
        return self.fs, name, _display(self.fs, name)

    def read_many(self, reader: Reader, paths: list[str]) -> dict[str, bytes | Exception]:
        """Whole contents of small files (failures in place of bytes)."""
        if isinstance(reader, Connector):
            return reader.cat_files(paths)
        n = len(paths)  # cat_ranges: concurrent on s3fs, and no glob expansion of names
        found = reader.cat_ranges(paths, [None] * n, [None] * n, on_error="return")
        return dict(zip(paths, found, strict=True))

    def stream(self, reader: Reader, path: str) -> tuple[str, bytes]:
        """Checksum of a large file, streamed, and its first bytes (to sniff its format)."""
        if isinstance(reader, Connector):
            opened = reader.open_read(path, CHUNK_SIZE)
        else:
            opened = reader.open(path, "rb", CHUNK_SIZE)
        with opened as f:
            streamed = copy_stream(f, checksum=True, head=_HEAD)
        return streamed.checksum, streamed.head


def sniff_format(path: str, head: bytes | None) -> str:
    """The format registry's name for a file (by its first bytes when known), or ``unknown``."""
    from ..formats import detect

    plugin = detect(path, head) if head else detect(path)
    return plugin.name if plugin is not None else "unknown"


#: Files up to this size are read whole, many per task; larger ones are streamed.
_SMALL = 4 * 2**20
_BATCH_BYTES = 32 * 2**20
_BATCH_FILES = 1024
_HEAD = 4096


def scan(
    fs: AbstractFileSystem,
    root: str,
    workers: int = 8,
    progress: Callable[[int], None] | None = None,
    hashing: bool = True,
) -> list[SourceFile]:
    """List and checksum every file under ``root``; raise IngestError on the first failure.

    Small files are read whole in batches (one bulk read per batch, hashed as
    they arrive); large files are streamed, several at a time. Without
    ``hashing`` files are only listed: their checksum is ``""``, and the
    catalog then knows a copy by its size and mtime or ETag alone.
    """
    with gc_paused():  # a dict per file, none in a cycle (hashing below runs unpaused)
        entries = list_source(fs, root)
        base = root.rstrip("/")
        single = len(entries) == 1 and base in entries
        located = _Located(fs, root)
        items = []
        cut = len(base) + 1
        where = located.where
        for name, entry in sorted(entries.items()):
            reader, path, url = where(name, entry)
            rel = name.rsplit("/", 1)[-1] if single else name[cut:] if base else name
            items.append((rel, reader, path, url, entry))
    found: dict[str, tuple[str, str]] = {}  # url -> (checksum, format)
    if hashing:
        found = _hash_all(located, items, workers, progress)
    else:  # no bytes are read: the format comes from the name (worked out once per suffix)
        by_suffix: dict[str, str] = {}
        for rel, _, _, url, _ in items:
            suffix = rel[rel.rfind("/") + 1 :].partition(".")[2].lower()
            fmt = by_suffix.get(suffix)
            if fmt is None:
                fmt = by_suffix[suffix] = sniff_format(rel, None)
            found[url] = ("", fmt)
        if progress is not None:
            progress(sum(int(e.get("size") or 0) for *_, e in items))
    kind = _kind(fs)
    with gc_paused():
        return _source_files(items, found, kind)


def _source_files(
    items: list[tuple[str, Any, str, str, dict[str, Any]]],
    found: dict[str, tuple[str, str]],
    kind: str,
) -> list[SourceFile]:
    return [
        SourceFile(
            rel,
            url,
            int(entry.get("size") or 0),
            found[url][0],
            _mtime(entry),
            _etag(entry),
            entry.get("tier") or kind,
            found[url][1],
        )
        for rel, _reader, _path, url, entry in items
    ]


def _etag(entry: dict[str, Any]) -> str | None:
    value = entry.get("etag") or entry.get("ETag")
    return value.strip('"') or None if value else None


def _hash_all(
    located: _Located,
    items: list[tuple[str, Any, str, str, dict[str, Any]]],
    workers: int,
    progress: Callable[[int], None] | None,
) -> dict[str, tuple[str, str]]:
    """url -> (``sha256:<hex>``, format) for every item; IngestError naming the first failure."""
    batches: list[list[tuple[Any, str, str, int]]] = []
    large: list[tuple[Any, str, str, int]] = []
    current: list[tuple[Any, str, str, int]] = []
    current_bytes = 0
    for _rel, reader, path, url, entry in items:
        size = int(entry.get("size") or 0)
        if size > _SMALL:
            large.append((reader, path, url, size))
            continue
        if current and (
            current_bytes + size > _BATCH_BYTES
            or len(current) >= _BATCH_FILES
            or current[0][0] is not reader
        ):
            batches.append(current)
            current, current_bytes = [], 0
        current.append((reader, path, url, size))
        current_bytes += size
    if current:
        batches.append(current)

    def small(batch: list[tuple[Any, str, str, int]]) -> dict[str, tuple[str, str]]:
        reader = batch[0][0]
        try:
            contents = located.read_many(reader, [path for _, path, _, _ in batch])
        except Exception as exc:
            first = batch[0][2]
            raise IngestError(f"{first}: cannot read it ({exc}); nothing was recorded") from exc
        out = {}
        for _, path, url, _size in batch:
            data = contents.get(path)
            if not isinstance(data, bytes):
                why = data if isinstance(data, Exception) else "no data returned"
                raise IngestError(f"{url}: cannot read it ({why}); nothing was recorded")
            out[url] = (checksum_of(data), sniff_format(path, data[:_HEAD]))
        if progress is not None:
            progress(sum(size for *_, size in batch))
        return out

    def big(item: tuple[Any, str, str, int]) -> dict[str, tuple[str, str]]:
        reader, path, url, size = item
        try:
            digest, head = located.stream(reader, path)
        except Exception as exc:
            raise IngestError(f"{url}: cannot read it ({exc}); nothing was recorded") from exc
        if progress is not None:
            progress(size)
        return {url: (digest, sniff_format(path, head))}

    digests: dict[str, tuple[str, str]] = {}
    with ThreadPool(max(1, workers)) as pool:
        for found in pool.map(small, batches):
            digests.update(found)
        for found in pool.map(big, large):
            digests.update(found)
    return digests


def _mtime(entry: dict[str, Any]) -> float | None:
    value = entry.get("mtime")
    if type(value) is float:  # the PFS case, fast
        return value
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

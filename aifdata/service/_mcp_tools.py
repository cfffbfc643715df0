"""What the MCP tools do, as plain library calls with JSON results (no MCP here).

Each method is what the matching CLI command does (``search``, ``show``,
``where``, ``lineage``, ``partition``) through the same catalog calls, so the
same grant checks apply; :mod:`._mcp` runs them as the caller and audits them.
Paths are ``aif://`` paths only: a server must not open its own local files or
the site's buckets by their storage URLs for whoever asks.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import AifFileSystem, BadURL, Catalog, Config, formats
from ..catalog import Dataset, split_ref
from ..formats import DEFAULT_TARGET_BYTES, FormatPlugin, Partition, RangeSource
from ._mcp_values import jsonable
from ._public import public_replicas, public_url, readable_path, route_of, visible_files

#: Most partitions one plan may list (a larger plan is refused before it is made).
MAX_PLAN_PARTITIONS = 10_000
#: Most files :meth:`CatalogTools.describe_dataset` lists.
MAX_FILES = 1000
#: Most records one sample holds, and most bytes of their JSON.
MAX_SAMPLE_RECORDS = 100
MAX_SAMPLE_BYTES = 64 * 2**10
#: A sample reads one partition of a plan of partitions of about ``SAMPLE_PARTITION_BYTES``
#: (at most ``SAMPLE_PLAN_PARTITIONS`` of them: planning costs a small read each), never
#: of more than about ``MAX_SAMPLE_READ_BYTES`` (a huge file takes more partitions).
SAMPLE_PARTITION_BYTES = 2**20
SAMPLE_PLAN_PARTITIONS = 64
MAX_SAMPLE_READ_BYTES = 64 * 2**20


@dataclass
class CatalogTools:
    """The tools' work over one catalog and mount table, as the current principal."""

    catalog: Catalog
    config: Config
    _fs: AifFileSystem | None = field(default=None, init=False, repr=False)

    @property
    def fs(self) -> AifFileSystem:
        """``aif://`` governed by this catalog (not whichever one the environment names)."""
        if self._fs is None:
            self._fs = AifFileSystem(self.config, catalog=self.catalog)
        return self._fs

    def search_datasets(
        self, query: str, limit: int, format: str | None = None, owner: str | None = None
    ) -> dict[str, Any]:
        hits = self.catalog.search(query, format=format, owner=owner, limit=limit)
        results = [
            {"name": h.name, "description": h.description, "owner": h.owner,
             "tags": dict(h.tags), "score": round(h.score, 4)}
            for h in hits
        ]  # fmt: skip
        return {"query": query, "results": results}

    def describe_dataset(self, ref: str, max_files: int = MAX_FILES) -> dict[str, Any]:
        name, version = split_ref(ref)
        ds, hidden = visible_files(self.catalog, self.config, self.catalog.dataset(name, version))
        return {**describe(ds, self.config, max_files), "hidden_files": hidden}

    def where_is(self, path: str) -> dict[str, Any]:
        logical = logical_path(path)
        readable_path(self.catalog, self.fs, logical, "where")
        return route_of(self.fs, logical)

    def lineage(self, ref: str, depth: int | None = None) -> dict[str, Any]:
        split_ref(ref)  # a clear error for a malformed reference
        trees = self.catalog.lineage(ref, depth=depth)
        return {direction: tree.as_dict() for direction, tree in trees.items()}

    def plan_partitions(
        self,
        path: str,
        n: int | None = None,
        target_bytes: int | None = None,
        format: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``options``: the format's own plan options (``region``, ``variable``, ``by``)."""
        if n is not None and target_bytes is not None:
            raise ValueError("give n or target_bytes, not both")
        source = self.source(path)
        if n is None:
            target = target_bytes or DEFAULT_TARGET_BYTES
            expected = -(-source.size // target)
            if expected > MAX_PLAN_PARTITIONS:
                raise ValueError(
                    f"{source.url}: target_bytes={target:,} makes about {expected:,}"
                    f" partitions of {source.size:,} bytes; at most {MAX_PLAN_PARTITIONS:,} here"
                    " (choose a larger target)"
                )
        parts = formats.plan_source(
            source, n=n, target_bytes=target_bytes, format=format, **(options or {})
        )
        return {"path": source.url, "size": source.size, "count": len(parts),
                "partitions": [partition_dict(p) for p in parts]}  # fmt: skip

    def read_sample(
        self,
        path: str,
        limit: int = 10,
        partition: int = 0,
        format: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        source = self.source(path)
        size = sample_plan_size(source.size)
        parts = formats.plan_source(source, n=size, format=format, **(options or {}))
        if partition >= max(1, len(parts)):
            raise ValueError(
                f"{source.url}: partition {partition} of a sample plan of {len(parts)};"
                f" give a partition below {len(parts)}"
            )
        sample = Sample(min(limit, MAX_SAMPLE_RECORDS))
        if parts:
            chosen = parts[partition]
            sample.take(rows(formats.get(chosen.format), chosen, source))
        return {
            "path": source.url,
            "partition": partition_dict(parts[partition]) if parts else None,
            "partitions_in_sample_plan": len(parts),
            **sample.as_dict(),
        }

    def source(self, path: str) -> RangeSource:
        """The file at an ``aif://`` path, read through this catalog's ``aif://`` (a file
        the caller may not read is refused as a missing one)."""
        logical = logical_path(path)
        readable_path(self.catalog, self.fs, logical, "partition")
        return RangeSource.on(self.fs, logical, f"aif://{logical}")


def sample_plan_size(size: int) -> int:
    """How many partitions a sample plans for a file of ``size`` bytes: about 1 MiB each
    up to 64 of them, then as many as keep each near ``MAX_SAMPLE_READ_BYTES``."""
    small = min(SAMPLE_PLAN_PARTITIONS, -(-size // SAMPLE_PARTITION_BYTES))
    return max(1, small, -(-size // MAX_SAMPLE_READ_BYTES))


def logical_path(path: str) -> str:
    """``aif://a/b`` or ``a/b`` -> ``a/b``; any other scheme is refused."""
    if "://" in path and not path.startswith("aif://"):
        raise BadURL(f"{path}: the MCP tools take aif:// paths only (e.g. aif://genomics/x)")
    logical = path.removeprefix("aif://").strip("/")
    if not logical:
        raise BadURL(f"{path!r}: an empty path; expected aif://MOUNT/PATH")
    return logical


def describe(ds: Dataset, config: Config, max_files: int) -> dict[str, Any]:
    """A dataset version as JSON, its first ``max_files`` files each with its ``aif://``
    path (``aif://`` when a mount holds it), size, checksum, format and replicas (each by
    its tier and :func:`~._public.public_url`)."""
    shown = ds.files[:max_files]
    urls = dataclasses.replace(ds, files=shown).urls(config)
    files = [
        {"path": f.path, "read_url": public_url(config, url), "size": f.size,
         "checksum": f.checksum, "format": f.format, "replicas": public_replicas(config, f)}
        for f, url in zip(shown, urls, strict=True)
    ]  # fmt: skip
    return {
        "name": ds.name, "version": ds.version, "ref": f"{ds.name}@{ds.version}",
        "description": ds.description, "owner": ds.owner, "tags": dict(ds.tags),
        "source": public_url(config, ds.source) or "", "created": ds.created, "digest": ds.digest,
        "total_bytes": ds.total_bytes, "file_count": len(ds.files),
        "formats": sorted({f.format for f in ds.files if f.format}),
        "files": files, "files_cut": len(ds.files) > len(shown),
        "made_by": [r.as_dict() for r in ds.lineage],
    }  # fmt: skip


def partition_dict(p: Partition) -> dict[str, Any]:
    return {"ordinal": p.ordinal, "format": p.format, "spec": jsonable(p.options),
            "fingerprint": p.fingerprint}  # fmt: skip


def rows(plugin: FormatPlugin, partition: Partition, source: RangeSource) -> Iterator[Any]:
    """The records of one partition as rows: its format's table (``to_pandas``) when the
    format has one and pandas is installed, else its records as they come."""
    if type(plugin).to_pandas is not FormatPlugin.to_pandas:
        try:
            frame = plugin.to_pandas(partition, source=source)
        except ImportError:  # no pandas (or pyarrow): the records themselves
            pass
        else:
            yield from frame.to_dict("records")
            return
    yield from plugin.records(partition, source=source)


@dataclass
class Sample:
    """At most ``limit`` records and ``MAX_SAMPLE_BYTES`` of their JSON, and why it stopped."""

    limit: int
    records: list[Any] = field(default_factory=list)
    nbytes: int = 0
    cut: str | None = None

    def take(self, records: Iterator[Any]) -> None:
        for record in records:
            if len(self.records) >= self.limit:
                self.cut = f"limit: more than {self.limit} record(s) in the partition"
                return
            value = jsonable(record)
            size = len(json.dumps(value, default=str))
            if self.nbytes + size > MAX_SAMPLE_BYTES:
                self.cut = f"bytes: the next record would pass {MAX_SAMPLE_BYTES:,} bytes of JSON"
                return
            self.records.append(value)
            self.nbytes += size

    def as_dict(self) -> dict[str, Any]:
        return {"count": len(self.records), "records": self.records, "cut": self.cut is not None,
                "why_cut": self.cut}  # fmt: skip

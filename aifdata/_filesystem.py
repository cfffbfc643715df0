"""``aif://``: one fsspec filesystem over every mount and tier.

A logical path ``aif://genomics/run42/reads.fastq`` is cleaned (one spelling,
no way out), split into its mount and the rest, and served by the mount's
tiers: reads by the tier the :class:`~aifdata._router.Router` picks, writes
by the mount's write tier, listings as the union of all tiers. Every operation
is first checked by the access gate given (:mod:`aifdata._access`; the
catalog's grants), before any storage is touched. This layer never imports the
catalog: :mod:`aifdata._wiring` builds the public :class:`aifdata.AifFileSystem`
with the catalog found as users expect.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from typing import Any

from fsspec.spec import AbstractFileSystem

from ._access import AccessGate
from ._config import Config, Mount, load_config
from ._errors import MountNotFound, NotFound, StorageError
from ._paths import PROTOCOL, clean_path, has_magic
from ._router import RecordLookup, Route, Router
from ._streams import CHUNK_SIZE, copy_stream
from ._tiering import TierManager
from .connectors import Connector, FileStat, Info, connector_for

#: How many paths :meth:`MountedFileSystem.split` keeps split.
SPLITS_KEPT = 65_536


class MountedFileSystem(AbstractFileSystem):
    """The ``aif://`` virtual filesystem: a mount table over tiers of any storage kind.

    ``config`` is a :class:`~aifdata.Config`, a path to a TOML file, or None
    for :func:`~aifdata.load_config`'s default lookup. ``gate`` checks every
    request (none: nothing is enforced); ``records`` gives the verified
    replicas that routing prefers. :class:`aifdata.AifFileSystem` is this with
    both taken from the catalog. ``manager`` hydrates copies on mounts with
    ``hydrate = "on-read"`` and counts what each tier serves (none: routing alone).
    """

    protocol = PROTOCOL
    root_marker = ""

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        gate: AccessGate | None = None,
        records: RecordLookup | None = None,
        manager: TierManager | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, Config) else load_config(config)
        self._gate = gate
        self._records = records
        self._manager = manager
        self._connectors: dict[tuple[str, str], Connector] = {}
        self._splits: dict[str, tuple[Mount, str]] = {}  # path as given -> split (see split)

    def _access_gate(self) -> AccessGate | None:
        """The gate every request passes (None: nothing to enforce)."""
        return self._gate

    def _replica_lookup(self) -> RecordLookup | None:
        """Where routing finds the replicas verified so far (None: the size rule only)."""
        return self._records

    def _tier_manager(self) -> TierManager | None:
        """Who hydrates and counts reads (None: routing alone)."""
        return self._manager

    def _allow(self, paths: str | Iterable[str], privilege: str, action: str) -> None:
        """Refuse (AccessDenied, audited) unless the gate allows it."""
        gate = self._access_gate()
        if gate is not None:
            gate.check(paths, privilege, action)

    def _readable(self, names: list[str]) -> list[str]:
        gate = self._access_gate()
        return names if gate is None else gate.readable(names)

    def __reduce__(self) -> tuple[Any, ...]:
        options = dict(self.storage_options)
        options.pop("config", None)
        return _rebuild, (type(self), self.config, options)

    # -- paths and parts -----------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return clean_path(os.fspath(path) if isinstance(path, os.PathLike) else path)

    def unstrip_protocol(self, name: str) -> str:
        return f"{PROTOCOL}://{name}"

    def connector(self, mount: Mount, tier_name: str) -> Connector:
        """The connector of one tier of a mount (made on first use)."""
        key = (mount.prefix, tier_name)
        conn = self._connectors.get(key)
        if conn is None:
            conn = self._connectors[key] = connector_for(mount.tier(tier_name))
        return conn

    def split(self, path: str) -> tuple[Mount, str]:
        """The mount that holds ``path`` and the path within it (tier-relative); kept
        per path string (the mount table does not change), as every read asks."""
        held = self._splits.get(path) if isinstance(path, str) else None
        if held is None:
            held = self.config.resolve(self._strip_protocol(path))
            if isinstance(path, str):
                if len(self._splits) >= SPLITS_KEPT:
                    self._splits.clear()
                self._splits[path] = held
        return held

    def _router(self, mount: Mount) -> Router:
        lookup = self._replica_lookup() if len(mount.tiers) > 1 else None
        return Router(mount, {t.name: self.connector(mount, t.name) for t in mount.tiers}, lookup)

    def _tiers(self, mount: Mount) -> list[Connector]:
        """Connectors in listing order: the write tier, then the rest by read order."""
        names = [mount.write_tier, *(n for n in mount.read_order if n != mount.write_tier)]
        names += [t.name for t in mount.tiers if t.name not in names]
        return [self.connector(mount, n) for n in names]

    def _writer(self, mount: Mount) -> Connector:
        return self.connector(mount, mount.write_tier)

    def _virtual_children(self, path: str) -> list[str] | None:
        """Names of the namespace directories above mounts, or None inside a mount."""
        for mount in self.config.mounts:
            if path == mount.prefix or path.startswith(mount.prefix + "/"):
                return None
        prefix = f"{path}/" if path else ""
        children = {
            prefix + m.prefix[len(prefix) :].split("/")[0]
            for m in self.config.mounts
            if m.prefix.startswith(prefix)
        }
        if not children:
            known = ", ".join(self.config.prefixes) or "(none)"
            raise MountNotFound(
                f"no mount holds 'aif://{path}'; known mounts: {known} {self.config.origin()}"
            )
        return sorted(children)

    @staticmethod
    def _logical(mount: Mount, rel: str) -> str:
        return f"{mount.prefix}/{rel}" if rel else mount.prefix

    def _named(self, mount: Mount, info: Info, tier: str) -> Info:
        out = dict(info)
        out["name"] = self._logical(mount, info["name"])
        out["tier"] = tier
        return out

    # -- routing -------------------------------------------------------------

    def tier_copy(self, path: str, tier: str) -> tuple[Connector, str]:
        """The connector of ``tier`` and the path of ``path`` on it (no routing)."""
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "read", "read")
        return self.connector(mount, tier), rel

    def _tier_copy(self, path: str, tier: str) -> tuple[Connector, str]:
        """:meth:`tier_copy` for a path a checked listing returned (no second check)."""
        mount, rel = self.split(path)
        return self.connector(mount, tier), rel

    def _read_route(self, mount: Mount, rel: str, *, whole: bool) -> tuple[Router, Route]:
        """The route a read takes: routed, then (on a managed mount) hydrated."""
        router = self._router(mount)
        manager = self._tier_manager()
        if manager is None:
            return router, router.route(rel)
        known = manager.known_route(router, rel)
        if known is not None:
            return router, known
        return router, manager.serve(router, rel, router.route(rel), whole=whole)

    def _writing(self, mount: Mount, rel: str) -> Connector:
        """The write tier's connector, once the tier manager heard ``rel`` is written."""
        manager = self._tier_manager()
        if manager is not None:
            manager.wrote(self._router(mount), rel)
        return self._writer(mount)

    def _served(self, router: Router, route: Route, nbytes: int | None) -> None:
        manager = self._tier_manager()
        if manager is not None:
            manager.served(router, route, nbytes)

    def where(self, path: str) -> Route:
        """Which tier would serve a read of ``path``, and why."""
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "read", "where")
        route = self._router(mount).route(rel)
        unseen = len(mount.tiers) == 1 and route.size is None  # routed without a look
        if unseen and self.connector(mount, route.tier).stat_or_none(rel) is None:
            raise NotFound(f"aif://{route.path}: no such file on tier {route.tier!r}")
        return route

    # -- metadata ------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        self._allow(path, "read", "ls")
        virtual = self._virtual_children(path)
        if virtual is not None:
            entries = [self._virtual_entry(n) for n in virtual]
        else:
            entries = self._ls_mount(path)
        entries = self._visible(entries)
        return entries if detail else [e["name"] for e in entries]

    def _visible(self, entries: list[Info]) -> list[Info]:
        """Only the entries the principal may read."""
        keep = set(self._readable([e["name"] for e in entries]))
        return [e for e in entries if e["name"] in keep]

    def _ls_mount(self, path: str) -> list[Info]:
        """The union of the tiers' listings of ``path`` (of a file: that file alone)."""
        mount, rel = self.config.resolve(path)
        listings = []
        for conn in self._tiers(mount):
            try:
                listings.append((conn.tier.name, conn.ls(rel)))
            except FileNotFoundError:
                continue
        if not listings and rel:
            raise NotFound(f"aif://{path}: no such file or directory")
        return sorted(self._union(mount, listings).values(), key=lambda e: e["name"])

    def _union(
        self, mount: Mount, listings: Iterable[tuple[str, Iterable[Info]]]
    ) -> dict[str, Info]:
        """Each entry once, by logical name, with ``tiers``: the tiers holding it as that type.

        The metadata is the first listing's (the write tier's), and ``tier`` names
        the tier it describes; a file wins over a directory of the same name, as in
        :meth:`info`.
        """
        merged: dict[str, Info] = {}
        for tier, entries in listings:
            for entry in entries:
                name = self._logical(mount, entry["name"])
                held = merged.get(name)
                if held is None or (held["type"] == "directory" and entry["type"] == "file"):
                    merged[name] = {**entry, "name": name, "tier": tier, "tiers": [tier]}
                elif held["type"] == entry["type"]:
                    held["tiers"].append(tier)
        rank = self._tier_ranks(mount)
        for entry in merged.values():
            if len(entry["tiers"]) > 1:  # one tier is in order already (most entries)
                entry["tiers"] = sorted(set(entry["tiers"]), key=rank.__getitem__)
        return merged

    @staticmethod
    def _tier_ranks(mount: Mount) -> dict[str, int]:
        """Each tier's place in the mount's read order (tiers it leaves out last, as declared)."""
        rank: dict[str, int] = {}
        for name in (*mount.read_order, *(t.name for t in mount.tiers)):
            rank.setdefault(name, len(rank))
        return rank

    @classmethod
    def _read_ordered(cls, mount: Mount, names: Iterable[str]) -> list[str]:
        """Tier names in the mount's read order: the one order of every ``tiers`` list."""
        return sorted(set(names), key=cls._tier_ranks(mount).__getitem__)

    def _virtual_entry(self, path: str) -> Info:
        """A directory of the namespace: a mount's root (held by its tiers) or above mounts."""
        mount = next((m for m in self.config.mounts if m.prefix == path), None)
        tiers = [] if mount is None else self._read_ordered(mount, (t.name for t in mount.tiers))
        return {"name": path, "size": 0, "type": "directory", "tiers": tiers}

    def info(self, path: str, **kwargs: Any) -> Info:
        path = self._strip_protocol(path)
        self._allow(path, "read", "info")
        if self._virtual_children(path) is not None:
            return self._virtual_entry(path)
        mount, rel = self.config.resolve(path)
        if not rel:
            return self._virtual_entry(path)
        trusted = self._trusted_info(mount, rel) if mount.trusts_catalog else None
        if trusted is not None:
            return trusted
        found: dict[str, Info] = {}
        for conn in self._tiers(mount):
            try:
                found[conn.tier.name] = conn.info(rel)
            except FileNotFoundError:
                continue
        files = {name for name, info in found.items() if info["type"] == "file"}
        if files:
            stats: dict[str, dict[str, FileStat]] = {t.name: {} for t in mount.tiers}
            stats.update({name: {rel: FileStat.of(found[name])} for name in files})
            router = self._router(mount)
            route = router.choose(rel, stats, router.records_for([rel]))
            if isinstance(route, NotFound):
                raise route
            info = self._named(mount, found[route.tier], route.tier)
            info["tiers"] = self._read_ordered(mount, files)
            if route.checksum:  # the same bytes on every tier that serves them
                info["checksum"] = route.checksum
            return info
        if found:
            name, info = next(iter(found.items()))
            out = self._named(mount, info, name)
            out["tiers"] = self._read_ordered(mount, found)
            return out
        raise NotFound(f"aif://{path}: no such file or directory")

    def _trusted_info(self, mount: Mount, rel: str) -> Info | None:
        """On a managed mount that trusts the catalog (:meth:`Router.from_records`): the
        info of the verified local copy that serves reads, with no request to the write
        tier (which the catalog records as holding the same bytes). None: ask every tier."""
        router = self._router(mount)
        route = router.from_records([rel]).get(rel)
        if route is None or route.tier == mount.write_tier:
            return None
        manager = self._tier_manager()
        if manager is not None:  # the reads that follow an info take the same route
            manager.remember(router, rel, route)
        try:
            found = self.connector(mount, route.tier).info(rel)
        except FileNotFoundError:
            return None
        info = self._named(mount, found, route.tier)
        info["tiers"] = self._read_ordered(mount, {route.tier, mount.write_tier})
        if route.checksum:
            info["checksum"] = route.checksum
        return info

    def find(
        self,
        path: str,
        maxdepth: int | None = None,
        withdirs: bool = False,
        detail: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Every file below ``path`` (and, with ``withdirs``, every directory), sorted.

        As s3fs and the local filesystem do, ``withdirs`` includes ``path`` itself
        when it is a directory (so ``glob("d/**")`` matches ``d``), except the
        namespace root ``""``, which fsspec never lists; a file is found as itself.
        Both agree on this, so S3-backed, PFS-only and mixed mounts all behave alike:
        the directory's entry is :meth:`info`'s (the tiers holding it as a directory).
        Where they differ, the storage decides: an empty directory exists on a PFS
        tier (local lists it) and never on S3 (s3fs has nothing to list).
        ``maxdepth`` below 1 is a ValueError, as fsspec's ``walk`` and ``glob`` say.
        """
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        path = self._strip_protocol(path)
        self._allow(path, "read", "find")
        out: dict[str, Info] = {}
        virtual = self._virtual_children(path)
        if virtual is not None:
            if withdirs and path:
                out[path] = self._virtual_entry(path)
            for child in virtual:
                out.update(self.find(child, withdirs=withdirs, detail=True))
        else:
            out = self._find_mount(path, withdirs)
        if maxdepth is not None:
            depth = path.count("/") + 1 if path else 0
            out = {k: v for k, v in out.items() if k.count("/") + 1 - depth <= maxdepth}
        names = sorted(self._readable(list(out)))
        return {n: out[n] for n in names} if detail else names

    def _find_mount(self, path: str, withdirs: bool) -> dict[str, Info]:
        mount, rel = self.config.resolve(path)
        listings = []
        for conn in self._tiers(mount):
            try:
                found = conn.find(rel, withdirs=withdirs)
            except FileNotFoundError:
                continue
            if found.get(rel, {}).get("type") == "directory":
                del found[rel]  # the tier's own idea of the root; ours is below
            listings.append((conn, found))
        out = self._union(mount, ((c.tier.name, f.values()) for c, f in listings))
        if withdirs and path not in out:
            root = self._find_root(mount, rel, listings)
            if root is not None:
                out[path] = root
        return out

    def _find_root(
        self, mount: Mount, rel: str, listings: list[tuple[Connector, dict[str, Info]]]
    ) -> Info | None:
        """The entry of the directory a find started at, or None if no tier holds one.

        A tier that lists something below ``rel`` holds it as a directory; an object
        store then needs no second request (its directories have nothing but a name).
        A tier that lists nothing is asked, as is any tier with real directories
        (a stat: their mtime and mode belong in the entry, as in :meth:`info`).
        """
        if not rel:
            return self._virtual_entry(mount.prefix)
        held: list[tuple[str, list[Info]]] = []
        for conn, found in listings:
            if found and not conn.supports_empty_directories:
                held.append((conn.tier.name, [{"name": rel, "size": 0, "type": "directory"}]))
                continue
            try:
                info = conn.info(rel)
            except FileNotFoundError:
                continue
            if info["type"] == "directory":
                held.append((conn.tier.name, [info]))
        return self._union(mount, held).get(self._logical(mount, rel))

    # -- reads ---------------------------------------------------------------

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "read", "cat")
        manager = self._tier_manager()
        if manager is not None:
            known = manager.read_known(mount, rel, start, end)
            if known is not None:
                return known
        whole = not start and end is None
        router, route = self._read_route(mount, rel, whole=whole)
        data = self.connector(mount, route.tier).cat_file(rel, start, end)
        self._served(router, route, len(data))
        return data

    def cat(
        self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any
    ) -> Any:
        literal = isinstance(path, list) and not recursive and not any(map(has_magic, path))
        paths = (
            self._strip_protocol(path) if literal else self.expand_path(path, recursive=recursive)
        )
        single = (
            len(paths) == 1 and isinstance(path, str) and paths[0] == self._strip_protocol(path)
        )
        if single:
            return self.cat_file(paths[0])
        results = self._cat_many(paths)
        if on_error == "raise":
            for value in results.values():
                if isinstance(value, BaseException):
                    raise value
        if on_error == "omit":
            return {k: v for k, v in results.items() if not isinstance(v, BaseException)}
        return results

    def _cat_many(self, paths: Sequence[str]) -> dict[str, Any]:
        """Whole contents of many files: routed in bulk, read in bulk per tier."""
        self._allow(paths, "read", "cat")
        results: dict[str, Any] = {}
        manager = self._tier_manager()
        for mount, rels in self._by_mount(paths).items():
            if manager is not None and mount.hydrate != "off":  # each file may hydrate
                for rel in rels:
                    try:
                        results[self._logical(mount, rel)] = self.cat_file(
                            self._logical(mount, rel)
                        )
                    except Exception as exc:
                        results[self._logical(mount, rel)] = exc
                continue
            prefix = mount.prefix + "/"
            by_tier: dict[str, list[str]] = {}
            for rel, tier in self._router(mount).serving_tiers(rels).items():
                if isinstance(tier, NotFound):
                    results[prefix + rel] = tier
                else:
                    by_tier.setdefault(tier, []).append(rel)
            for tier, tier_rels in by_tier.items():
                for rel, value in self.connector(mount, tier).cat_files(tier_rels).items():
                    results[prefix + rel if rel else mount.prefix] = value
        return results

    def _by_mount(self, paths: Iterable[str]) -> dict[Mount, list[str]]:
        """Group clean logical paths by mount."""
        grouped: dict[Mount, list[str]] = {}
        resolve = self.config.resolve
        for path in paths:
            mount, rel = resolve(path)
            grouped.setdefault(mount, []).append(rel)
        return grouped

    def cat_ranges(
        self,
        paths: list[str],
        starts: Any,
        ends: Any,
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[Any]:
        if not isinstance(paths, list):
            raise TypeError("paths must be a list")
        n = len(paths)
        starts = starts if isinstance(starts, list) else [starts] * n
        ends = ends if isinstance(ends, list) else [ends] * n
        if len(starts) != n or len(ends) != n:
            raise ValueError("paths, starts and ends must have the same length")
        out: list[Any] = [None] * n
        groups: dict[tuple[Mount, str], list[int]] = {}
        routed: dict[tuple[Mount, str], tuple[Router, Route]] = {}
        for i, path in enumerate(paths):
            try:
                mount, rel = self.split(path)
                self._allow(self._logical(mount, rel), "read", "cat_ranges")
                if (mount, rel) not in routed:
                    routed[mount, rel] = self._read_route(mount, rel, whole=False)
                tier = routed[mount, rel][1].tier
            except Exception as exc:
                if on_error != "return":
                    raise
                out[i] = exc
                continue
            groups.setdefault((mount, tier), []).append(i)
        if self._tier_manager() is not None:
            for router, route in routed.values():
                self._served(router, route, None)
        for (mount, tier), idx in groups.items():
            conn = self.connector(mount, tier)
            rels = [self.split(paths[i])[1] for i in idx]
            los, his = [starts[i] for i in idx], [ends[i] for i in idx]
            data: list[Any]
            try:
                data = conn.cat_ranges(rels, los, his)
            except Exception as exc:
                if on_error != "return":
                    raise
                if isinstance(exc, ConnectionError):  # the tier is down: each slot says so
                    data = [exc] * len(idx)
                else:  # one bad path: find which, one range at a time
                    data = [_range_or_error(conn, *a) for a in zip(rels, los, his, strict=True)]
            for i, value in zip(idx, data, strict=True):
                out[i] = value
        return out

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: Any = None,
        **kwargs: Any,
    ) -> Any:
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "read" if mode == "rb" else "write", "open")
        if mode == "rb":
            router, route = self._read_route(mount, rel, whole=False)
            self._served(router, route, None)
            return self.connector(mount, route.tier).open_read(rel, block_size, _looked_size(route))
        if mode == "xb" and self.exists(path):
            raise FileExistsError(f"aif://{self._strip_protocol(path)} already exists")
        if mode in ("wb", "xb"):
            return self._writing(mount, rel).open_write(rel, block_size)
        raise ValueError(f"mode {mode!r} is not supported on aif://; use 'rb', 'wb' or 'xb'")

    # -- writes --------------------------------------------------------------

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "write", "pipe")
        if mode == "create" and self.exists(path):
            raise FileExistsError(f"aif://{self._strip_protocol(path)} already exists")
        self._writing(mount, rel).pipe_file(rel, value)

    def put_file(
        self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        mount, rel = self.split(rpath)
        self._allow(self._logical(mount, rel), "write", "put")
        if os.path.isdir(lpath):
            self._writer(mount).makedirs(rel)
            return
        self._writing(mount, rel).put_file(os.fspath(lpath), rel)

    def get_file(
        self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any
    ) -> None:
        mount, rel = self.split(rpath)
        self._allow(self._logical(mount, rel), "read", "get")
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        router, route = self._read_route(mount, rel, whole=True)
        self._served(router, route, route.size)
        source = self.connector(mount, route.tier)
        with source.open_read(rel, CHUNK_SIZE, _looked_size(route)) as src:
            if outfile is not None:
                _copy_stream(src, outfile, callback, route.size)
                return
            if isinstance(lpath, str | os.PathLike):
                os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
            with open(lpath, "wb") as dst:
                _copy_stream(src, dst, callback, route.size)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        mount1, rel1 = self.split(path1)
        mount2, rel2 = self.split(path2)
        self._allow(self._logical(mount1, rel1), "read", "cp")
        self._allow(self._logical(mount2, rel2), "write", "cp")
        if self.isdir(path1):
            self._writer(mount2).makedirs(rel2)
            return
        router, route = self._read_route(mount1, rel1, whole=True)
        self._served(router, route, route.size)
        source = self.connector(mount1, route.tier)
        target = self._writing(mount2, rel2)
        if source is target:
            target.copy(rel1, rel2)
            return
        size = _looked_size(route)
        with source.open_read(rel1, CHUNK_SIZE, size) as src, target.open_write(rel2) as dst:
            _copy_stream(src, dst, kwargs.get("callback"), route.size)

    def mv(
        self,
        path1: Any,
        path2: Any,
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Rename a file within a mount on every tier that holds it (a PFS rename is O(1));
        anything else is fsspec's copy-then-delete."""
        if self._rename_file(path1, path2):
            return
        super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    def _rename_file(self, path1: Any, path2: Any) -> bool:
        if not (isinstance(path1, str) and isinstance(path2, str)) or path2.endswith("/"):
            return False
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        (mount, rel1), (mount2, rel2) = self.config.resolve(src), self.config.resolve(dst)
        if mount is not mount2 or not rel1 or not rel2 or src == dst:
            return False
        self._allow([src, dst], "write", "mv")
        try:
            if self.info(src)["type"] != "file" or self.isdir(dst):
                return False
        except FileNotFoundError:
            return False
        for conn in self._tiers(mount):
            if conn.exists(rel1):
                conn.move(rel1, rel2)
            elif conn.exists(rel2):
                conn.rm_file(rel2)  # an old copy there would shadow the moved file
        return True

    def rm_file(self, path: str) -> None:
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "write", "rm")
        removed = False
        for conn in self._tiers(mount):
            try:
                info = conn.info(rel)
            except FileNotFoundError:
                continue
            if info["type"] == "directory":
                conn.rmdir(rel)
            else:
                conn.rm_file(rel)
            removed = True
        if not removed:
            raise NotFound(f"aif://{self._strip_protocol(path)}: no such file or directory")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        self._allow(paths, "write", "rm")
        if not recursive:
            for p in paths:
                self.rm_file(p)
            return
        for mount, rels in self._by_mount(paths).items():
            for conn in self._tiers(mount):
                conn.rm_many(rels)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        mount, rel = self.split(path)
        self._allow(self._logical(mount, rel), "write", "mkdir")
        self._writer(mount).makedirs(rel)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        if not exist_ok and self.exists(path):
            raise FileExistsError(f"aif://{self._strip_protocol(path)} already exists")
        self.mkdir(path)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory from every tier that holds it.

        As s3fs and the local filesystem: a missing directory is a FileNotFoundError,
        and one that holds anything is refused (ENOTEMPTY), also where directories are
        only implied by the keys below them. A file is a NotADirectoryError.
        """
        mount, rel = self.split(path)
        logical = self._logical(mount, rel)
        self._allow(logical, "write", "rmdir")
        if self.info(logical)["type"] != "directory":
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", f"aif://{logical}")
        if self._ls_mount(logical):
            raise StorageError(errno.ENOTEMPTY, "directory not empty", f"aif://{logical}")
        for conn in self._tiers(mount):
            try:
                conn.rmdir(rel)
            except FileNotFoundError:
                continue

    def modified(self, path: str) -> Any:
        import datetime

        info = self.info(path)
        mtime = info.get("mtime")
        if mtime is None and info["type"] == "directory":  # s3fs says the same of its prefixes
            raise IsADirectoryError(
                errno.EISDIR, "no modification time: a directory", f"aif://{info['name']}"
            )
        if mtime is None:
            raise NotImplementedError("this tier records no modification time")
        return datetime.datetime.fromtimestamp(mtime, tz=datetime.UTC)

    def created(self, path: str) -> Any:
        return self.modified(path)

    def close(self) -> None:
        """Release the connectors' pools."""
        for conn in self._connectors.values():
            conn.close()
        self._connectors.clear()


def _looked_size(route: Route) -> int | None:
    """The size a reader of ``route`` may trust: None when only the catalog says it (the
    object may have changed behind aifdata's back: the reader looks, never cut short)."""
    return None if route.recorded else route.size


def _copy_stream(src: Any, dst: Any, callback: Any, size: int | None) -> None:
    """Copy in large chunks, reporting progress to an fsspec callback if given."""
    if callback is not None and size is not None:
        callback.set_size(size)
    copy_stream(src, dst, progress=None if callback is None else callback.relative_update)


def _range_or_error(conn: Connector, rel: str, start: int | None, end: int | None) -> Any:
    """One range, or the exception that reading it raised (``on_error="return"``)."""
    try:
        return conn.cat_file(rel, start, end)
    except Exception as exc:
        return exc


def _rebuild(
    cls: type[MountedFileSystem], config: Config, storage_options: dict[str, Any]
) -> MountedFileSystem:
    return cls(config, **storage_options)

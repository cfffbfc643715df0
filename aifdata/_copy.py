"""``aifdata.copy``: copy files between ``aif://``, ``s3://``, other mounted kinds and local
paths, planned the way ``cp`` plans (the CLI's ``aifdata cp`` is this).

::

    aifdata.copy("aif://genomics/run42/reads.fastq", "/scratch/me/")   # into a directory
    aifdata.copy("s3://raw/run42", "aif://genomics/run42", recursive=True)

Every file is streamed (:func:`aifdata._streams.copy_stream`), never held whole
in memory; a local destination is written atomically (it appears whole or not
at all, and its old bytes stay readable until then). A local destination inside
a mount's PFS tier is written through that tier: its root must exist (unless
the tier says ``create = true``), and a full disk names the tier.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fsspec import AbstractFileSystem
from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem

from ._config import Config, load_config
from ._errors import AifDataError
from ._streams import CHUNK_SIZE, copy_stream
from ._urls import resolve_url
from .connectors import AtomicWriter, TierWriter, connector_for
from .connectors._atomic import sweep_before_write

PathLike = str | os.PathLike[str]
ConfigLike = Config | PathLike | None


@dataclass(frozen=True, slots=True)
class CopiedFile:
    """One file :func:`copy` wrote: where from, where to (as URLs or local paths), how many
    bytes."""

    source: str
    destination: str
    size: int


@dataclass(frozen=True, slots=True)
class _Step:
    src_fs: AbstractFileSystem
    src_path: str
    dst_path: str
    size: int


def url_to_fs(url: PathLike, config: ConfigLike = None) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and the path on it that serve ``url``: ``aif://`` (the virtual
    filesystem), ``s3://`` and other kinds' URLs (a mount's tier uses that tier's endpoint,
    credentials and options), ``file://`` or a local path.

    ``config`` is a :class:`~aifdata.Config`, a TOML file, or None for
    :func:`~aifdata.load_config`'s default lookup. A mistyped scheme raises
    :class:`~aifdata.BadURL`.
    """
    return resolve_url(os.fspath(url), _config(config))


def copy(
    src: PathLike | Sequence[PathLike],
    dst: PathLike,
    recursive: bool = False,
    *,
    config: ConfigLike = None,
    callback: Callback | None = None,
    check: Callable[[str, str], object] | None = None,
) -> list[CopiedFile]:
    """Copy ``src`` (a URL or local path, or several) to ``dst``; return the files copied.

    Planned like ``cp``: a ``dst`` ending in ``/``, an existing directory, or
    the target of several sources receives each source by its base name;
    otherwise ``dst`` is the new name. A directory needs ``recursive=True``
    (else :class:`IsADirectoryError`) and is copied whole, below its own name
    when ``dst`` receives by base name. Copying a local file onto itself is
    refused. ``callback`` (an fsspec :class:`~fsspec.callbacks.Callback`) is
    given the total size once the copy is planned, then each chunk's size.
    ``check`` is called with each planned (source, destination), as URLs or local
    paths, before the first byte is written: what it raises stops the copy with
    nothing written. An ``aif://`` destination's grants are checked the same way, for
    every planned file before the first is written.
    """
    cfg = _config(config)
    sources = (
        [os.fspath(src)] if isinstance(src, str | os.PathLike) else [os.fspath(s) for s in src]
    )
    if not sources:
        raise ValueError("copy: no source given")
    dest = os.fspath(dst)
    dst_fs, dst_path = resolve_url(dest, cfg)
    into_dir = len(sources) > 1 or dest.endswith("/") or _isdir(dst_fs, dst_path)
    plan: list[_Step] = []
    for source in sources:
        src_fs, src_path = resolve_url(source, cfg)
        plan += _plan(src_fs, src_path, dst_path, into_dir, recursive)
    if check is not None:
        for step in plan:
            check(_display(step.src_fs, step.src_path), _display(dst_fs, step.dst_path))
    allow = getattr(dst_fs, "_allow", None)  # aif://: its gate, for every file at once
    if allow is not None and plan:
        allow([dst_fs._strip_protocol(step.dst_path) for step in plan], "write", "cp")
    if callback is not None:
        callback.set_size(sum(step.size for step in plan))
    progress = None if callback is None else callback.relative_update
    done = []
    for step in plan:
        size = _copy_one(step, dst_fs, cfg, progress)
        done.append(CopiedFile(_display(step.src_fs, step.src_path),
                               _display(dst_fs, step.dst_path), size))  # fmt: skip
    return done


def _config(config: ConfigLike) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def _isdir(fs: AbstractFileSystem, path: str) -> bool:
    try:
        return bool(fs.isdir(path))
    except FileNotFoundError:
        return False


def _plan(
    src_fs: AbstractFileSystem, src_path: str, dst_path: str, into_dir: bool, recursive: bool
) -> list[_Step]:
    """The files under one source and where each goes."""
    info = src_fs.info(src_path)
    base = dst_path.rstrip("/")
    if info["type"] != "directory":
        target = f"{base}/{_basename(src_path)}" if into_dir else base
        return [_Step(src_fs, src_path, target, info["size"])]
    if not recursive:
        raise IsADirectoryError(f"{src_path} is a directory (use -r to copy it)")
    root = f"{base}/{_basename(src_path)}" if into_dir else base
    prefix = src_path.rstrip("/")
    files = src_fs.find(prefix, detail=True)
    return [
        _Step(src_fs, name, f"{root}/{name[len(prefix) :].lstrip('/')}", entry["size"])
        for name, entry in sorted(files.items())
        if entry["type"] == "file"
    ]


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _copy_one(
    step: _Step,
    dst_fs: AbstractFileSystem,
    config: Config,
    progress: Callable[[int], object] | None,
) -> int:
    """Stream one file; a local target appears whole or not at all (its old bytes stay
    readable until then)."""
    local = isinstance(dst_fs, LocalFileSystem)
    both_local = local and isinstance(step.src_fs, LocalFileSystem)
    if both_local and _same_file(step.src_path, step.dst_path):
        raise AifDataError(f"{step.src_path} and {step.dst_path} are the same file")
    with (
        step.src_fs.open(step.src_path, "rb", block_size=CHUNK_SIZE) as src,
        _local_writer(step.dst_path, config) if local else dst_fs.open(step.dst_path, "wb") as dst,
    ):
        return copy_stream(src, dst, progress=progress).size


def _local_writer(path: str, config: Config) -> TierWriter:
    """A writer of a local file: through the PFS tier that holds it, if any; else a
    file of its own, after the directory's stale temporary files are removed."""
    located = config.tier_at(path)
    if located is not None and located[2] and located[1].kind == "pfs":
        return connector_for(located[1]).open_write(located[2])
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    sweep_before_write(directory)
    return AtomicWriter(path)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _display(fs: AbstractFileSystem, path: str) -> str:
    """A path as the user would write it: local paths bare, others with their scheme."""
    if isinstance(fs, LocalFileSystem):
        return path
    return str(fs.unstrip_protocol(path))

"""Virtual Zarr references (kerchunk) to HDF5, NetCDF4 and GeoTIFF files, tied to their version.

::

    aifdata.refs.write("aif://climate/era5.nc", "aif://climate/era5.refs.json")
    ds = aifdata.refs.open("aif://climate/era5.refs.json")   # an xarray Dataset, lazily read

:func:`write` makes the references with kerchunk's own translators
(``SingleHdf5ToZarr`` for HDF5 and NetCDF4, read through a paged file over
``aif://`` that counts what it reads; ``kerchunk.tiff`` for GeoTIFF, the
full-resolution image as the variable ``data``). The chunk URLs are the
source's URL as given: give an ``aif://`` URL, and every chunk read goes
through ``aif://``, to the best replica (the PFS copy where there is one).

Each source file's fingerprint (size plus ETag or mtime, and the checksum the
catalog verified, as :attr:`aifdata.formats.RangeSource.fingerprint` gives it)
is recorded in the root group's attributes (the ``.zattrs`` reference) under
:data:`ATTRIBUTE`: ``{"aif://...": "SIZE:ETAG#sha256:..."}``. It is there in
both formats (JSON, or kerchunk's Parquet directory, whose ``.zmetadata`` holds
the root ``.zattrs``) and xarray shows it in ``Dataset.attrs``.

:func:`open` is the check: it compares each recorded fingerprint with the
file now (by checksum when both have one, else by size and ETag or mtime) and
refuses references whose source changed, with a :class:`~aifdata.FormatError`
naming the references and the file, before xarray reads a byte. Opening the
references with xarray or fsspec directly skips that check: use :func:`check`
first. When the source belongs to a catalog dataset, :func:`write` is a
recorded run (like ``aifdata convert``): that dataset's version in, the
references ingested as a new dataset out.

An existing output is kept unless ``overwrite=True``; then the new references are
written beside the old ones (a hidden name in the same directory) and only then put
in their place, so readers see the old set until the new one is complete, and a write
that fails half way leaves the old set as it was. A JSON file, or a Parquet directory
on a local file system, takes its place in one rename (a directory by exchanging the
two where Linux can, else by two renames). Through ``aif://`` and on S3 the files move
in one by one (a rename on a PFS, a copy of the whole object on S3), ``.zmetadata``,
which names the others, last; then the old files the new set does not replace are
deleted. (A JSON file through ``aif://`` or on S3 is written in place: both replace a
file whole.)
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import errno
import io
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from ._config import Config, load_config
from ._errors import AifDataError, FormatError
from ._urls import resolve_url

__all__ = [
    "ATTRIBUTE",
    "FORMATS",
    "Written",
    "check",
    "fingerprints",
    "generate",
    "load",
    "open",
    "write",
]

#: The root attribute that maps each source URL to the fingerprint it had.
ATTRIBUTE = "aifdata_sources"
#: Output formats: kerchunk's JSON (one file) and Parquet (a directory).
FORMATS = ("json", "parquet")
#: The variable a GeoTIFF's full-resolution image is called.
TIFF_VARIABLE = "data"
_PARQUET_SUFFIXES = (".parq", ".parquet")


@dataclass(frozen=True)
class Written:
    """What :func:`write` made: where, in which format, how many references, and the
    catalog dataset recorded (None when the source is in no catalog dataset)."""

    output: str
    format: str
    references: int
    dataset: str | None = None


def generate(url: str, config: Config | None = None) -> dict[str, Any]:
    """kerchunk references (version 1: ``{"version": 1, "refs": {...}}``) to the file at
    ``url``, its fingerprint recorded under :data:`ATTRIBUTE` in the root attributes."""
    from .formats import RangeSource, choose

    config = config or load_config()
    source = RangeSource(url, config)
    kind = choose(source).name
    if kind == "hdf5":
        refs = _hdf5_refs(source)
    elif kind == "geotiff":
        refs = _tiff_refs(url, config)
    else:
        raise FormatError(
            f"{url}: a {kind} file; references are made for HDF5, NetCDF4 and GeoTIFF files"
        )
    attrs = json.loads(refs.get(".zattrs", "{}"))
    attrs[ATTRIBUTE] = {url: source.fingerprint}
    refs[".zattrs"] = json.dumps(attrs)
    return {"version": 1, "refs": refs}


def _hdf5_refs(source: Any) -> dict[str, Any]:
    from kerchunk.hdf import SingleHdf5ToZarr

    from .formats.hdf5 import check_complete, file_object, translated

    check_complete(source)
    _check_chunk_addresses(source)
    reader = file_object(source)
    translator = None
    try:
        with translated(reader, "the file's objects for kerchunk"):
            translator = SingleHdf5ToZarr(reader, url=source.url, error="raise")
            refs: dict[str, Any] = translator.translate()["refs"]
    finally:
        close = getattr(translator, "close", None)  # kerchunk before 0.2.8 has none
        if close is not None:
            close()
    return refs


def _check_chunk_addresses(source: Any) -> None:
    """Refuse a file with a user block where the HDF5 library reports chunk addresses
    without it (before 1.14.4): kerchunk would write references to the wrong bytes."""
    import h5py

    from .formats.hdf5 import find_superblock

    if h5py.version.hdf5_version_tuple >= (1, 14, 4):
        return
    offset = find_superblock(source)
    if offset:
        raise FormatError(
            f"{source.url}: a user block of {offset} bytes comes before its HDF5 data, and the"
            f" HDF5 library h5py {h5py.version.version} is built with"
            f" ({h5py.version.hdf5_version}) reports chunk addresses without it, so"
            " references would point at the wrong bytes: use an h5py built with HDF5 1.14.4"
            " or later"
        )


def _tiff_refs(url: str, config: Config) -> dict[str, Any]:
    """kerchunk.tiff's references to the first image, nested as the variable ``data``."""
    from kerchunk.tiff import tiff_to_zarr

    fs, _ = resolve_url(url, config)
    options = {"config": config} if url.startswith("aif://") else dict(fs.storage_options)
    try:
        flat = tiff_to_zarr(url, remote_options=options)
    except TypeError:  # kerchunk 0.2.10 fails on tifffile's "shaped" metadata (a tuple)
        flat = _tifffile_refs(url, options)
    refs: dict[str, Any] = {f"{TIFF_VARIABLE}/{key}": value for key, value in flat.items()}
    attrs = json.loads(flat.get(".zattrs", "{}"))
    if not any("nodata" in key.lower() for key in attrs):  # tifffile says 0; not missing
        array = json.loads(refs[f"{TIFF_VARIABLE}/.zarray"])
        refs[f"{TIFF_VARIABLE}/.zarray"] = json.dumps({**array, "fill_value": None})
    refs[".zgroup"] = json.dumps({"zarr_format": 2})
    return refs


def _tifffile_refs(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """The references kerchunk.tiff makes (tifffile's own ``write_fsspec``, which it
    wraps), with the GeoTIFF keys as attributes, for files kerchunk.tiff cannot take."""
    import fsspec
    import tifffile

    base, name = url.rsplit("/", 1)
    with fsspec.open(url, **options) as raw, tifffile.TiffFile(raw, name=name) as tif:
        with tif.series[0].aszarr() as store:
            text = io.StringIO()
            store.write_fsspec(text, url=base)
        flat: dict[str, Any] = json.loads(text.getvalue())
        geo = {k: v if isinstance(v, int | float | str) else str(v)
               for k, v in (tif.geotiff_metadata or {}).items()}  # fmt: skip
    flat[".zattrs"] = json.dumps({**json.loads(flat.get(".zattrs", "{}")), **geo})
    return flat


def write(
    url: str,
    output: str | None = None,
    *,
    format: str | None = None,
    dataset: str | None = None,
    source_dataset: str | None = None,
    overwrite: bool = False,
    config: Config | None = None,
) -> Written:
    """Write references to the file at ``url`` to ``output`` (default: ``URL.refs.json``,
    or ``URL.refs.parq`` for Parquet).

    ``format``: ``json`` or ``parquet`` (default: from ``output``'s suffix,
    ``.parq``/``.parquet`` for Parquet, else JSON). When ``url`` belongs to a
    catalog dataset (or ``source_dataset`` names one), the references are
    ingested as ``dataset`` (default: the output path without scheme and
    suffix), derived from it.
    """
    config = config or load_config()
    kind = _format_of(output, format)
    output = output or f"{url}.refs.{'json' if kind == 'json' else 'parq'}"
    fs, path = resolve_url(output, config)
    if fs.exists(path) and not overwrite:
        raise AifDataError(f"{output}: already exists (choose another output, or overwrite)")
    from ._convert import _catalog, _datasets_of

    catalog = _catalog(config)
    sources = [source_dataset] if source_dataset else _datasets_of(catalog, url)
    refs = generate(url, config)
    count = len(refs["refs"])
    if catalog is None or not sources:
        _store(refs, fs, path, output, kind)
        return Written(output, kind, count)
    from . import lineage

    name = dataset or _default_dataset(output)
    catalog.require(name, "write", "refs")
    params = {"url": url, "output": output, "format": f"kerchunk {kind}"}
    with lineage.run("aifdata refs", sources, params=params, catalog=catalog) as run:
        _store(refs, fs, path, output, kind)
        run.output(name, source=output)
    return Written(output, kind, count, name)


def _format_of(output: str | None, format: str | None) -> str:
    if format is None:
        parquet = output is not None and output.rstrip("/").endswith(_PARQUET_SUFFIXES)
        return "parquet" if parquet else "json"
    if format.lower() not in FORMATS:
        raise ValueError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    return format.lower()


def _default_dataset(output: str) -> str:
    name = output.split("://", 1)[-1].strip("/")
    for suffix in (".json", *_PARQUET_SUFFIXES):
        name = name.removesuffix(suffix)
    return name.removesuffix(".refs") or name


def _store(refs: dict[str, Any], fs: Any, path: str, output: str, kind: str) -> None:
    """Write the references at ``path``, replacing what is there so that readers see the
    old set until the new one is complete (see :func:`_publish_local` and
    :func:`_publish_elsewhere`)."""
    local = isinstance(fs, LocalFileSystem)
    staged = _beside(path, "new")
    try:
        if kind == "json":
            data = json.dumps(refs).encode()
            if local:
                _write_local(staged, data)
            elif not fs.isdir(path):  # aif:// tiers and object stores replace a file whole
                fs.pipe_file(path, data)
                return
            else:
                fs.pipe_file(staged, data)
        elif local:
            _parquet(refs, staged)
        else:
            _upload_parquet(refs, fs, staged)
    except BaseException:
        _remove(fs, staged)
        raise
    if local:
        _publish_local(staged, path)
    else:
        _publish_elsewhere(fs, staged, path)


def _beside(path: str, what: str) -> str:
    """A fresh hidden name in ``path``'s directory (a rename there stays on its file system)."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.{what}-{secrets.token_hex(6)}"


def _write_local(target: str, data: bytes) -> None:
    with builtins.open(target, "xb") as f:  # this module's open() is the xarray one
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _parquet(refs: dict[str, Any], folder: str) -> None:
    """kerchunk's Parquet reference directory for ``refs``, made in local ``folder``."""
    from fsspec.implementations.reference import LazyReferenceMapper

    lazy = LazyReferenceMapper.create(root=folder, fs=LocalFileSystem(), engine="pyarrow",
                                      record_size=100_000)  # fmt: skip
    for key in sorted(refs["refs"]):
        lazy[key] = refs["refs"][key]
    lazy.flush()


def _upload_parquet(refs: dict[str, Any], fs: Any, staged: str) -> None:
    """Make the Parquet directory locally, then copy it to ``staged`` on ``fs``: pandas
    would write each file through a new filesystem built from the URL alone (without this
    process's aif:// configuration)."""
    with tempfile.TemporaryDirectory(prefix="aifdata-refs-") as folder:
        made = f"{folder}/refs"
        _parquet(refs, made)
        for name in LocalFileSystem().find(made):
            target = f"{staged}/{name[len(made) + 1 :]}"
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)  # a PFS needs them
            fs.pipe_file(target, Path(name).read_bytes())


def _remove(fs: Any, path: str) -> None:
    """Remove ``path`` (a file or a directory) if it is there."""
    if isinstance(fs, LocalFileSystem):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)
    elif fs.exists(path):
        fs.rm(path, recursive=True)


def _publish_local(staged: str, path: str) -> None:
    """Put ``staged`` (a file or a directory) in the place of ``path`` in one rename: over a
    file, or where nothing is; over a directory, by exchanging the two (Linux), else by
    two renames (between which ``path`` is briefly absent, never half written)."""
    if not os.path.lexists(path) or not (os.path.isdir(path) or os.path.isdir(staged)):
        os.replace(staged, path)
        return
    if _exchange(staged, path):
        _remove(LocalFileSystem(), staged)  # the old set, now under the staged name
        return
    old = _beside(path, "old")
    os.rename(path, old)
    os.rename(staged, path)
    _remove(LocalFileSystem(), old)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (``renameat2`` with ``RENAME_EXCHANGE``); False where the
    system or the file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_cwd, exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), b)


def _publish_elsewhere(fs: Any, staged: str, path: str) -> None:
    """Move the files of ``staged`` into ``path`` one by one (``.zmetadata``, which names
    the others, last; each a rename on a PFS and a whole-object copy on S3), then delete
    the old files the new set does not replace."""
    staged, path = fs._strip_protocol(staged), fs._strip_protocol(path)
    new = sorted(fs.find(staged), key=lambda name: name.endswith("/.zmetadata"))
    if fs.isfile(staged):
        new = [staged]
    if not fs.isdir(path) or not fs.isdir(staged):  # a file for a directory, or the reverse
        _remove(fs, path)
        old: set[str] = set()
    else:
        old = set(fs.find(path))
    placed = set()
    for name in new:
        target = path + name[len(staged) :]
        fs.mv(name, target)
        placed.add(target)
    for name in sorted(old - placed):
        fs.rm_file(name)
    emptied = {n.rsplit("/", 1)[0] for n in old - placed} - {t.rsplit("/", 1)[0] for t in placed}
    for folder in sorted(emptied, reverse=True):
        with contextlib.suppress(OSError):  # none on S3; a PFS keeps the emptied ones
            fs.rmdir(folder)
    _remove(fs, staged)  # directories a PFS leaves behind


def load(refs: str | dict[str, Any], config: Config | None = None) -> Any:
    """The references at ``refs`` (a URL of a JSON file or a Parquet directory), as a dict
    (JSON) or a lazy mapping (Parquet); a dict is returned as it is."""
    if isinstance(refs, dict):
        return refs
    fs, path = resolve_url(refs, config or load_config())
    if fs.isdir(path):
        from fsspec.implementations.reference import LazyReferenceMapper

        return LazyReferenceMapper(path, fs=fs, engine="pyarrow")
    try:
        loaded: dict[str, Any] = json.loads(fs.cat_file(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{refs}: not kerchunk references (JSON): {exc}") from None
    return loaded


def fingerprints(references: Any, where: str = "references") -> dict[str, str]:
    """The ``{source URL: fingerprint}`` recorded in references (FormatError if none)."""
    mapping = references.get("refs", references) if isinstance(references, dict) else references
    try:
        attrs = json.loads(mapping[".zattrs"])
        found: dict[str, str] = attrs[ATTRIBUTE]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise FormatError(
            f"{where}: records no source fingerprint ({ATTRIBUTE} in the root .zattrs): not"
            " made by aifdata refs, so a changed source cannot be told; make them again"
            " with aifdata refs"
        ) from None
    return found


def check(refs: str | dict[str, Any], config: Config | None = None) -> dict[str, str]:
    """Refuse (FormatError naming the references and the file) references whose source
    file changed since they were made; returns the fingerprints checked."""
    config = config or load_config()
    where = refs if isinstance(refs, str) else "references"
    return _check(load(refs, config), where, config)


def _check(references: Any, where: str, config: Config) -> dict[str, str]:
    from .formats import RangeSource
    from .formats._base import same_version

    recorded = fingerprints(references, where)
    for url, fingerprint in recorded.items():
        now = RangeSource(url, config).fingerprint
        if not same_version(fingerprint, now):
            raise FormatError(
                f"{where}: {url} changed since these references were made (was {fingerprint},"
                f" now {now}); make them again: aifdata refs {url}"
            )
    return recorded


def open(
    refs: str | dict[str, Any], config: Config | None = None, **options: Any
) -> Any:  # an xarray.Dataset
    """The references as an xarray Dataset (lazily read through ``aif://``), after
    :func:`check`; ``options`` go to ``xarray.open_dataset``."""
    import xarray as xr
    from fsspec.implementations.reference import ReferenceFileSystem
    from zarr.storage import FsspecStore

    config = config or load_config()
    references = load(refs, config)
    where = refs if isinstance(refs, str) else "references"
    (url,) = _check(references, where, config)  # one file's: its filesystem serves every chunk
    fs, _ = resolve_url(url, config)
    # asynchronous from the start: zarr would otherwise rebuild it from JSON (losing the
    # aif:// configuration and a Parquet reference set's mapping)
    chunks = ReferenceFileSystem(fo=references, fs=fs, asynchronous=True)
    store = FsspecStore(fs=chunks, path="", read_only=True)
    options = {"engine": "zarr", "consolidated": False, "zarr_format": 2, **options}
    try:
        return xr.open_dataset(store, **options)  # type: ignore[arg-type]  # a zarr store
    except (KeyError, ValueError) as exc:
        raise FormatError(f"{where}: xarray cannot open these references: {exc}") from exc

"""The format registry: built-ins loaded on first use, third parties by entry point.

A third-party package registers a plug-in class in its ``pyproject.toml``::

    [project.entry-points."aifdata.formats"]
    fasta = "mypackage.fasta:FastaFormat"
"""

from __future__ import annotations

import threading

from .._errors import FormatError
from .._plugins import Registry
from ._base import FormatPlugin, use_lookup

ENTRY_POINT_GROUP = "aifdata.formats"
#: Names formats had before codecs became a layer under them: old name -> format. A
#: partition planned then still names the old one; the format reads it (see
#: ``TextFormat.formerly``), and ``format=`` takes it. Not listed by :func:`available`.
ALIASES = {"fastq-gzip": "fastq", "fastq-bgzf": "fastq"}
_unavailable: set[str] = set()  # formats whose library is missing: not retried per file
_lock = threading.Lock()


REGISTRY: Registry[FormatPlugin] = Registry(
    ENTRY_POINT_GROUP,
    "format",
    {
        "bam": "aifdata.formats.bam:BamFormat",
        "copc": "aifdata.formats.copc:CopcFormat",
        "csv": "aifdata.formats.csv:CsvFormat",
        "fasta": "aifdata.formats.fasta:FastaFormat",
        "fastq": "aifdata.formats.fastq:FastqFormat",
        "geotiff": "aifdata.formats.geotiff:GeoTiffFormat",
        "hdf5": "aifdata.formats.hdf5:Hdf5Format",
        "imzml": "aifdata.formats.imzml:ImzmlFormat",
        "jsonl": "aifdata.formats.jsonl:JsonLinesFormat",
        "las": "aifdata.formats.las:LasFormat",
        "mzml": "aifdata.formats.mzml:MzmlFormat",
        "parquet": "aifdata.formats.parquet:ParquetFormat",
        "root": "aifdata.formats.root:RootFormat",
        "sam": "aifdata.formats.sam:SamFormat",
        "vcf": "aifdata.formats.vcf:VcfFormat",
    },
    FormatError,
    lambda name: f"no format {name!r}; known formats: {', '.join(available())}",
    FormatPlugin,
    default_hint="pip install 'aifdata[formats]'",
)


def available() -> list[str]:
    """Names of every format: built-in, registered, or installed by entry point."""
    return sorted(REGISTRY.names())


def register(plugin: type[FormatPlugin] | FormatPlugin) -> FormatPlugin:
    """Add (or replace) a format plug-in; returns the instance registered."""
    instance = REGISTRY.register(plugin)
    with _lock:
        _unavailable.discard(instance.name)
    return instance


def get(name: str) -> FormatPlugin:
    """The plug-in called ``name``; FormatError (a ValueError) lists the known ones."""
    found = REGISTRY.loaded(name)
    if found is not None:
        return found
    if name in ALIASES and name not in REGISTRY.entry_points():  # a name from before codecs
        return get(ALIASES[name])
    return REGISTRY.get(name)


def _plugins() -> list[FormatPlugin]:
    """Every plug-in that loads (one whose library is missing cannot claim a file)."""
    names = [name for name in available() if name not in _unavailable]
    ready = [REGISTRY.loaded(name) for name in names]
    if all(plugin is not None for plugin in ready):
        return [plugin for plugin in ready if plugin is not None]
    out = []
    for name in names:
        try:
            out.append(get(name))
        except FormatError:
            _unavailable.add(name)
    return out


def detect(path: str, head: bytes | None = None) -> FormatPlugin | None:
    """The format of a file: by name first, confirmed by sniffing ``head`` when given."""
    plugins = _plugins()
    by_name = [p for p in plugins if p.matches_name(path)]
    if head is None:
        return by_name[0] if by_name else None
    rest = [p for p in plugins if p not in by_name]
    if by_name:  # a file that a name claims is not delimited text by default
        rest = [p for p in rest if not p.generic]
    for plugin in by_name + sorted(rest, key=lambda p: p.generic):
        if plugin.sniff(head, path):
            return plugin
    return None


use_lookup(get)

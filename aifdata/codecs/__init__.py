"""Codecs: the compression under a record-oriented text format, found from its first bytes.

A codec is a layer below the formats: ``detect(head)`` names the compression
of a file (``none``, ``gzip``, ``bgzf``; zstd and bzip2 are recognised by
their magic bytes and come through the ``aifdata.codecs`` entry-point group),
and ``codec.open(source)`` gives a :class:`Stream` that plans partition
boundaries with a format's boundary rule and returns the uncompressed bytes
of one partition's records. A format lists the codecs it takes and never
sees gzip internals::

    codec = aifdata.codecs.detect(source.head())
    stream = codec.open(source)
    start = stream.snap(offset, fastq_boundary)
    text = stream.text(start, end, fastq_boundary)   # text.data: whole records
"""

from __future__ import annotations

from ._base import (
    BOUNDARY_WINDOW,
    Boundary,
    ByteReader,
    Codec,
    SeekableSource,
    Source,
    Stream,
    Text,
    find_start,
)
from ._registry import ENTRY_POINT_GROUP, available, detect, get, register

__all__ = [
    "BOUNDARY_WINDOW",
    "ENTRY_POINT_GROUP",
    "Boundary",
    "ByteReader",
    "Codec",
    "SeekableSource",
    "Source",
    "Stream",
    "Text",
    "available",
    "detect",
    "find_start",
    "get",
    "register",
]

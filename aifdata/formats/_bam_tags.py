"""BAM tags (``NMC\\x05RGZgrp1\\0``): walked by the record rule, checked, decoded as pysam does."""

from __future__ import annotations

import array
import functools
import struct
from typing import Any

_U32 = struct.Struct("<I")
_TAG_SIZES = {ord(c): n for c, n in zip("AcCsSiIf", (1, 1, 1, 2, 2, 4, 4, 4), strict=True)}
_ARRAY_CODES = {ord(c): t for c, t in zip("cCsSiIf", "bBhHiIf", strict=True)}
_SCALAR = {ord(c): struct.Struct("<" + t) for c, t in zip("cCsSiIf", "bBhHiIf", strict=True)}
_TAG_NAME0 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TAG_NAME1 = _TAG_NAME0 | frozenset(b"0123456789")


def tags_fit(data: bytes | bytearray, q: int, end: int) -> bool:
    """Whether ``data[q:end]`` is a run of well-formed tags that ends exactly at ``end``."""
    while q < end:
        if q + 3 > end or data[q] not in _TAG_NAME0 or data[q + 1] not in _TAG_NAME1:
            return False
        kind = data[q + 2]
        q += 3
        size = _TAG_SIZES.get(kind)
        if size is not None:
            q += size
        elif kind in (90, 72):  # Z, H: a NUL-terminated string
            nul = data.find(b"\0", q, end)
            if nul < 0:
                return False
            q = nul + 1
        elif kind == 66:  # B: subtype, count, values
            if q + 5 > end or data[q] not in _ARRAY_CODES:
                return False
            (count,) = _U32.unpack_from(data, q + 1)
            q += 5 + count * _TAG_SIZES[data[q]]
        else:
            return False
    return q == end


def tags_fault(data: bytes) -> str | None:
    """What is wrong with a record's tag bytes (None: each tag is whole and of a known type)."""
    q, size = 0, len(data)
    while q < size:
        if q + 3 > size:
            return f"tag bytes cut short at tag byte {q}"
        kind = data[q + 2]
        q += 3
        if kind in _TAG_SIZES:
            q += _TAG_SIZES[kind]
        elif kind in (90, 72):  # Z, H
            q = data.find(b"\0", q) + 1
            if q == 0:
                return "a Z or H tag without its NUL"
        elif kind == 66:  # B
            if q + 5 > size or data[q] not in _ARRAY_CODES:
                return f"tag {data[q - 3 : q - 1]!r}: a B array cut short or of unknown subtype"
            q += 5 + _U32.unpack_from(data, q + 1)[0] * _TAG_SIZES[data[q]]
        else:
            return f"tag {data[q - 3 : q - 1]!r}: unknown tag type {chr(kind)!r}"
    return None if q == size else "the last tag runs past the record's end"


def decode_tags(data: bytes) -> list[tuple[str, Any]]:
    """Tags as pysam's ``get_tags()`` gives them: ints, floats, str, and arrays for ``B``."""
    out: list[tuple[str, Any]] = []
    q = 0
    while q < len(data):
        tag, kind = data[q : q + 2].decode("ascii"), data[q + 2]
        q += 3
        value: Any
        if kind == 65:  # A
            value, q = chr(data[q]), q + 1
        elif kind in _SCALAR:
            fmt = _SCALAR[kind]
            (value,) = fmt.unpack_from(data, q)
            q += fmt.size
        elif kind in (90, 72):  # Z, H
            nul = data.index(b"\0", q)
            value, q = data[q:nul].decode("utf-8", "replace"), nul + 1
        elif kind == 66:  # B
            code, (count,) = data[q], _U32.unpack_from(data, q + 1)
            width = _TAG_SIZES[code]
            value = array.array(_ARRAY_CODES[code], data[q + 5 : q + 5 + count * width])
            q += 5 + count * width
        else:
            raise ValueError(f"unknown tag type {chr(kind)!r} in tag {tag}")
        out.append((tag, value))
    return out


def tags_text(data: bytes) -> str:
    """The tags as SAM text (``NM:i:0\\tMD:Z:10``)."""
    fields = []
    for tag, value in decode_tags(data):
        if isinstance(value, array.array):
            code = {"b": "c", "B": "C", "h": "s", "H": "S", "i": "i", "I": "I", "f": "f"}
            items = ",".join(str(v) for v in value)
            fields.append(f"{tag}:B:{code[value.typecode]}{',' if items else ''}{items}")
        elif isinstance(value, float):
            fields.append(f"{tag}:f:{value:g}")
        elif isinstance(value, int):
            fields.append(f"{tag}:i:{value}")
        else:
            fields.append(f"{tag}:Z:{value}")
    return "\t".join(fields)


@functools.cache
def _size_tables() -> tuple[Any, Any]:
    """Per type byte: a fixed tag's value size (0: Z, H or B; -1: unknown), and per ``B``
    subtype byte its element size (-1: unknown)."""
    import numpy as np

    sizes = np.full(256, -1, np.int64)
    for code, size in _TAG_SIZES.items():
        sizes[code] = size
    sizes[[ord("Z"), ord("H"), ord("B")]] = 0
    widths = np.full(256, -1, np.int64)
    for code in _ARRAY_CODES:
        widths[code] = _TAG_SIZES[code]
    return sizes, widths


def first_bad_tags(buf: Any, at: Any, ends: Any) -> int:
    """The index of the first record whose tags ``buf[at[i]:ends[i]]`` (numpy arrays) fail
    :func:`tags_fault`, or -1 when all are whole: the same walk, one tag of every record
    at a time."""
    import numpy as np

    sizes, widths = _size_tables()
    q, bad = at.copy(), np.zeros(len(at), bool)
    nuls = None
    live = np.flatnonzero(q < ends)
    while live.size:
        here, end = q[live], ends[live]
        cut = here + 3 > end
        kind = buf[np.where(cut, 0, here + 2)]
        size = np.where(cut, -1, sizes[kind])
        step = np.where(size < 0, -1, here + 3 + size)
        string = ((kind == 90) | (kind == 72)) & ~cut
        if string.any():
            if nuls is None:
                low = int(at.min())
                nuls = np.flatnonzero(buf[low : int(ends.max())] == 0) + low
            k = np.searchsorted(nuls, step[string])
            found = nuls[np.minimum(k, len(nuls) - 1)] if len(nuls) else step[string] - 1
            ok = (k < len(nuls)) & (found < end[string])
            step[string] = np.where(ok, found + 1, -1)
        array_ = (kind == 66) & ~cut
        if array_.any():
            start = here[array_] + 3
            room = start + 5 <= end[array_]
            width = widths[buf[np.where(room, start, 0)]]
            count = np.zeros(len(start), np.int64)
            for j in range(4):
                count |= buf[np.where(room, start + 1 + j, 0)].astype(np.int64) << (8 * j)
            good = room & (width > 0)
            step[array_] = np.where(good, start + 5 + count * width, -1)
        failed = step < 0
        bad[live[failed]] = True
        q[live] = np.where(failed, end, step)
        live = live[~failed & (step < end)]
    bad |= q != ends
    return int(np.argmax(bad)) if bad.any() else -1

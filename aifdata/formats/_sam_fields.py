"""Two SAM fields as BAM stores them: what a CIGAR spans, and a tag's bytes.

Shared by the record reading (:mod:`aifdata.formats.sam`) and the columnar one
(:mod:`aifdata.formats._sam_arrow`).
"""

from __future__ import annotations

import array
import re
import struct

__all__ = ["span_of", "tag_bytes"]

_CIGAR = re.compile(r"(\d+)([MIDNSHP=X])")
_REF_OPS = frozenset("MDN=X")
_QUERY_OPS = frozenset("MIS=X")
#: SAM integer tags as htslib stores them: the smallest BAM type that holds the value.
_INT_CODES = (("C", "B", 0, 255), ("c", "b", -128, 127), ("S", "H", 0, 65535),
              ("s", "h", -32768, 32767), ("I", "I", 0, 2**32 - 1),
              ("i", "i", -(2**31), 2**31 - 1))  # fmt: skip


def span_of(cigar: str) -> tuple[int, int]:
    """Reference bases and query bases that ``cigar`` covers."""
    ops = _CIGAR.findall(cigar)
    if "".join(n + op for n, op in ops) != cigar:
        raise ValueError(f"bad CIGAR {cigar!r}")
    return (
        sum(int(n) for n, op in ops if op in _REF_OPS),
        sum(int(n) for n, op in ops if op in _QUERY_OPS),
    )


def tag_bytes(field: str) -> bytes:
    """One ``TAG:TYPE:VALUE`` field as BAM stores it."""
    tag, kind, value = field.split(":", 2)
    if len(tag) != 2 or len(kind) != 1:
        raise ValueError(f"bad tag field {field!r}")
    name = tag.encode("ascii")
    if kind == "i":
        number = int(value)
        fits = [(c, p) for c, p, low, high in _INT_CODES if low <= number <= high]
        if not fits:
            raise ValueError(f"integer tag {field!r} out of BAM's range -2^31 .. 2^32-1")
        code, packing = fits[0]
        return name + code.encode() + struct.pack("<" + packing, number)
    if kind == "f":
        return name + b"f" + struct.pack("<f", float(value))
    if kind == "A":
        return name + b"A" + value.encode("ascii")[:1]
    if kind in "ZH":
        return name + kind.encode() + value.encode("utf-8") + b"\0"
    if kind == "B":
        sub, *items = value.split(",")
        typecode = {"c": "b", "C": "B", "s": "h", "S": "H", "i": "i", "I": "I", "f": "f"}[sub]
        numbers = [float(v) if sub == "f" else int(v) for v in items]
        packed = array.array(typecode, numbers).tobytes()
        return name + b"B" + sub.encode() + struct.pack("<I", len(numbers)) + packed
    raise ValueError(f"unknown tag type {kind!r} in {field!r}")

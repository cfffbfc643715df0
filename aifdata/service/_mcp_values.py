"""Records as JSON values for an agent: whatever a format plug-in yields (dicts, numpy
arrays and scalars, Arrow values, dataclasses, bytes) becomes plain JSON, and nothing
in it grows without bound: long strings, lists and arrays are cut and say so."""

from __future__ import annotations

import dataclasses
import datetime
import math
import sys
from collections.abc import Mapping
from typing import Any

#: Characters of one string value kept (bytes are decoded first).
MAX_STRING = 2000
#: Items of one list or array kept.
MAX_ITEMS = 64


def jsonable(value: Any) -> Any:
    """``value`` as JSON (None, bool, int, float, str, list, dict), cut where it is long."""
    if value is None or isinstance(value, bool | int | str):
        return _cut_string(value) if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _cut_string(bytes(value).decode("utf-8", errors="replace"))
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "_asdict"):  # a named tuple
        return jsonable(value._asdict())
    numpy = _numpy_value(value)
    if numpy is not _NOT_NUMPY:
        return numpy
    if hasattr(value, "as_py"):  # a pyarrow scalar
        return jsonable(value.as_py())
    if isinstance(value, list | tuple | set | frozenset):
        return _cut_list(list(value))
    return _cut_string(str(value))


_NOT_NUMPY = object()


def _numpy_value(value: Any) -> Any:
    """A numpy array, record or scalar as JSON; ``_NOT_NUMPY`` for anything else (always,
    when numpy is not loaded: then nothing is a numpy value)."""
    np = sys.modules.get("numpy")
    if np is None:
        return _NOT_NUMPY
    if isinstance(value, np.ndarray):
        if value.dtype.names:  # structured rows
            head = [value[i] for i in range(min(len(value), MAX_ITEMS))]
            return _cut_list(head, total=len(value))
        flat = value.reshape(-1)
        items = [jsonable(x) for x in flat[:MAX_ITEMS].tolist()]
        if value.ndim <= 1 and flat.size <= MAX_ITEMS:
            return items
        return {"dtype": str(value.dtype), "shape": list(value.shape), "first": items,
                "cut": flat.size > MAX_ITEMS}  # fmt: skip
    if isinstance(value, np.void) and value.dtype.names:
        return {name: jsonable(value[name]) for name in value.dtype.names}
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return _NOT_NUMPY


def _cut_string(text: str) -> str:
    if len(text) <= MAX_STRING:
        return text
    return text[:MAX_STRING] + f"… ({len(text) - MAX_STRING:,} more characters cut)"


def _cut_list(items: list[Any], total: int | None = None) -> list[Any]:
    """The first ``MAX_ITEMS`` of ``items`` (of ``total``), and a note of what was cut."""
    total = len(items) if total is None else total
    kept = [jsonable(v) for v in items[:MAX_ITEMS]]
    if total > MAX_ITEMS:
        kept.append(f"… ({total - MAX_ITEMS:,} more items cut)")
    return kept

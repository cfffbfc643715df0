"""Sizes, fractions and durations as operators write them: ``500GiB``, ``90%``, ``7d``.

Each parser takes what a TOML config or a command line gives (a number or a
string) and raises ``ValueError`` with the accepted forms when it cannot read it;
callers add the key or option at fault.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_SIZE = re.compile(rf"{_NUMBER}\s*([a-z]*)")
_DURATION = re.compile(rf"{_NUMBER}\s*([smhdw]?)")
_PERCENT = re.compile(rf"{_NUMBER}\s*%")

SIZE_FORMS = "a number of bytes or a string such as '500GiB', '2TB' or '64MiB'"
PERCENT_FORMS = "a percentage such as '90%'"
DURATION_FORMS = "seconds or a string such as '45s', '30m', '12h', '7d' or '2w'"


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``"64MiB"`` or ``"2TB"`` (decimal and binary units)."""
    if _real(value) and math.isfinite(value) and value > 0 and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if match and match.group(2) in _SIZE_UNITS:
            size = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
            if size >= 1:
                return int(size)
    raise ValueError(f"expected {SIZE_FORMS}, got {value!r}")


def parse_percent(value: Any) -> float:
    """A fraction in (0, 1] from ``"90%"``."""
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value.strip())
        if match:
            fraction = float(match.group(1)) / 100
            if 0 < fraction <= 1:
                return fraction
    raise ValueError(f"expected {PERCENT_FORMS} (above 0%, at most 100%), got {value!r}")


def parse_duration(value: Any) -> float:
    """Seconds from ``3600``, ``"30m"``, ``"12h"`` or ``"7d"``."""
    if _real(value) and math.isfinite(value) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip().lower())
        if match:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
            if seconds > 0:
                return seconds
    raise ValueError(f"expected {DURATION_FORMS}, got {value!r}")


def parse_capacity(value: Any) -> int | float:
    """A tier's capacity: bytes (an int), or a fraction of its file system (a float
    from ``"80%"``)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return parse_percent(value)
    try:
        return parse_size(value)
    except ValueError:
        raise ValueError(f"expected {SIZE_FORMS}, or {PERCENT_FORMS}, got {value!r}") from None


def format_size(n: float) -> str:
    """``1.5 GiB``: a size for people."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")

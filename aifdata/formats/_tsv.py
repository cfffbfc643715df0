"""Tab-separated lines seen all at once: where each line's fields lie, checked in bulk.

Text formats whose records are tab-separated lines (VCF, SAM) check every
record when a partition is read (a POS that is not an integer is an error at
read time, not when someone looks at it). Checking line by line in Python
costs more than parsing; :func:`layout` finds the line ends and the first
tabs of every line with a few numpy passes over the bytes, and :class:`Layout`
answers per column for all lines at once (its integers, whether each is a
plain decimal number, whether it equals a name). Each answer is exact or
says it cannot tell (None, or False in a mask): the caller then looks at
those lines one by one, so nothing is accepted that a line-by-line check
would refuse.

Without numpy, :func:`layout` returns None and callers check line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Digits beyond this many are not parsed in bulk (an int64 holds 18 for sure).
MAX_DIGITS = 18
#: A field longer than this is not gathered in bulk (the caller looks at it alone).
MAX_WIDTH = 64
_TAB, _LF = 9, 10

__all__ = ["Layout", "layout"]


@dataclass(frozen=True)
class Layout:
    """The lines of ``data`` and the first ``k`` tabs of each (``tabs[i, j]``: the byte
    offset of line ``i``'s ``j``-th tab); ``counts[i]``: all the tabs of line ``i``."""

    array: Any  # the bytes as a numpy uint8 array
    starts: Any  # offset of each line's first byte
    ends: Any  # offset of each line's end (its '\n', or the end of the data)
    tabs: Any  # (lines, k) offsets
    counts: Any  # tabs per line

    def __len__(self) -> int:
        return len(self.starts)

    def span(self, column: int) -> tuple[Any, Any]:
        """``(first, stop)`` offsets of field ``column`` (0-based) of each line: up to its
        next tab, or for ``column == k``, the rest of the line. A line with fewer fields
        has an empty span at its end for those it lacks (first past stop)."""
        first = self.starts if column == 0 else self.tabs[:, column - 1] + 1
        stop = self.tabs[:, column] if column < self.tabs.shape[1] else self.ends
        return first, stop

    def gather(self, column: int, right: bool = False) -> tuple[Any, Any, Any] | None:
        """Field ``column`` of every line as a ``(lines, width)`` byte matrix (zero where a
        field has no byte; ``right``: fields aligned on their last byte), with its lengths
        and the mask of real bytes; None when a field is wider than :data:`MAX_WIDTH`."""
        import numpy as np

        first, stop = self.span(column)
        lengths = stop - first
        width = max(int(lengths.max()) if len(lengths) else 0, 1)
        if width > MAX_WIDTH:
            return None
        steps = np.arange(width)
        if right:
            real = steps >= (width - lengths)[:, None]
            where = stop[:, None] - width + steps
        else:
            real = steps < lengths[:, None]
            where = first[:, None] + steps
        np.clip(where, 0, max(len(self.array) - 1, 0), out=where)
        matrix = self.array[where] if len(self.array) else np.zeros(where.shape, np.uint8)
        matrix[~real] = 0
        return matrix, lengths, real

    def integers(self, column: int, signed: bool = False) -> Any | None:
        """Field ``column`` of every line as int64 (``signed``: a leading '-' allowed); None
        unless every one is a non-empty run of ASCII digits of at most :data:`MAX_DIGITS`."""
        import numpy as np

        found = self.gather(column, right=True)
        if found is None:
            return None
        matrix, lengths, real = found
        width = matrix.shape[1]
        if width > MAX_DIGITS + signed:
            return None
        negative = None
        if signed:  # a '-' first: the field's first byte, at its own place in each row
            first = np.clip(width - lengths, 0, width - 1)
            rows = np.arange(len(lengths))
            negative = (matrix[rows, first] == 45) & (lengths > 1)
            matrix[rows[negative], first[negative]] = 48
        digits = matrix - np.uint8(48)  # bytes below '0' wrap round to large values
        if not (np.all((digits <= 9) | ~real) and np.all(lengths > 0)):
            return None
        digits[~real] = 0
        weights = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
        values = digits.astype(np.int64) @ weights
        return values if negative is None else np.where(negative, -values, values)

    def decimals(self, column: int) -> Any | None:
        """A mask of the lines whose field ``column`` is a plain decimal (digits with at
        most one '.', not empty; '.' alone included): what ``float()`` surely reads. None
        when a field is too wide to look at in bulk."""
        import numpy as np

        found = self.gather(column)
        if found is None:
            return None
        matrix, lengths, real = found
        digit = (matrix >= 48) & (matrix <= 57)
        dot = matrix == 46
        return np.all(digit | dot | ~real, axis=1) & (dot.sum(axis=1) <= 1) & (lengths > 0)

    def equals(self, column: int, value: bytes) -> Any:
        """A mask of the lines whose field ``column`` is exactly ``value``."""
        import numpy as np

        first, stop = self.span(column)
        same = (stop - first) == len(value)
        if not len(value) or not same.any():
            return same
        where = np.minimum(first[:, None] + np.arange(len(value)), len(self.array) - 1)
        return same & np.all(self.array[where] == np.frombuffer(value, np.uint8), axis=1)

    def field(self, column: int, line: int) -> bytes:
        """Field ``column`` of line ``line``, as bytes."""
        first, stop = self.span(column)
        return self.array[int(first[line]) : int(stop[line])].tobytes()  # type: ignore[no-any-return]


def layout(data: bytes, k: int, least: int | None = None) -> Layout | None:
    """The lines of ``data`` (``\\n`` line ends; a last line may lack one) and the first
    ``k`` tabs of each (a line with fewer has its line end in their place); None when
    some line has fewer than ``least`` tabs (default ``k``; an empty line has none) or
    numpy is missing."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with the genomics extra
        return None
    least = k if least is None else least
    array = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(array == _LF)
    if not len(data) or data[-1:] != b"\n":
        ends = np.append(ends, len(data))
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    tabs = np.flatnonzero(array == _TAB)
    first = np.searchsorted(tabs, starts)  # index in ``tabs`` of each line's first tab
    counts = np.append(first[1:], len(tabs)) - first
    if least and counts.min() < least:
        return None
    if not k:
        return Layout(array, starts, ends, np.empty((len(ends), 0), np.int64), counts)
    steps = np.arange(k)
    have = steps < counts[:, None]
    picked = tabs[np.minimum(first[:, None] + steps, max(len(tabs) - 1, 0))] if len(tabs) else 0
    return Layout(array, starts, ends, np.where(have, picked, ends[:, None]), counts)

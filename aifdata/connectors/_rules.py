"""A managed tier's rules: its capacity and when its copies are released.

A PFS or cache tier may set, in its table of the mount table::

    capacity = "500GiB"      # bytes, or "80%" of its file system
    release_after = "7d"     # copies not read for this long may be released
    high_water = "90%"       # past this share of the capacity, release ...
    low_water = "75%"        # ... the least recently read copies down to this share

The checks run when the config is read, so a rule that does not parse is a
``ConfigError`` naming its key.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from .._units import parse_capacity, parse_duration, parse_percent
from ._kind import OptionCheck
from ._tier import Tier

DEFAULT_HIGH_WATER = 0.90
DEFAULT_LOW_WATER = 0.75


def _accepts(parser: Any) -> Any:
    def accepts(value: Any) -> bool:
        try:
            parser(value)
        except ValueError:
            return False
        return True

    return accepts


CAPACITY = OptionCheck(
    "bytes (an integer or a string such as '500GiB') or a percentage such as '80%'",
    _accepts(parse_capacity),
)
DURATION = OptionCheck(
    "seconds or a duration such as '30m', '12h' or '7d'", _accepts(parse_duration)
)
PERCENT = OptionCheck("a percentage such as '90%'", _accepts(parse_percent))

#: The options every managed (local) tier kind accepts.
RULE_OPTIONS = {
    "capacity": CAPACITY,
    "release_after": DURATION,
    "high_water": PERCENT,
    "low_water": PERCENT,
}


@dataclass(frozen=True)
class TierRules:
    """The capacity and release rule of one tier (None: not set)."""

    capacity: int | float | None = None  # bytes, or a fraction of the file system
    release_after: float | None = None  # seconds
    high_water: float = DEFAULT_HIGH_WATER
    low_water: float = DEFAULT_LOW_WATER

    @classmethod
    def of(cls, tier: Tier) -> TierRules:
        """The rules a tier's options set (checked when the tier was made)."""
        options = tier.options
        capacity = options.get("capacity")
        release_after = options.get("release_after")
        return cls(
            capacity=None if capacity is None else parse_capacity(capacity),
            release_after=None if release_after is None else parse_duration(release_after),
            high_water=parse_percent(options.get("high_water", "90%")),
            low_water=parse_percent(options.get("low_water", "75%")),
        )

    def capacity_bytes(self, root: str) -> int | None:
        """The capacity in bytes (a percentage of the file system that holds ``root``)."""
        if self.capacity is None or isinstance(self.capacity, int):
            return self.capacity
        return int(shutil.disk_usage(_existing(root)).total * self.capacity)


def _existing(path: str) -> str:
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path

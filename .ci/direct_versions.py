"""Print each of aifdata's requirements (every extra) with the version installed here, if any.

The lowest-versions lane (.ci/lowest) prints this so its log shows what the lower bounds were
tested against: a requirement installed above its lower bound is marked (uv found the bound itself
uninstallable with the rest, or it came in through another requirement).
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement


def main() -> None:
    seen: set[str] = set()
    for line in metadata.requires("aifdata") or []:
        req = Requirement(line)
        if req.name in seen or req.name == "aifdata":
            continue
        seen.add(req.name)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            continue  # an extra this venv did not install
        lows = [s.version for s in req.specifier if s.operator == ">="]
        note = "" if not lows or _same(version, lows[0]) else f"  (above the bound {lows[0]})"
        print(f"  {req.name}=={version}{note}")


def _same(installed: str, bound: str) -> bool:
    """2.2.0 is the bound 2.2; 2.2.3 is not."""
    a, b = (re.sub(r"(\.0)+$", "", v) for v in (installed, bound))
    return a == b


if __name__ == "__main__":
    main()

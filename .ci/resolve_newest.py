"""Check that aifdata installs beside the newest fsspec, s3fs and boto3 without downgrading them.

For each set of those packages pinned at their newest release on the index: if the set installs
beside the newest s3fs (aifdata cannot install without an s3fs), it must still install with
aifdata, whose bounds are what aifdata controls. A set that does not install even beside s3fs alone
is an upstream conflict (aiobotocore, under s3fs, pins a narrow botocore range, which may not reach
the newest boto3's botocore); it is reported, and is not aifdata's to fix.

    python3 .ci/resolve_newest.py [UV]

Resolves with ``uv pip compile`` (nothing is installed), from the indexes pip is configured with
(``eval "$(python3 .ci/uv_env.py)"`` first). Exits 1 if an aifdata requirement forces a downgrade.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fsspec", "s3fs", "boto3")
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def compile_(uv: str, requirements: list[str]) -> tuple[dict[str, str], str]:
    """(name -> version resolved, uv's error text); an empty dict when it does not resolve."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp, "requirements.in")
        req.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        run = subprocess.run(
            [uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate",
             "--python-version", PYTHON_VERSION, str(req)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if run.returncode != 0:
        return {}, run.stderr.strip()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", run.stdout, re.M))
    return {name.lower(): version for name, version in pins.items()}, ""


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1].strip() if text.strip() else "no reason given"


def main() -> int:
    uv = sys.argv[1] if len(sys.argv) > 1 else "uv"
    newest = {}
    for name in PACKAGES:
        pins, err = compile_(uv, [name])
        if not pins:
            print(f"cannot resolve {name} alone:\n{err}", file=sys.stderr)
            return 1
        newest[name] = pins[name]
    print("newest on the index: " + ", ".join(f"{n} {v}" for n, v in newest.items()))
    aifdata = f"aifdata @ {ROOT.as_uri()}"
    failed = False
    for size in range(1, len(PACKAGES) + 1):
        for names in combinations(PACKAGES, size):
            pinned = [f"{n}=={newest[n]}" for n in names]
            label = " + ".join(pinned)
            reference = pinned if "s3fs" in names else [*pinned, f"s3fs=={newest['s3fs']}"]
            alone, why = compile_(uv, reference)
            if not alone:
                print(f"  {label}: upstream conflict: " + " + ".join(reference) + " do not install")
                print(f"    together, with or without aifdata ({last_line(why)})")
                continue
            together, why = compile_(uv, [*pinned, aifdata])
            if together:
                print(f"  {label} + aifdata: resolves, nothing downgraded")
            else:
                failed = True
                print(f"  {label} + aifdata: DOES NOT RESOLVE\n{why[-3000:]}", file=sys.stderr)
    # The newest boto3 that does install beside the newest s3fs: aifdata must not lower it either.
    beside, _ = compile_(uv, [f"s3fs=={newest['s3fs']}", "boto3"])
    if beside:
        pinned = [f"s3fs=={newest['s3fs']}", f"boto3=={beside['boto3']}"]
        if compile_(uv, [*pinned, aifdata])[0]:
            print(f"  {' + '.join(pinned)} (the newest boto3 s3fs allows) + aifdata: resolves")
        else:
            failed = True
            print(f"  {' + '.join(pinned)} + aifdata: DOES NOT RESOLVE", file=sys.stderr)
    if failed:
        print(
            "an aifdata requirement forces a downgrade: widen it in pyproject.toml", file=sys.stderr
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Real files nobody here wrote, fetched at test time from packages' source distributions.

The format plug-ins are tested on files written by the field's own tools: the test data
that packages such as laspy or pyfaidx ship in their sdists. Nothing is copied into this
repository: a test names a :class:`RealFile` (package, version, member, sha256, licence),
and the ``real_file`` fixture downloads the archive with pip (so pip's own index settings
apply), checks the member's sha256, and keeps it in a cache shared by every run::

    SIMPLE_LAS = RealFile("laspy", "2.7.0", "tests/data/simple.las", "1e3f...", "BSD-2-Clause")

    def test_real_las(real_file):
        path = real_file(SIMPLE_LAS)

Where pip cannot reach an index, the test skips and says why.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

#: Where fetched files are kept between runs (fixed at import: tests change $HOME).
CACHE = Path(
    os.environ.get("AIFDATA_TEST_DATA_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aifdata-test-data"
)
_lock = threading.Lock()


class Unavailable(Exception):
    """The archive could not be fetched (no index, no such version)."""


@dataclass(frozen=True)
class RealFile:
    """One member of one package's source distribution (or wheel, ``wheel=True``)."""

    package: str
    version: str
    member: str  # path inside the archive, below its top directory for an sdist
    sha256: str
    licence: str
    wheel: bool = False

    @property
    def name(self) -> str:
        return Path(self.member).name

    @property
    def cached(self) -> Path:
        return CACHE / f"{self.package}-{self.version}" / self.member


def fetch(real: RealFile) -> Path:
    """The member on local disk, checked against its sha256; Unavailable when pip fails."""
    with _lock:
        path = real.cached
        if not path.exists() or _sha256(path) != real.sha256:
            _extract(real, _download(real))
        digest = _sha256(path)
        if digest != real.sha256:
            raise AssertionError(
                f"{real.package}=={real.version} {real.member}: sha256 {digest}, expected"
                f" {real.sha256} (the package changed: this is not the file the test knows)"
            )
        return path


def _download(real: RealFile) -> Path:
    folder = CACHE / "archives"
    folder.mkdir(parents=True, exist_ok=True)
    stem = real.package.replace("-", "_").lower()
    found = _archive_in(folder, stem, real)
    if found is not None:
        return found
    # the sdist of this package only: ``:all:`` would build its build dependencies from source
    kind = ["--only-binary", ":all:"] if real.wheel else ["--no-binary", real.package]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *kind,
               "-d", str(folder), f"{real.package}=={real.version}"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        what = f"pip download {real.package}=={real.version}"
        raise Unavailable(f"{what}: no answer in 600 s") from None
    found = _archive_in(folder, stem, real)
    if done.returncode != 0 or found is None:
        last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
        raise Unavailable(f"pip download {real.package}=={real.version} failed: {last}")
    return found


def _archive_in(folder: Path, stem: str, real: RealFile) -> Path | None:
    suffixes = (".whl",) if real.wheel else (".tar.gz", ".zip")
    for path in folder.iterdir():
        name = path.name.lower().replace("-", "_")
        if name.startswith(f"{stem}_{real.version}") and path.name.endswith(suffixes):
            return path
    return None


def _extract(real: RealFile, archive: Path) -> None:
    """Write the member to its cache path atomically (a temporary file, then a rename)."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0].split("/")[0]
            handle = tar.extractfile(f"{top}/{real.member}")
            if handle is None:
                raise Unavailable(f"{archive.name} has no file {real.member}")
            data = handle.read()
    else:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            top = names[0].split("/")[0]
            inner = real.member if real.member in names else f"{top}/{real.member}"
            data = zipped.read(inner)
    target = real.cached
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

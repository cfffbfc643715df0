"""Probes for paths that would leave a tier: ``..``, absolute paths, symbolic links.

A connector passes when each probe is refused (:class:`~aifdata.PathEscape`, or
any other error) or stays inside the tier: the storage around the tier, planted
with secrets, must read and list exactly as before, and no secret may come back.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

from ..connectors import Connector, Tier
from ..connectors._base import FileStat

SECRET = b"outside the tier: never to be read or changed through it"
PWNED = b"written through an escape"

Attempt = Callable[[], Any]


@dataclasses.dataclass
class Outside:
    """The storage around a tier, planted with secrets that must stay as they are."""

    connector: Connector
    inside: str  # the tier's own name in here

    @classmethod
    def planted(cls, connector: Connector, inside: str) -> Outside:
        """Plant a secret beside the tier and one in a sibling of it."""
        outside = cls(connector, inside)
        connector.pipe_file("secret.txt", SECRET)
        connector.pipe_file(f"{outside.sibling}/secret.txt", SECRET)
        return outside

    @property
    def sibling(self) -> str:
        return f"{self.inside}-sibling"

    @property
    def root(self) -> str | None:
        return local_root(self.connector.tier)

    def absolute(self, escape: str) -> str | None:
        """The absolute local path of what ``escape`` aims at, for local tiers."""
        if self.root is None or not escape.startswith("/"):
            return None
        return os.path.join(self.root, escape.lstrip("/"))

    def snapshot(self) -> dict[str, bytes]:
        prefix = self.inside + "/"
        names = [n for n in self.connector.find("") if not n.startswith(prefix)]
        return {n: self.connector.cat_file(n) for n in sorted(names)}

    def assert_untouched(self, after: str = "") -> None:
        expected = {"secret.txt": SECRET, f"{self.sibling}/secret.txt": SECRET}
        assert self.snapshot() == expected, f"storage outside the tier changed {after}"


def assert_reads_refused(connector: Connector, path: str) -> None:
    reads: dict[str, Attempt] = {
        "cat_file": lambda: connector.cat_file(path),
        "cat_file range": lambda: connector.cat_file(path, 0, len(SECRET)),
        "cat_ranges": lambda: connector.cat_ranges([path], [0], [len(SECRET)]),
        "cat_files": lambda: connector.cat_files([path]),
        "open_read": lambda: read_all(connector, path),
        "info": lambda: connector.info(path),
        "ls": lambda: connector.ls(path),
        "find": lambda: connector.find(path),
        "stats": lambda: connector.stats([path]),
    }
    for name, call in reads.items():
        got = attempt(call)
        assert not reveals(got), f"{name}({path!r}) read outside the tier: {got!r}"
    assert attempt(lambda: connector.exists(path)) is not True


def assert_writes_contained(connector: Connector, path: str, local: str, outside: Outside) -> None:
    writes: dict[str, Attempt] = {
        "pipe_file": lambda: connector.pipe_file(path, PWNED),
        "open_write": lambda: write_and_close(connector, path),
        "put_file": lambda: connector.put_file(local, path),
        "copy to": lambda: connector.copy("a.bin", path),
        "move to": lambda: connector.move("d/b.txt", path),
        "makedirs": lambda: connector.makedirs(path + "-dir"),
        "rm_file": lambda: connector.rm_file(path),
        "rm_many": lambda: connector.rm_many([path]),
        "rmdir": lambda: connector.rmdir(path.rpartition("/")[0] or ".."),
        "copy from": lambda: connector.copy(path, "stolen-copy"),
        "move from": lambda: connector.move(path, "stolen-move"),
    }
    for name, call in writes.items():
        connector.pipe_file("d/b.txt", b"moved")  # what "move to" moves, each time
        attempt(call)
        outside.assert_untouched(f"after {name}({path!r})")
        for stolen in ("stolen-copy", "stolen-move"):
            assert not reveals(attempt(functools.partial(connector.cat_file, stolen)))


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __repr__(self) -> str:
        return f"<raised {self.exc!r}>"


def attempt(call: Attempt) -> Any:
    """The call's result, or a marker of the error it raised (any refusal is fine here)."""
    try:
        return call()
    except (OSError, ValueError) as exc:  # PathEscape, FileNotFoundError, ...
        return _Failed(exc)


def reveals(got: Any) -> bool:
    """Whether a result holds the secret bytes, or an entry sized like the secret file."""
    if isinstance(got, _Failed):
        return False
    if isinstance(got, bytes):
        return SECRET in got
    if isinstance(got, dict):
        return any(reveals(v) for v in got.values()) or _sized_like_secret(got)
    if isinstance(got, list):
        return any(reveals(v) for v in got)
    if isinstance(got, FileStat):
        return got.size == len(SECRET)
    return False


def _sized_like_secret(info: dict[str, Any]) -> bool:
    return info.get("type") == "file" and info.get("size") == len(SECRET)


def read_all(connector: Connector, rel: str) -> bytes:
    with connector.open_read(rel) as f:
        return f.read()


def write_and_close(connector: Connector, rel: str, data: bytes = PWNED) -> None:
    writer = connector.open_write(rel)
    writer.write(data)
    writer.close()


def leaf(url: str) -> str:
    return url.rstrip("/").rpartition("/")[2]


def parent_tier(tier: Tier) -> Tier | None:
    """The tier one level up (``s3://b/p/data`` -> ``s3://b/p``), or None at a root."""
    scheme, sep, rest = tier.url.rpartition("://")
    parent = rest.rstrip("/").rpartition("/")[0]
    if not parent:
        return None
    return dataclasses.replace(tier, url=f"{scheme}{sep}{parent}")


def local_root(tier: Tier) -> str | None:
    """The tier's directory when its url is a local absolute path, else None."""
    url = tier.url
    return url if os.path.isabs(url) and os.path.isdir(url) else None

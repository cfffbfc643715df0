"""A toy storage kind, as a third-party package would ship it: one module, one entry point.

``toy://NAME/prefix`` tiers keep their files in a dict per process. The test
suite installs it through a ``toykind-0.1.dist-info`` with an
``aifdata.connectors`` entry point, never by editing aifdata.
"""

from __future__ import annotations

import errno
import io
import threading
import time
from typing import Any, BinaryIO, ClassVar

from aifdata import StorageKind
from aifdata.connectors import Connector, Info, OptionCheck

#: NAME -> {key: (bytes, mtime)}: the toy's "servers".
STORES: dict[str, dict[str, tuple[bytes, float]]] = {}
_LOCK = threading.Lock()


class ToyKind(StorageKind):
    """Files in a dict, named ``toy://NAME[/prefix]``."""

    name = "toy"
    location_key = "url"
    location_shape = "toy://NAME[/prefix]"
    options: ClassVar[dict[str, OptionCheck]] = {
        "latency": OptionCheck("a number of seconds", lambda v: isinstance(v, int | float))
    }
    connector = "toykind:ToyConnector"

    def location_problem(self, location: Any) -> str | None:
        ok = isinstance(location, str) and location.startswith("toy://") and len(location) > 6
        return None if ok else f"expected {self.location_shape}, got {location!r}"

    def normalise(self, location: str) -> str:
        return location.rstrip("/")

    def serves(self, url: str) -> bool:
        return url.startswith("toy://")


TOY_KIND = ToyKind()


class _Writer(io.BytesIO):
    """Publishes its bytes on a clean close, nothing after discard()."""

    def __init__(self, publish: Any) -> None:
        super().__init__()
        self._publish, self._discarded = publish, False

    def discard(self) -> None:
        self._discarded = True
        self.close()

    def close(self) -> None:
        if not self.closed and not self._discarded:
            self._publish(self.getvalue())
        super().close()

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class ToyConnector(Connector):
    """A tier of the toy kind."""

    supports_empty_directories = False

    def __init__(self, tier: Any) -> None:
        super().__init__(tier)
        name, _, prefix = tier.url.removeprefix("toy://").partition("/")
        with _LOCK:
            self.store = STORES.setdefault(name, {})
        self.prefix = prefix.strip("/")

    def url(self, rel: str) -> str:
        return f"{self.tier.url}/{rel}" if rel else self.tier.url

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix and rel else (self.prefix or rel)

    def _below(self, rel: str) -> dict[str, tuple[bytes, float]]:
        start = self._key(rel) + "/" if self._key(rel) else ""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return {k[cut:]: v for k, v in list(self.store.items()) if k.startswith(start)}

    def info(self, rel: str) -> Info:
        held = self.store.get(self._key(rel))
        if held is not None and rel:
            return {"name": rel, "size": len(held[0]), "type": "file", "mtime": held[1]}
        if not rel or self._below(rel):
            return {"name": rel, "size": 0, "type": "directory"}
        raise self._not_found(rel)

    def ls(self, rel: str) -> list[Info]:
        info = self.info(rel)
        if info["type"] == "file":
            return [info]
        depth = rel.count("/") + 1 if rel else 0
        names = {"/".join(k.split("/")[: depth + 1]) for k in self._below(rel)}
        return [self.info(n) for n in sorted(names)]

    def find(self, rel: str, withdirs: bool = False) -> dict[str, Info]:
        try:
            info = self.info(rel)
        except FileNotFoundError:
            return {}
        if info["type"] == "file":
            return {rel: info}
        out = {k: self.info(k) for k in self._below(rel)}
        if withdirs:
            for key in list(out):
                parts = key.split("/")
                for i in range(rel.count("/") + 1 if rel else 0, len(parts) - 1):
                    d = "/".join(parts[: i + 1])
                    out[d] = {"name": d, "size": 0, "type": "directory"}
        return out

    def _bytes(self, rel: str) -> bytes:
        held = self.store.get(self._key(rel)) if rel else None
        if held is None:  # a directory is only a prefix: no object there
            raise self._not_found(rel)
        return held[0]

    def cat_file(self, rel: str, start: int | None = None, end: int | None = None) -> bytes:
        return self._bytes(rel)[slice(start, end)]

    def open_read(
        self, rel: str, block_size: int | None = None, size: int | None = None
    ) -> BinaryIO:
        return io.BytesIO(self._bytes(rel))

    def open_write(self, rel: str, block_size: int | None = None) -> Any:
        if not rel or self._below(rel):
            raise IsADirectoryError(errno.EISDIR, "is a directory", self.url(rel))
        key = self._key(rel)
        return _Writer(lambda data: self.store.__setitem__(key, (data, time.time())))

    def pipe_file(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as f:
            f.write(data)

    def put_file(self, local_path: str, rel: str) -> None:
        with open(local_path, "rb") as f:
            self.pipe_file(rel, f.read())

    def copy(self, rel1: str, rel2: str) -> None:
        self.pipe_file(rel2, self._bytes(rel1))

    def rm_file(self, rel: str) -> None:
        self._bytes(rel)
        del self.store[self._key(rel)]

    def rmdir(self, rel: str) -> None:
        return None

    def makedirs(self, rel: str) -> None:
        return None

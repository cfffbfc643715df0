"""A tier: one storage location of a mount, of one storage kind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._errors import ConfigError
from ._kind import StorageKind
from ._registry import get_kind


@dataclass(frozen=True)
class Tier:
    """One storage location of a mount: an S3 URL prefix, a PFS directory, or a
    location of another kind (``fsspec``, or one a package registers)."""

    kind: str
    url: str
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        spec = get_kind(self.kind)
        name = self.name or self.kind
        problem = spec.location_problem(self.url)
        key = spec.location_key
        if problem is None:
            found = spec.option_problem(self.options)
            if found is not None:
                key, problem = found
        if problem:
            raise ConfigError(f"tier {name!r}: {key}: {problem}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "url", spec.normalise(self.url))
        object.__setattr__(self, "_spec", spec)  # not a field: equality and pickling ignore it

    @property
    def storage_kind(self) -> StorageKind:
        """What aifdata knows of this tier's kind of storage (looked up once, when made)."""
        spec: StorageKind = self.__dict__["_spec"]
        return spec

    @property
    def local(self) -> bool:
        """Whether this tier is fast storage on this machine (read first by default)."""
        return self.storage_kind.local

    @classmethod
    def s3(cls, url: str, name: str = "s3", **options: Any) -> Tier:
        """An S3 tier at ``s3://bucket/prefix`` with endpoint/credential options."""
        return cls("s3", url, name, options)

    @classmethod
    def pfs(cls, path: str | os.PathLike[str], name: str = "pfs", **options: Any) -> Tier:
        """A parallel-file-system tier rooted at a directory."""
        location = os.fspath(path) if isinstance(path, os.PathLike) else path
        return cls("pfs", location, name, options)

    @classmethod
    def fsspec(cls, url: str, name: str = "fsspec", **storage_options: Any) -> Tier:
        """A tier on any fsspec filesystem (``memory://``, ``gs://``, ``abfs://``, ``sftp://``)."""
        options = {"storage_options": storage_options} if storage_options else {}
        return cls("fsspec", url, name, options)

    @classmethod
    def service(cls, url: str, name: str = "service", **options: Any) -> Tier:
        """A site's ``aif://`` read through its ``aifdata serve`` at ``http(s)://host:port
        [/mount]``, with an API token (``token=``, else ``$AIFDATA_TOKEN``)."""
        return cls("service", url, name, options)

    def __repr__(self) -> str:
        hidden = self.storage_kind.secret_options
        options = {k: "***" if k in hidden and v else v for k, v in self.options.items()}
        return (
            f"Tier(kind={self.kind!r}, url={self.url!r}, name={self.name!r}, options={options!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (Tier, (self.kind, self.url, self.name, dict(self.options)))

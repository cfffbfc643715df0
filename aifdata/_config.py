"""The mount table: which logical prefixes map to which storage tiers.

A :class:`Config` holds :class:`Mount` objects; each mount maps a logical
prefix (``genomics``) to named :class:`Tier` objects (an S3 prefix, a PFS
directory), an ordered read preference and one write tier. It is read from
TOML or built in Python; both are validated the same way.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ._errors import ConfigError, MountNotFound

TIER_KINDS = ("s3", "pfs")

S3_OPTION_KEYS = frozenset(
    {
        "endpoint_url",
        "key",
        "secret",
        "token",
        "region",
        "profile",
        "anon",
        "max_concurrency",
        "part_size",
        "connect_timeout",
        "read_timeout",
        "max_attempts",
    }
)
PFS_OPTION_KEYS = frozenset({"block_size"})
_OPTION_KEYS = {"s3": S3_OPTION_KEYS, "pfs": PFS_OPTION_KEYS}


def aifdata_home() -> Path:
    """Return ``$AIFDATA_HOME``, defaulting to ``~/.aifdata``."""
    return Path(os.environ.get("AIFDATA_HOME") or Path.home() / ".aifdata").expanduser()


def default_config_path() -> Path:
    """Return ``$AIFDATA_CONFIG``, else ``$AIFDATA_HOME/config.toml``."""
    explicit = os.environ.get("AIFDATA_CONFIG")
    return Path(explicit).expanduser() if explicit else aifdata_home() / "config.toml"


@dataclass(frozen=True)
class Tier:
    """One storage location of a mount: an S3 URL prefix or a PFS directory."""

    kind: str
    url: str
    name: str = ""
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in TIER_KINDS:
            raise ConfigError(f"tier kind {self.kind!r} is not one of {', '.join(TIER_KINDS)}")
        object.__setattr__(self, "name", self.name or self.kind)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "url", _normalise_url(self.kind, self.url))
        unknown = sorted(set(self.options) - _OPTION_KEYS[self.kind])
        if unknown:
            allowed = ", ".join(sorted(_OPTION_KEYS[self.kind]))
            raise ConfigError(
                f"tier {self.name!r}: unknown option {unknown[0]!r}; expected one of {allowed}"
            )

    @classmethod
    def s3(cls, url: str, name: str = "s3", **options: Any) -> Tier:
        """An S3 tier at ``s3://bucket/prefix`` with endpoint/credential options."""
        return cls("s3", url, name, options)

    @classmethod
    def pfs(cls, path: str | os.PathLike[str], name: str = "pfs", **options: Any) -> Tier:
        """A parallel-file-system tier rooted at a directory."""
        return cls("pfs", os.fspath(path), name, options)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Tier, (self.kind, self.url, self.name, dict(self.options)))


def _normalise_url(kind: str, url: str) -> str:
    if kind == "s3":
        bare = url.removeprefix("s3://").strip("/")
        if not bare:
            raise ConfigError(f"S3 tier URL {url!r} names no bucket; expected s3://bucket[/prefix]")
        return f"s3://{bare}"
    if not url:
        raise ConfigError("PFS tier has an empty path; expected a directory")
    return os.path.abspath(os.path.expanduser(url))


@dataclass(frozen=True)
class Mount:
    """A logical prefix mapped to tiers, with a read order and a write tier."""

    prefix: str
    tiers: tuple[Tier, ...]
    read_order: tuple[str, ...] = ()
    write_tier: str = ""

    def __post_init__(self) -> None:
        prefix = self.prefix.strip("/")
        if not prefix or any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ConfigError(f"mount prefix {self.prefix!r} must be a clean relative path")
        tiers = tuple(self.tiers)
        if not tiers:
            raise ConfigError(f"mount {prefix!r} has no tiers")
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"mount {prefix!r} has two tiers with the same name: {names}")
        read_order = tuple(self.read_order) or _default_read_order(tiers)
        for name in read_order:
            if name not in names:
                raise ConfigError(
                    f"mount {prefix!r}: read_order names tier {name!r}; tiers are {names}"
                )
        write_tier = self.write_tier or _default_write_tier(tiers)
        if write_tier not in names:
            raise ConfigError(f"mount {prefix!r}: write_tier {write_tier!r} is not in {names}")
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "tiers", tiers)
        object.__setattr__(self, "read_order", read_order)
        object.__setattr__(self, "write_tier", write_tier)

    def tier(self, name: str) -> Tier:
        """Return the tier called ``name``."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise ConfigError(f"mount {self.prefix!r} has no tier {name!r}")


def _default_read_order(tiers: Sequence[Tier]) -> tuple[str, ...]:
    """PFS tiers first (fast, local), then S3, each in declaration order."""
    ranked = sorted(tiers, key=lambda t: 0 if t.kind == "pfs" else 1)
    return tuple(t.name for t in ranked)


def _default_write_tier(tiers: Sequence[Tier]) -> str:
    """The first S3 tier (the shared, governed copy), else the first tier."""
    return next((t.name for t in tiers if t.kind == "s3"), tiers[0].name)


@dataclass(frozen=True)
class Config:
    """The mount table, plus where it came from."""

    mounts: tuple[Mount, ...]
    source: str | None = None
    _by_prefix: dict[str, Mount] = field(init=False, repr=False, compare=False)
    _nested: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mounts = tuple(self.mounts)
        prefixes = [m.prefix for m in mounts]
        if len(set(prefixes)) != len(prefixes):
            raise ConfigError(f"two mounts share a prefix: {prefixes}")
        object.__setattr__(self, "mounts", mounts)
        object.__setattr__(self, "_by_prefix", {m.prefix: m for m in mounts})
        object.__setattr__(self, "_nested", any("/" in p for p in prefixes))

    @property
    def prefixes(self) -> list[str]:
        """The mount prefixes, sorted."""
        return sorted(m.prefix for m in self.mounts)

    def mount(self, prefix: str) -> Mount:
        """Return the mount with exactly this prefix."""
        for mount in self.mounts:
            if mount.prefix == prefix.strip("/"):
                return mount
        raise MountNotFound(f"no mount {prefix!r}; known mounts: {', '.join(self.prefixes)}")

    def locate(self, url: str) -> tuple[Mount, Tier, str] | None:
        """The mount, tier and relative path of a physical URL (``s3://b/k`` or a PFS path)."""
        for mount in self.mounts:
            for tier in mount.tiers:
                if url.startswith(tier.url.rstrip("/") + "/"):
                    return mount, tier, url[len(tier.url.rstrip("/")) + 1 :]
        return None

    def resolve(self, path: str) -> tuple[Mount, str]:
        """Split a clean logical path into its mount (longest prefix) and the rest."""
        top, _, rest = path.partition("/")
        single = self._by_prefix.get(top)
        if single is not None and not self._nested:  # the common case: one dict lookup
            return single, rest
        holders = [m for m in self.mounts if path == m.prefix or path.startswith(m.prefix + "/")]
        best = max(holders, key=lambda m: len(m.prefix), default=None)
        if best is None:
            known = ", ".join(self.prefixes) or "(none)"
            raise MountNotFound(f"no mount holds 'aif://{path}'; known mounts: {known}")
        return best, path[len(best.prefix) :].lstrip("/")


def default_config() -> Config:
    """The config used when no file exists: mount ``local`` on ``$AIFDATA_HOME/data``."""
    data = aifdata_home() / "data"
    return Config((Mount("local", (Tier.pfs(data),)),), source=None)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the mount table from TOML.

    With no ``path``, read ``$AIFDATA_CONFIG`` or ``$AIFDATA_HOME/config.toml``;
    when neither exists, return :func:`default_config`.
    """
    if path is None:
        candidate = default_config_path()
        if not candidate.exists():
            if os.environ.get("AIFDATA_CONFIG"):
                raise ConfigError(f"$AIFDATA_CONFIG names {candidate}, which does not exist")
            return default_config()
        path = candidate
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc}") from exc
    return parse_config(text, source=str(file))


def parse_config(text: str, source: str = "<string>") -> Config:
    """Parse TOML text into a :class:`Config`; errors name ``source`` and the key."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return _ConfigReader(source).read(document)


class _ConfigReader:
    """Turns a parsed TOML document into a Config, naming the key at fault."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    def read(self, document: Mapping[str, Any]) -> Config:
        unknown = sorted(set(document) - {"mounts"})
        if unknown:
            raise self.fail(unknown[0], "unknown top-level key; expected 'mounts'")
        mounts_table = document.get("mounts", {})
        if not isinstance(mounts_table, dict):
            raise self.fail("mounts", "expected a table of mounts ([mounts.NAME])")
        mounts = [self._mount(name, table) for name, table in mounts_table.items()]
        try:
            return Config(tuple(mounts), source=self.source)
        except ConfigError as exc:
            raise self.fail("mounts", str(exc)) from None

    def _mount(self, name: str, table: Any) -> Mount:
        key = f"mounts.{name}"
        if not isinstance(table, dict):
            raise self.fail(key, "expected a table with tier sub-tables")
        prefix = table.get("prefix", name)
        read_order = table.get("read_order", [])
        write_tier = table.get("write_tier", "")
        self._expect(f"{key}.prefix", prefix, str)
        self._expect(f"{key}.read_order", read_order, list)
        self._expect(f"{key}.write_tier", write_tier, str)
        tiers = [
            self._tier(f"{key}.{tier_name}", tier_name, tier_table)
            for tier_name, tier_table in table.items()
            if tier_name not in ("prefix", "read_order", "write_tier")
        ]
        try:
            return Mount(prefix, tuple(tiers), tuple(read_order), write_tier)
        except ConfigError as exc:
            raise self.fail(key, str(exc)) from None

    def _tier(self, key: str, name: str, table: Any) -> Tier:
        if not isinstance(table, dict):
            raise self.fail(key, "expected a tier table with 'url' (s3) or 'path' (pfs)")
        kind = table.get("kind", name if name in TIER_KINDS else None)
        if kind not in TIER_KINDS:
            raise self.fail(f"{key}.kind", f"expected one of {', '.join(TIER_KINDS)}, got {kind!r}")
        location_key = "url" if kind == "s3" else "path"
        location = table.get(location_key)
        if not isinstance(location, str) or not location:
            raise self.fail(f"{key}.{location_key}", "missing or not a string")
        options = {k: v for k, v in table.items() if k not in ("kind", location_key)}
        for option in options:
            if option not in _OPTION_KEYS[kind]:
                allowed = ", ".join(sorted(_OPTION_KEYS[kind]))
                raise self.fail(
                    f"{key}.{option}", f"unknown {kind} option; expected one of {allowed}"
                )
        try:
            return Tier(kind, location, name, options)
        except ConfigError as exc:
            raise self.fail(key, str(exc)) from None

    def _expect(self, key: str, value: Any, kind: type | tuple[type, ...]) -> None:
        if not isinstance(value, kind):
            expected = (
                kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            )
            raise self.fail(key, f"expected {expected}, got {type(value).__name__}")

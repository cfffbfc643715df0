"""The mount table: which logical prefixes map to which storage tiers.

A :class:`Config` holds :class:`Mount` objects; each mount maps a logical
prefix (``genomics``) to named :class:`Tier` objects (an S3 prefix, a PFS
directory), an ordered read preference and one write tier. It is read from
TOML or built in Python; both are validated the same way.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
import reprlib
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ._errors import ConfigError, MountNotFound

TIER_KINDS = ("s3", "pfs")
MOUNT_KEYS = ("prefix", "read_order", "write_tier")
_LOCATION_KEYS = {"s3": "url", "pfs": "path"}
_S3_URL_SHAPE = "s3://bucket[/prefix]"
_BUCKET = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class _Check:
    """What a tier option must be: a phrase for messages and a predicate."""

    expected: str
    accepts: Callable[[Any], bool]

    def problem(self, value: Any) -> str | None:
        return None if self.accepts(value) else f"expected {self.expected}, got {_shown(value)}"


def _is_http_url(value: Any) -> bool:
    if value is None:
        return True
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) > 0


def _is_positive_seconds(value: Any) -> bool:
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and float(value) > 0


_TEXT = _Check("a string", lambda v: v is None or isinstance(v, str))
_FLAG = _Check("true or false", lambda v: isinstance(v, bool))
_COUNT = _Check("a positive integer", _is_positive_int)
_BYTES = _Check("a positive integer (bytes)", _is_positive_int)
_SECONDS = _Check("a positive number (seconds)", _is_positive_seconds)
_OPTION_CHECKS: dict[str, dict[str, _Check]] = {
    "s3": {
        "endpoint_url": _Check("an http:// or https:// URL", _is_http_url),
        "key": _TEXT,
        "secret": _TEXT,
        "token": _TEXT,
        "region": _TEXT,
        "profile": _TEXT,
        "anon": _FLAG,
        "max_concurrency": _COUNT,
        "part_size": _BYTES,
        "connect_timeout": _SECONDS,
        "read_timeout": _SECONDS,
        "max_attempts": _COUNT,
    },
    "pfs": {"block_size": _BYTES},
}
S3_OPTION_KEYS = frozenset(_OPTION_CHECKS["s3"])
PFS_OPTION_KEYS = frozenset(_OPTION_CHECKS["pfs"])

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def _shown(value: Any) -> str:
    """A short, one-line repr of a value given in a config."""
    return _REPR.repr(value)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _is_s3_url(url: Any) -> bool:
    if not isinstance(url, str) or not url.startswith("s3://"):
        return False
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    segments = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
    return bool(_BUCKET.fullmatch(bucket)) and all(s not in ("", ".", "..") for s in segments)


def _location_problem(kind: str, location: Any) -> str | None:
    """Why an S3 URL or a PFS path is unusable, or None."""
    if kind == "s3":
        ok, expected = _is_s3_url(location), _S3_URL_SHAPE
    else:
        ok, expected = isinstance(location, str) and bool(location), "a directory path"
    return None if ok else f"expected {expected}, got {_shown(location)}"


def _tier_problem(kind: str, location: Any, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first (key, problem) of a tier's location and options, or None if all are valid."""
    problem = _location_problem(kind, location)
    if problem:
        return _LOCATION_KEYS[kind], problem
    checks = _OPTION_CHECKS[kind]
    for option, value in options.items():
        if option not in checks:
            allowed = ", ".join(sorted(checks))
            hint = _did_you_mean(option, sorted(checks))
            return option, f"unknown {kind} option; expected one of {allowed}{hint}"
        problem = checks[option].problem(value)
        if problem:
            return option, problem
    return None


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
        name = self.name or self.kind
        problem = _tier_problem(self.kind, self.url, self.options)
        if problem:
            raise ConfigError(f"tier {name!r}: {problem[0]}: {problem[1]}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "url", _normalise_url(self.kind, self.url))

    @classmethod
    def s3(cls, url: str, name: str = "s3", **options: Any) -> Tier:
        """An S3 tier at ``s3://bucket/prefix`` with endpoint/credential options."""
        return cls("s3", url, name, options)

    @classmethod
    def pfs(cls, path: str | os.PathLike[str], name: str = "pfs", **options: Any) -> Tier:
        """A parallel-file-system tier rooted at a directory."""
        location = os.fspath(path) if isinstance(path, os.PathLike) else path
        return cls("pfs", location, name, options)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Tier, (self.kind, self.url, self.name, dict(self.options)))


def _normalise_url(kind: str, url: str) -> str:
    """``s3://bucket/prefix`` without trailing slashes; an absolute PFS path."""
    if kind == "s3":
        return "s3://" + url.removeprefix("s3://").rstrip("/")
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
        if isinstance(self.read_order, str):
            raise ConfigError(
                f"mount {prefix!r}: read_order must be a sequence of tier names,"
                f" not the string {self.read_order!r}"
            )
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
            raise self.fail(
                key, f"expected a table [{key}] with tier sub-tables, got {_shown(table)}"
            )
        prefix = table.get("prefix", name)
        read_order = table.get("read_order", [])
        write_tier = table.get("write_tier", "")
        self._expect(f"{key}.prefix", prefix, "a string", isinstance(prefix, str))
        self._read_order(f"{key}.read_order", read_order)
        self._expect(f"{key}.write_tier", write_tier, "a string", isinstance(write_tier, str))
        tiers = [
            self._tier(f"{key}.{tier_name}", tier_name, tier_table)
            for tier_name, tier_table in table.items()
            if tier_name not in MOUNT_KEYS
        ]
        try:
            return Mount(prefix, tuple(tiers), tuple(read_order), write_tier)
        except ConfigError as exc:
            raise self.fail(key, str(exc)) from None

    def _read_order(self, key: str, value: Any) -> None:
        names = isinstance(value, list) and all(isinstance(v, str) for v in value)
        example = f' like ["{value}"]' if isinstance(value, str) else ""
        self._expect(key, value, f"a list of tier names{example}", names)

    def _tier(self, key: str, name: str, table: Any) -> Tier:
        if not isinstance(table, dict):
            raise self.fail(key, self._not_a_tier(key, name, table))
        kind = self._kind(key, name, table)
        location_key = _LOCATION_KEYS[kind]
        if location_key not in table:
            other = next((k for k in _LOCATION_KEYS.values() if k in table), None)
            hint = f" (a {kind} tier has {location_key}, not {other})" if other else ""
            raise self.fail(f"{key}.{location_key}", f"missing{hint}")
        options = {k: v for k, v in table.items() if k not in ("kind", location_key)}
        problem = _tier_problem(kind, table[location_key], options)
        if problem:
            raise self.fail(f"{key}.{problem[0]}", problem[1])
        try:
            return Tier(kind, table[location_key], name, options)
        except ConfigError as exc:
            raise self.fail(key, str(exc)) from None

    def _not_a_tier(self, key: str, name: str, value: Any) -> str:
        """The problem with a non-table value under a mount: a tier without its table, or a typo."""
        if name in TIER_KINDS:
            return f"expected a tier table [{key}], got {_shown(value)}"
        tier_keys = {"kind", *_LOCATION_KEYS.values(), *S3_OPTION_KEYS, *PFS_OPTION_KEYS}
        mount = key.rpartition(".")[0]
        if name in tier_keys:
            return f"unknown mount key; {name} belongs in a tier sub-table such as [{mount}.s3]"
        known = ", ".join(MOUNT_KEYS)
        hint = _did_you_mean(name, MOUNT_KEYS)
        return f"unknown mount key; mount keys are {known}, and tiers are sub-tables{hint}"

    def _kind(self, key: str, name: str, table: Mapping[str, Any]) -> str:
        if "kind" not in table:
            if name in TIER_KINDS:
                return name
            raise self.fail(
                key, "a tier named other than 's3' or 'pfs' needs kind = \"s3\" or \"pfs\""
            )
        kind = table["kind"]
        if kind not in TIER_KINDS:
            raise self.fail(f"{key}.kind", f'expected "s3" or "pfs", got {_shown(kind)}')
        return str(kind)

    def _expect(self, key: str, value: Any, expected: str, ok: bool) -> None:
        if not ok:
            raise self.fail(key, f"expected {expected}, got {_shown(value)}")

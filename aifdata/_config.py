"""The mount table: which logical prefixes map to which storage tiers.

A :class:`Config` holds :class:`Mount` objects; each mount maps a logical
prefix (``genomics``) to named :class:`Tier` objects (an S3 prefix, a PFS
directory), an ordered read preference and one write tier. It is read from
TOML or built in Python; both are validated the same way.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError, MountNotFound
from ._units import parse_duration, parse_size
from .connectors import Tier, get_kind, names
from .connectors import shown as _shown

MOUNT_KEYS = (
    "prefix",
    "read_order",
    "write_tier",
    "hydrate",
    "hydrate_ranged_max",
    "hydrate_lease",
    "hydrate_check",
)
HYDRATE_MODES = ("off", "on-read")
HYDRATE_CHECKS = ("every-read", "on-sync")
#: Ranged reads of files up to this size hydrate the whole file first (larger: S3 serves them).
DEFAULT_HYDRATE_RANGED_MAX = 4 * 2**30
#: How long a hydration's lease lasts without a heartbeat before another reader takes over.
DEFAULT_HYDRATE_LEASE = 30.0
#: Top-level tables other than ``mounts`` that a config file may hold, each read by the part
#: it configures (``[service]``: ``aifdata serve``).
SECTIONS = ("service",)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind_choices(quote: str = '"') -> str:
    """``"s3", "pfs" or "fsspec"``: the kinds a tier may name."""
    quoted = [f"{quote}{n}{quote}" for n in names()]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _tier_problem(kind: str, location: Any, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first (key, problem) of a tier's location and options, or None if all are valid."""
    spec = get_kind(kind)
    problem = spec.location_problem(location)
    if problem:
        return spec.location_key, problem
    found = spec.option_problem(options)
    if found is not None:
        option, problem = found
        if problem.startswith(f"unknown {kind} option"):
            problem += _did_you_mean(option, sorted(spec.options))
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
class Mount:
    """A logical prefix mapped to tiers, with a read order and a write tier.

    ``hydrate = "on-read"`` makes a read that a remote tier serves leave a
    verified copy on :attr:`hydration_tier` for the next reader; ranged reads
    do so for files up to ``hydrate_ranged_max`` bytes; ``hydrate_lease`` is
    how long a dead hydrator holds a file before another reader takes over;
    ``hydrate_check = "on-sync"`` trusts the catalog's record of the write
    tier's copy until a sync records a change, ``"every-read"`` asks it on
    every read.
    """

    prefix: str
    tiers: tuple[Tier, ...]
    read_order: tuple[str, ...] = ()
    write_tier: str = ""
    hydrate: str = "off"
    hydrate_ranged_max: int = DEFAULT_HYDRATE_RANGED_MAX
    hydrate_lease: float = DEFAULT_HYDRATE_LEASE
    hydrate_check: str = "on-sync"

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
        if next(t for t in tiers if t.name == write_tier).storage_kind.node_local:
            raise ConfigError(
                f"mount {prefix!r}: write_tier {write_tier!r} is a node-local cache;"
                " a cache only holds copies (write to an S3 or PFS tier)"
            )
        if self.hydrate not in HYDRATE_MODES:
            raise ConfigError(
                f'mount {prefix!r}: hydrate must be "off" or "on-read", got {self.hydrate!r}'
            )
        if self.hydrate_check not in HYDRATE_CHECKS:
            raise ConfigError(
                f'mount {prefix!r}: hydrate_check must be "every-read" or "on-sync",'
                f" got {self.hydrate_check!r}"
            )
        if self.hydrate != "off" and _hydration_tier(tiers, read_order, write_tier) is None:
            raise ConfigError(
                f"mount {prefix!r}: hydrate = {self.hydrate!r} needs a PFS or cache tier besides"
                f" the write tier {write_tier!r} in read_order to hold the copies"
            )
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "tiers", tiers)
        object.__setattr__(self, "read_order", read_order)
        object.__setattr__(self, "write_tier", write_tier)

    @property
    def trusts_catalog(self) -> bool:
        """Whether routing takes the write tier's copy to be the one the catalog
        records, without asking it (a managed mount with ``hydrate_check = "on-sync"``)."""
        return self.hydrate != "off" and self.hydrate_check == "on-sync"

    @property
    def hydration_tier(self) -> str | None:
        """The tier reads leave copies on: the first local tier in read order that
        is not the write tier (None: the mount has none)."""
        return _hydration_tier(self.tiers, self.read_order, self.write_tier)

    def tier(self, name: str) -> Tier:
        """Return the tier called ``name``."""
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise ConfigError(f"mount {self.prefix!r} has no tier {name!r}")


def _default_read_order(tiers: Sequence[Tier]) -> tuple[str, ...]:
    """Local tiers first (a PFS: fast), then remote ones (S3), each in declaration order."""
    ranked = sorted(tiers, key=lambda t: 0 if t.local else 1)
    return tuple(t.name for t in ranked)


def _default_write_tier(tiers: Sequence[Tier]) -> str:
    """The first remote tier (S3: the shared, governed copy), else the first tier that
    is not a node-local cache."""
    remote = next((t.name for t in tiers if not t.local), None)
    if remote is not None:
        return remote
    shared = [t for t in tiers if not t.storage_kind.node_local]
    return (shared or list(tiers))[0].name


def _hydration_tier(tiers: Sequence[Tier], read_order: Sequence[str], write: str) -> str | None:
    local = {t.name for t in tiers if t.local}
    return next((n for n in read_order if n in local and n != write), None)


@dataclass(frozen=True)
class Config:
    """The mount table, plus where it came from."""

    mounts: tuple[Mount, ...]
    source: str | None = None
    #: The other top-level tables of the file (:data:`SECTIONS`), as written.
    sections: Mapping[str, Mapping[str, Any]] = field(
        default_factory=dict, compare=False, hash=False
    )
    #: The catalog ``Catalog()`` opens when ``$AIFDATA_CATALOG`` is unset: a SQLite file or a
    #: ``postgresql://`` URL (top-level ``catalog = "..."`` in the TOML); None: the default.
    catalog: str | None = None
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
        raise MountNotFound(
            f"no mount {prefix!r}; known mounts: {', '.join(self.prefixes)} {self.origin()}"
        )

    def origin(self) -> str:
        """Where this mount table came from, in words, for an error about a missing mount.

        A worker on a cluster that was not given the mount table sees the built-in
        default, whose one mount (``local``) holds nothing the job asked for.
        """
        if self.source is not None:
            return f"(mount table: {self.source})"
        if self.prefixes == ["local"]:
            return (
                f"(no mount table: $AIFDATA_CONFIG is not set and {default_config_path()}"
                " does not exist; a worker needs $AIFDATA_CONFIG naming the mount table)"
            )
        return "(a mount table built in Python)"

    def locate(self, url: str) -> tuple[Mount, Tier, str] | None:
        """The mount, tier and relative path of a physical URL (``s3://b/k``, a PFS path,
        a URL of another kind's tier)."""
        for mount in self.mounts:
            for tier in mount.tiers:
                if url.startswith(tier.url.rstrip("/") + "/"):
                    return mount, tier, url[len(tier.url.rstrip("/")) + 1 :]
        return None

    def tier_at(self, url: str) -> tuple[Mount, Tier, str] | None:
        """:meth:`locate`, also for the root of a tier itself (``rel`` is then ``""``)."""
        for mount in self.mounts:
            for tier in mount.tiers:
                if url.rstrip("/") == tier.url.rstrip("/"):
                    return mount, tier, ""
        return self.locate(url)

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
            raise MountNotFound(
                f"no mount holds 'aif://{path}'; known mounts: {known} {self.origin()}"
            )
        return best, path[len(best.prefix) :].lstrip("/")


def default_config() -> Config:
    """The config used when no file exists: mount ``local`` on ``$AIFDATA_HOME/data``."""
    data = aifdata_home() / "data"
    return Config((Mount("local", (Tier.pfs(data, create=True),)),), source=None)


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
        unknown = sorted(set(document) - {"mounts", "catalog", *SECTIONS})
        if unknown:
            expected = ", ".join(repr(k) for k in ("mounts", "catalog", *SECTIONS[:-1]))
            expected += f" or {SECTIONS[-1]!r}"
            raise self.fail(unknown[0], f"unknown top-level key; expected {expected}")
        catalog = document.get("catalog")
        if catalog is not None and (not isinstance(catalog, str) or not catalog.strip()):
            raise self.fail(
                "catalog", f"expected a catalog file or a postgresql:// URL, got {_shown(catalog)}"
            )
        sections = {key: document[key] for key in SECTIONS if key in document}
        for key, table in sections.items():
            if not isinstance(table, dict):
                raise self.fail(key, f"expected a table [{key}], got {_shown(table)}")
        mounts_table = document.get("mounts", {})
        if not isinstance(mounts_table, dict):
            raise self.fail("mounts", "expected a table of mounts ([mounts.NAME])")
        mounts = [self._mount(name, table) for name, table in mounts_table.items()]
        try:
            return Config(tuple(mounts), source=self.source, sections=sections, catalog=catalog)
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
        hydrate = table.get("hydrate", "off")
        modes = " or ".join(f'"{m}"' for m in HYDRATE_MODES)
        self._expect(f"{key}.hydrate", hydrate, modes, hydrate in HYDRATE_MODES)
        ranged_max = self._parsed(
            f"{key}.hydrate_ranged_max",
            table.get("hydrate_ranged_max", DEFAULT_HYDRATE_RANGED_MAX),
            parse_size,
        )
        check = table.get("hydrate_check", "on-sync")
        checks = " or ".join(f'"{c}"' for c in HYDRATE_CHECKS)
        self._expect(f"{key}.hydrate_check", check, checks, check in HYDRATE_CHECKS)
        lease = self._parsed(
            f"{key}.hydrate_lease",
            table.get("hydrate_lease", DEFAULT_HYDRATE_LEASE),
            parse_duration,
        )
        tiers = [
            self._tier(f"{key}.{tier_name}", tier_name, tier_table)
            for tier_name, tier_table in table.items()
            if tier_name not in MOUNT_KEYS
        ]
        try:
            return Mount(
                prefix,
                tuple(tiers),
                tuple(read_order),
                write_tier,
                hydrate,
                ranged_max,
                lease,
                check,
            )
        except ConfigError as exc:
            raise self.fail(key, str(exc)) from None

    def _parsed(self, key: str, value: Any, parser: Any) -> Any:
        try:
            return parser(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def _read_order(self, key: str, value: Any) -> None:
        names = isinstance(value, list) and all(isinstance(v, str) for v in value)
        example = f' like ["{value}"]' if isinstance(value, str) else ""
        self._expect(key, value, f"a list of tier names{example}", names)

    def _tier(self, key: str, name: str, table: Any) -> Tier:
        if not isinstance(table, dict):
            raise self.fail(key, self._not_a_tier(key, name, table))
        kind = self._kind(key, name, table)
        try:
            location_key = get_kind(kind).location_key
        except ConfigError as exc:  # an installed kind that does not load
            raise self.fail(f"{key}.kind" if "kind" in table else key, str(exc)) from None
        if location_key not in table:
            other = next((k for k in ("url", "path") if k in table and k != location_key), None)
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
        if name in names():
            return f"expected a tier table [{key}], got {_shown(value)}"
        tier_keys = {"kind"}
        for kind in names():
            try:
                spec = get_kind(kind)
            except ConfigError:  # a kind that does not load: no help from it here
                continue
            tier_keys |= {spec.location_key, *spec.options}
        mount = key.rpartition(".")[0]
        if name in tier_keys:
            return f"unknown mount key; {name} belongs in a tier sub-table such as [{mount}.s3]"
        known = ", ".join(MOUNT_KEYS)
        hint = _did_you_mean(name, MOUNT_KEYS)
        return f"unknown mount key; mount keys are {known}, and tiers are sub-tables{hint}"

    def _kind(self, key: str, name: str, table: Mapping[str, Any]) -> str:
        if "kind" not in table:
            if name in names():
                return name
            raise self.fail(
                key,
                f"a tier named other than {_kind_choices(chr(39))} needs kind = {_kind_choices()}",
            )
        kind = table["kind"]
        if not isinstance(kind, str) or kind not in names():
            raise self.fail(f"{key}.kind", f"expected {_kind_choices()}, got {_shown(kind)}")
        return str(kind)

    def _expect(self, key: str, value: Any, expected: str, ok: bool) -> None:
        if not ok:
            raise self.fail(key, f"expected {expected}, got {_shown(value)}")

"""Who may do what: principals, grants on dataset patterns, and the decision.

* A **principal** is ``user:NAME``, ``group:NAME`` or ``*`` (everyone). The
  acting user is ``$AIFDATA_USER``, else the OS user; their groups are
  ``$AIFDATA_GROUPS`` (comma-separated), else the OS groups of the OS user.
* **Privileges** are ordered ``read`` < ``write`` < ``admin``; a grant of one
  includes those below it.
* A **pattern** is a dataset name, ``PREFIX/*`` or ``*`` (everything); no
  other glob is accepted. It covers every name it matches and everything
  under such a name: ``genomics/*`` covers the dataset ``genomics/run42`` and
  the path ``genomics/run42/reads.fq``.
* Every **dataset** is governed: its owner holds ``admin``, anyone else needs
  a grant. A path inside a dataset's location (on any tier of its mount) is
  the dataset. Another path is governed when some grant's pattern covers it;
  a path no grant names is open to whoever can reach the storage.
* A **location has one owner**: another dataset may be recorded at it, inside
  it or around it only by a principal who may write every dataset already
  there. Where locations overlap anyway (catalogs older than this rule), a
  path inside several datasets needs the privilege on each of them.
* Catalog **admins** (the user who created the catalog is the first) hold
  every privilege everywhere.
"""

from __future__ import annotations

import getpass
import grp
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cached_property, lru_cache

from .._config import Config
from .._errors import BadName, CatalogError
from .._paths import clean_path
from ..connectors import join, kind_of_url
from ._postgres import glob_condition
from ._search import Scope

PRIVILEGES = ("read", "write", "admin")
_RANK = {name: rank for rank, name in enumerate(PRIVILEGES)}
EVERYONE = "*"


#: The principal a service request acts as (:func:`acting_as`); ``None`` outside one.
_acting: ContextVar[Principal | None] = ContextVar("aifdata_acting_principal", default=None)


def current_user() -> str:
    """The acting user: the principal of :func:`acting_as`, else ``$AIFDATA_USER``, else the
    OS user."""
    acting = _acting.get()
    if acting is not None:
        return acting.user
    return os.environ.get("AIFDATA_USER") or _os_user()


def _os_user() -> str:
    """The OS user as :func:`getpass.getuser` says (``$LOGNAME``, ``$USER``, ... or the
    password database), looked up once per user id: every read asks."""
    return _user_of(os.getuid())


@lru_cache(maxsize=8)
def _user_of(uid: int) -> str:
    return getpass.getuser()


@lru_cache(maxsize=64)
def _os_groups(user: str) -> tuple[str, ...]:
    try:
        ids = os.getgrouplist(user, os.getgid())
    except (KeyError, OSError):
        return ()
    names = []
    for gid in ids:
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return tuple(sorted(set(names)))


@dataclass(frozen=True)
class Principal:
    """The acting user and their groups."""

    user: str
    groups: tuple[str, ...] = ()

    @cached_property
    def identities(self) -> frozenset[str]:
        """Every principal string a grant may name for this user (worked out once)."""
        return frozenset({f"user:{self.user}", EVERYONE, *(f"group:{g}" for g in self.groups)})

    def __str__(self) -> str:
        return f"user:{self.user}"


def current_principal() -> Principal:
    """The principal acting now: the one :func:`acting_as` set in this context (a
    service's request), else this process's (see the module docstring)."""
    acting = _acting.get()
    if acting is not None:
        return acting
    environ = os.environ
    return _principal(environ.get("AIFDATA_USER"), environ.get("AIFDATA_GROUPS"), os.getuid())


@lru_cache(maxsize=64)
def _principal(named: str | None, explicit: str | None, uid: int) -> Principal:
    """The principal for these values of ``$AIFDATA_USER`` and ``$AIFDATA_GROUPS``."""
    user = named or _user_of(uid)
    if explicit is not None:
        groups = tuple(sorted({g.strip() for g in explicit.split(",") if g.strip()}))
    elif user == _os_user():
        groups = _os_groups(user)
    else:
        groups = ()
    return Principal(user, groups)


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Act as ``principal`` in this context (a thread, an asyncio task) until the block
    ends: every grant check and audit row names it, whatever the environment says.

    A service sets it per request from the caller's token; the process's own
    ``$AIFDATA_USER`` never leaks into a request.
    """
    token = _acting.set(principal)
    try:
        yield principal
    finally:
        _acting.reset(token)


def parse_principal(text: str) -> str:
    """``alice`` or ``user:alice`` -> ``user:alice``; ``group:lab``; ``*``."""
    text = text.strip()
    if text == EVERYONE:
        return text
    kind, sep, name = text.partition(":")
    if not sep:
        kind, name = "user", text
    if kind not in ("user", "group") or not name or any(c in name for c in " :/*?[]"):
        raise BadName(
            f"principal {text!r} is not user:NAME, group:NAME, NAME (a user) or * (everyone)"
        )
    return f"{kind}:{name}"


def check_privilege(privilege: str) -> str:
    """The privilege, if it is one of read, write, admin."""
    if privilege not in _RANK:
        raise BadName(f"privilege {privilege!r} is not one of {', '.join(PRIVILEGES)}")
    return privilege


#: The pattern forms a grant accepts, as a refusal lists them.
PATTERN_FORMS = "a dataset name (genomics/run42), PREFIX/* (genomics/*) or * (everything)"


def check_pattern(pattern: str) -> str:
    """A pattern a grant may name: a dataset name, ``PREFIX/*`` (PREFIX a dataset name) or ``*``.

    Anything else (``name@1``, ``[``, ``a/**``, ``run4?``, spaces) is refused, so that a
    grant means what it reads as and nothing a glob would add.
    """
    if pattern == EVERYONE:
        return pattern
    name = pattern[:-2] if pattern.endswith("/*") else pattern
    try:
        check_dataset_name(name)
    except BadName as exc:
        why = str(exc).partition(" is not valid: ")[2].rpartition(" (e.g.")[0] or str(exc)
        shown = pattern if len(pattern) <= 60 else f"{pattern[:57]}..."
        raise BadName(
            f"pattern {shown!r} is not accepted ({why}): a grant names {PATTERN_FORMS}"
        ) from None
    return pattern


#: Longest dataset name (a path of a few segments, not a document).
MAX_NAME = 255


def check_dataset_name(name: str) -> str:
    """A dataset name grants can name: ``a/b/c`` segments of printable characters, with no
    ``.``/``..``, no glob characters and no ``@`` (which starts a version: ``name@3``)."""
    reasons = []
    if not name.strip() or name != name.strip():
        reasons.append("no leading or trailing spaces, not empty")
    if any(p in ("", ".", "..") for p in name.split("/")):
        reasons.append("no empty, '.' or '..' segments")
    if set(name) & set("*?[]@"):
        reasons.append("none of * ? [ ] @")
    if not name.isprintable():
        reasons.append("printable characters only")
    if len(name) > MAX_NAME:
        reasons.append(f"at most {MAX_NAME} characters")
    if reasons:
        shown = name if len(name) <= 60 else f"{name[:57]}..."
        raise BadName(
            f"dataset name {shown!r} is not valid: {'; '.join(reasons)} (e.g. genomics/run42)"
        )
    return name


@dataclass(frozen=True)
class Grant:
    """One grant: ``principal`` may ``privilege`` whatever ``pattern`` covers."""

    principal: str
    privilege: str
    pattern: str
    granted_by: str
    created: float


@dataclass(frozen=True)
class Resource:
    """What a request is about: a dataset, or a path outside every dataset."""

    name: str
    dataset: bool = False
    owner: str | None = None

    def describe(self) -> str:
        if self.dataset:
            return f"dataset {self.name} (owner {self.owner})"
        return f"path {self.name}"


def covers(pattern: str, name: str) -> bool:
    """Whether ``pattern`` matches ``name`` or one of its ancestors."""
    if fnmatchcase(name, pattern):
        return True
    end = name.rfind("/")
    while end > 0:
        if fnmatchcase(name[:end], pattern):
            return True
        end = name.rfind("/", 0, end)
    return False


def _ancestors(url: str) -> Iterator[str]:
    """``url`` and each shorter prefix of it at a ``/``, longest first."""
    url = url.rstrip("/")
    floor = url.find("://") + 3 if "://" in url else 1
    while len(url) >= floor:
        yield url
        cut = url.rfind("/")
        if cut < floor:
            return
        url = url[:cut]


class Policy:
    """A snapshot of grants, admins and dataset locations, answering requests."""

    def __init__(
        self,
        grants: Iterable[Grant],
        admins: Iterable[str],
        owners: Mapping[str, str],
        holders: Mapping[str, tuple[str, ...]] | Callable[[], Mapping[str, tuple[str, ...]]],
    ) -> None:
        self.grants = tuple(grants)
        self.admins = frozenset(admins)
        self.owners = dict(owners)  # dataset name -> owner
        self._holders = holders  # physical prefix -> dataset names there, or how to get them

    @property
    def holders(self) -> Mapping[str, tuple[str, ...]]:
        """Physical prefix -> the datasets recorded there, sorted (worked out on first use:
        only paths need it). More than one only in a catalog older than one owner per location."""
        if callable(self._holders):
            self._holders = dict(self._holders())
        return self._holders

    @property
    def locations(self) -> Mapping[str, str]:
        """Physical prefix -> one dataset there (the first name; :attr:`holders` has them all)."""
        return {prefix: names[0] for prefix, names in self.holders.items()}

    def is_admin(self, who: Principal) -> bool:
        return not self.admins.isdisjoint(who.identities)

    def governs(self, name: str) -> bool:
        """Whether a grant's pattern covers ``name``."""
        return any(covers(g.pattern, name) for g in self.grants)

    def allows(
        self, who: Principal, privilege: str, resource: Resource, *, strict: bool = False
    ) -> bool:
        """Whether ``who`` may ``privilege`` the resource. ``strict``: an ungoverned
        name is refused too (granting needs a real admin right, not an open path)."""
        if self.is_admin(who) or (resource.owner is not None and resource.owner == who.user):
            return True
        ids, need = who.identities, _RANK[privilege]
        for g in self.grants:
            strong = g.principal in ids and _RANK[g.privilege] >= need
            if strong and covers(g.pattern, resource.name):
                return True
        return not strict and not resource.dataset and not self.governs(resource.name)

    def may_see(self, who: Principal, resource: Resource) -> bool:
        """Whether ``who`` may learn that the resource exists (may read it)."""
        return self.allows(who, "read", resource)

    def shown(self, who: Principal, resource: Resource) -> str:
        """The resource as a refusal names it to ``who``: a dataset ``who`` may not read is
        not named (the refusal must not tell that it exists, nor who owns it)."""
        if resource.dataset and not self.may_see(who, resource):
            return f"governed by a dataset {who} may not see"
        return resource.describe()

    def dataset(self, name: str) -> Resource:
        """The resource for a dataset name (a name not yet in the catalog is a path)."""
        owner = self.owners.get(name)
        return Resource(name, owner is not None, owner)

    def covering(self, physical: Iterable[str]) -> list[str]:
        """Every dataset whose location is or contains one of the ``physical`` URLs,
        innermost first (then by name)."""
        found: dict[str, int] = {}
        if self.holders:
            for url in physical:
                for depth, prefix in enumerate(_ancestors(url)):
                    for name in self.holders.get(prefix, ()):
                        found[name] = min(depth, found.get(name, depth))
        return sorted(found, key=lambda name: (found[name], name))

    def located_all(self, logical: str, physical: Iterable[str]) -> tuple[Resource, ...]:
        """Every dataset holding the path (a request needs the privilege on each: the most
        restrictive grants apply), or the plain path when no dataset holds it."""
        names = self.covering(physical)
        if not names:
            return (Resource(logical),)
        return tuple(Resource(name, True, self.owners.get(name)) for name in names)

    def inside(self, physical: Iterable[str]) -> list[str]:
        """Every dataset with a location strictly inside one of the ``physical`` URLs, sorted."""
        urls = {url.rstrip("/") for url in physical}
        return sorted(
            {
                name
                for prefix, names in self.holders.items()
                if any(prefix.startswith(url + "/") for url in urls)
                for name in names
            }
        )

    def overlapping(self, physical: Iterable[str]) -> list[str]:
        """Every dataset whose location is, contains, or lies inside one of the ``physical``
        URLs (the datasets a new dataset there would share bytes with), sorted."""
        urls = {url.rstrip("/") for url in physical}
        return sorted(set(self.covering(urls)) | set(self.inside(urls)))


def physical_prefixes(source: str, config: Config) -> set[str]:
    """Where a version's source lives, on every tier of its mount, in every spelling its
    storage kind knows (a PFS path also by its real path)."""
    if source.startswith("aif://"):
        try:
            mount, rel = config.resolve(clean_path(source))
        except (CatalogError, OSError, ValueError):
            return set()
    else:
        kind = kind_of_url(source)
        if kind is None:  # a location no installed kind serves: only its own spelling
            return {source.rstrip("/")}
        spellings = kind.aliases(kind.normalise(source))
        located = next(filter(None, map(config.tier_at, sorted(spellings))), None)
        if located is None:
            return spellings
        mount, _tier, rel = located
    urls: set[str] = set() if source.startswith("aif://") else set(spellings)
    for tier in mount.tiers:
        urls |= tier.storage_kind.aliases(join(tier.url, rel))
    return urls


def load_policy(conn: sqlite3.Connection, config: Config) -> Policy:
    """Read grants, admins and dataset locations into a :class:`Policy`."""
    grants = [
        Grant(r["principal"], r["privilege"], r["pattern"], r["granted_by"], r["created"])
        for r in conn.execute("SELECT * FROM grants ORDER BY pattern, principal, privilege")
    ]
    admins = [r["principal"] for r in conn.execute("SELECT principal FROM admins")]
    owners = dict(conn.execute("SELECT name, owner FROM datasets").fetchall())

    def holders() -> dict[str, tuple[str, ...]]:
        found: dict[str, set[str]] = {}
        for name, source in conn.execute(
            "SELECT DISTINCT d.name, v.source FROM datasets d"
            " JOIN versions v ON v.dataset_id = d.id"
        ).fetchall():
            for prefix in physical_prefixes(source, config):
                found.setdefault(prefix, set()).add(name)
        return {prefix: tuple(sorted(names)) for prefix, names in found.items()}

    return Policy(grants, admins, owners, holders)


def bootstrap_admin(conn: sqlite3.Connection) -> None:
    """Make the user creating (or upgrading) the catalog its first admin."""
    if conn.execute("SELECT 1 FROM admins LIMIT 1").fetchone() is None:
        conn.execute(
            "INSERT INTO admins (principal, created) VALUES (?, ?)",
            (f"user:{current_user()}", time.time()),
        )


def read_scope(policy: Policy, who: Principal, dialect: str = "sqlite") -> Scope | None:
    """An SQL condition on datasets ``d`` equal to "``who`` may read it" (None: everything).

    SQLite's GLOB means what a pattern means (``*`` crosses ``/``; ``[!x]`` is
    written ``[^x]``), and ``name GLOB 'p/*'`` is "an ancestor matches p". PostgreSQL
    has no GLOB: a pattern there is an exact name or a literal prefix (never LIKE, whose
    ``%`` and ``_`` a dataset name may hold), see :func:`._postgres.glob_condition`.
    """
    if policy.is_admin(who):
        return None
    sql, params = ["d.owner = ?"], [who.user]
    ids = who.identities
    for pattern in sorted({g.pattern for g in policy.grants if g.principal in ids}):
        if dialect == "postgresql":
            condition, values = glob_condition("d.name", pattern)
            sql.append(condition)
            params += values
            continue
        glob = pattern.replace("[!", "[^")
        sql.append("d.name GLOB ? OR d.name GLOB ?")
        params += [glob, f"{glob}/*"]
    return Scope(" OR ".join(sql), tuple(params))

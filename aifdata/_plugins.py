"""One registry of plug-ins of one kind: built-ins by dotted path, third parties by entry point.

Formats, codecs and storage kinds are each a :class:`Registry`. As in fsspec's
``registry.py``, a plug-in is named by ``"module:object"`` and imported only
when first asked for; a missing library is an error that says what to install,
while an ImportError from inside aifdata stays the bug it is. As in xarray's
backend plug-ins, a third party's entry point that takes a name already in use
is ignored with a warning instead of breaking everything else.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Registry(Generic[T]):
    """Plug-ins of one kind, made into instances of ``T`` on first use.

    ``builtins`` maps a name to ``"module:object"``; ``hints`` a name to what to
    install when its module's library is missing. An unknown name or a missing
    library raises ``error`` (the message of an unknown name is ``unknown(name)``);
    The imported object (a class or an instance) must be a ``base``; with
    ``same_name``, its ``name`` must be the one it is registered under.
    """

    def __init__(
        self,
        group: str,
        noun: str,
        builtins: Mapping[str, str],
        error: type[Exception],
        unknown: Callable[[str], str],
        base: type,  # T itself, which may be abstract (mypy takes no abstract type[T])
        hints: Mapping[str, str] | None = None,
        default_hint: str = "",
    ) -> None:
        self.group = group
        self.noun = noun
        self.builtins = dict(builtins)
        self.error = error
        self.unknown = unknown
        self.base = base
        self.hints = dict(hints or {})
        self.default_hint = default_hint
        self._loaded: dict[str, T] = {}
        self._extra: dict[str, str] | None = None
        self._lock = threading.Lock()

    def entry_points(self) -> dict[str, str]:
        """``name -> "module:object"`` of the installed third-party plug-ins (read once)."""
        if self._extra is None:
            found: dict[str, str] = {}
            for ep in entry_points(group=self.group):
                if ep.name in self.builtins or ep.name in found:
                    warnings.warn(
                        f"{self.noun} {ep.name!r} from {ep.value} is ignored: the name is taken",
                        stacklevel=4,
                    )
                    continue
                found[ep.name] = ep.value
            self._extra = found
        return self._extra

    def rescan(self) -> None:
        """Forget the entry points read so far and the plug-ins they gave (after installing
        a package at run time)."""
        with self._lock:
            self._extra = None
            for name in [n for n in self._loaded if n not in self.builtins]:
                del self._loaded[name]

    def names(self) -> list[str]:
        """The built-ins in their order, then the others (installed or registered), sorted."""
        others = (set(self.entry_points()) | set(self._loaded)) - set(self.builtins)
        return [*self.builtins, *sorted(others)]

    def make(self, name: str, found: object) -> T:
        """The plug-in an imported object gives: the instance, or an instance of the class."""
        plugin = found() if isinstance(found, type) else found
        named = not name or getattr(plugin, "name", None) == name
        if not isinstance(plugin, self.base) or not named:
            what = f"{self.base.__module__.removesuffix('._base')}.{self.base.__name__}"
            raise self.error(f"{self.noun} {name!r}: {found!r} is not a {what} named {name!r}")
        return cast(T, plugin)

    def register(self, plugin: object) -> T:
        """Add (or replace) a plug-in, a class or an instance; returns the instance."""
        made = self.make("", plugin)
        with self._lock:
            self._loaded[getattr(made, "name", "")] = made
        return made

    def loaded(self, name: str) -> T | None:
        """The plug-in ``name`` if it is already made, else None (imports nothing)."""
        with self._lock:
            return self._loaded.get(name)

    def get(self, name: str) -> T:
        """The plug-in called ``name``, imported and made on first use."""
        found = self.loaded(name)
        if found is not None:
            return found
        target = self.builtins.get(name) or self.entry_points().get(name)
        if target is None:
            raise self.error(self.unknown(name))
        made = self.make(name, self.load(name, target))
        with self._lock:
            return self._loaded.setdefault(name, made)

    def load(self, name: str, target: str) -> object:
        """Import ``"module:object"``; a missing library says what to install."""
        hint = self.hints.get(name) or self.default_hint or f"install what provides {target}"
        return load(target, f"{self.noun} {name!r}", hint, self.error)


def load(target: str, what: str, hint: str, error: type[Exception]) -> object:
    """Import ``"module:object"`` for ``what``: a missing library raises ``error`` saying what
    to install, a broken third-party module ``error`` naming it; a failure inside aifdata
    stays the bug it is."""
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "aifdata":
            raise  # a bug in aifdata, not a missing extra
        raise error(f"{what} needs {exc.name or 'a missing package'}: {hint}") from exc
    except Exception as exc:  # a broken third-party plug-in: named, not a crash
        if module.partition(".")[0] == "aifdata":
            raise
        raise error(f"{what} from {target} cannot be loaded: {type(exc).__name__}: {exc}") from exc

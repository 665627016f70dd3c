"""The catalog: every component found, where it came from, and what failed to load."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ..errors import PluginError
from ..interfaces import KINDS, Component


def plural(kind: str) -> str:
    """A kind in words, plural, for messages: "focus measures", "losses" (not "losss")."""
    words = kind.replace("_", " ")
    return words + ("es" if words.endswith(("s", "x", "ch", "sh")) else "s")


@dataclass(frozen=True)
class ClassRef:
    """Where a class lives (``module:qualname``), so that a cached catalog can import it only when it is used."""

    module: str
    qualname: str

    def __str__(self) -> str:
        return f"{self.module}:{self.qualname}"

    @classmethod
    def parse(cls, text: str) -> "ClassRef":
        module, _, qualname = text.partition(":")
        return cls(module, qualname)

    @classmethod
    def of(cls, obj: type) -> "ClassRef | None":
        """The reference of ``obj``, or None when importing it back would not give ``obj`` (a class made in a
        function, or one replaced in its module since)."""
        ref = cls(obj.__module__, obj.__qualname__)
        try:
            return ref if "<locals>" not in ref.qualname and ref.load() is obj else None
        except Exception:
            return None

    def load(self) -> type:
        import importlib

        obj = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj


class ComponentInfo:
    """One registered component and the distribution that provided it.

    In a catalog read from the cache (:mod:`fusionkit.registry.snapshot`), ``cls`` is imported on first use and
    ``params`` (the component's ``Params`` model) without importing the component's own module, which for most
    components means without torch.
    """

    def __init__(self, kind: str, name: str, cls: "type[Component] | ClassRef", plugin: str, dist: str,
                 version: str, *, summary: str | None = None, reference: str | None = None,
                 params: ClassRef | None = None, checks_availability: bool | None = None):
        self.kind, self.name, self.plugin, self.dist, self.version = kind, name, plugin, dist, version
        self._cls, self._params = cls, params
        self._checks_availability = checks_availability
        self._summary, self._reference = summary, reference

    def __repr__(self) -> str:
        return f"ComponentInfo({self.kind}:{self.name} from {self.dist} {self.version}, plugin {self.plugin!r})"

    def _load(self, ref: ClassRef) -> type:
        try:
            return ref.load()
        except Exception as exc:
            from .snapshot import forget

            forget()
            raise PluginError(
                f"the {self.kind.replace('_', ' ')} {self.name!r} from {self.dist} {self.version} (plugin "
                f"{self.plugin!r}) could not be imported from {ref}: {type(exc).__name__}: {exc}",
                "run the command again (the plugin cache has been cleared); if it fails again, reinstall the "
                "plugin or see `fusionkit plugins list`") from exc

    @property
    def cls(self) -> type[Component]:
        if isinstance(self._cls, ClassRef):
            self._cls = self._load(self._cls)
        return self._cls

    @property
    def params(self) -> type:
        """The component's ``Params`` model (``cls.Params``)."""
        if isinstance(self._cls, ClassRef) and self._params is not None:
            if isinstance(self._params, ClassRef):
                self._params = self._load(self._params)
            return self._params
        return self.cls.Params

    @property
    def checks_availability(self) -> bool:
        """Whether the class has its own ``unavailable()`` check (a fuser calling an outside program): only those
        need importing to say whether they can run here."""
        if isinstance(self._cls, ClassRef) and self._checks_availability is not None:
            return self._checks_availability
        own = getattr(self.cls, "unavailable", None)
        if own is None:
            return False
        from ..interfaces import Component, Fuser

        base = Fuser if issubclass(self.cls, Fuser) else Component
        return getattr(own, "__func__", own) is not getattr(getattr(base, "unavailable", None), "__func__", None)

    @property
    def summary(self) -> str:
        return self._summary if self._summary is not None else getattr(self.cls, "summary", "")

    @property
    def reference(self) -> str:
        return self._reference if self._reference is not None else getattr(self.cls, "reference", "")


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded or registered: shown by ``fusionkit plugins list``, not fatal."""

    plugin: str
    dist: str
    cause: str


@dataclass
class Catalog:
    """Lookup of components by kind and name, with did-you-mean errors and collision detection."""

    components: dict[tuple[str, str], ComponentInfo] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], list[ComponentInfo]] = field(default_factory=dict)
    failures: list[LoadFailure] = field(default_factory=list)
    plugins: list[tuple[str, str, str]] = field(default_factory=list)  # (plugin, dist, version) loaded

    def add(self, info: ComponentInfo) -> None:
        key = (info.kind, info.name)
        if key in self.conflicts:
            self.conflicts[key].append(info)
        elif key in self.components:
            first = self.components.pop(key)
            self.conflicts[key] = [first, info]
        else:
            self.components[key] = info

    def names(self, kind: str) -> list[str]:
        names = {n for (k, n) in self.components if k == kind} | {n for (k, n) in self.conflicts if k == kind}
        return sorted(names)

    def all(self, kind: str | None = None) -> list[ComponentInfo]:
        items = [i for i in self.components.values() if kind is None or i.kind == kind]
        return sorted(items, key=lambda i: (i.kind, i.name))

    def has(self, kind: str, name: str) -> bool:
        return (kind, name) in self.components

    def find(self, name: str) -> list[ComponentInfo]:
        """Every component called ``name``, whatever its kind (for ``plugins show``)."""
        return [i for (k, n), i in self.components.items() if n == name]

    def suggest(self, kind: str, name: str) -> str | None:
        close = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.5)
        return close[0] if close else None

    def get(self, kind: str, name: str) -> ComponentInfo:
        """The component, or a :class:`PluginError` that names the fix."""
        if kind not in KINDS:
            raise PluginError(f"unknown component kind {kind!r}", f"use one of: {', '.join(KINDS)}")
        key = (kind, name)
        if key in self.conflicts:
            who = " and ".join(f"{i.dist} {i.version} (plugin {i.plugin!r})" for i in self.conflicts[key])
            raise PluginError(
                f"two installed distributions both provide the {kind.replace('_', ' ')} {name!r}: {who}",
                "uninstall one of them, or limit which plugin distributions load with "
                "FUSIONKIT_LOAD_PLUGINS=dist1,dist2",
            )
        if key not in self.components:
            raise PluginError(f"unknown {kind.replace('_', ' ')} {name!r}", self.unknown_hint(kind, name))
        return self.components[key]

    def unknown_hint(self, kind: str, name: str) -> str:
        guess = self.suggest(kind, name)
        installed = ", ".join(self.names(kind)) or "none"
        lead = f"did you mean {guess!r}? " if guess else ""
        return f"{lead}Installed {plural(kind)}: {installed}. " + (self.failure_note() or
                                                                   "See `fusionkit plugins list`.")

    def failure_note(self) -> str:
        """For "unknown component" messages: which plugins failed to load (one of them may provide it), or ""."""
        if not self.failures:
            return ""
        shown = "; ".join(f"{f.plugin!r} from {f.dist} ({f.cause})" for f in self.failures[:3])
        more = f" and {len(self.failures) - 3} more" if len(self.failures) > 3 else ""
        return (f"{len(self.failures)} plugin(s) failed to load and may provide it: {shown}{more}. Fix the "
                "plugin (`fusionkit plugins list` shows every failure), or reinstall it.")

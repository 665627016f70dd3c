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
class ComponentInfo:
    """One registered component and the distribution that provided it."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str        # entry-point (or in-process plugin) name
    dist: str          # distribution name, e.g. "fusionkit" or "fusionkit-sharpness"
    version: str

    @property
    def summary(self) -> str:
        return getattr(self.cls, "summary", "")

    @property
    def reference(self) -> str:
        return getattr(self.cls, "reference", "")


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
        return (f"{lead}Installed {plural(kind)}: {installed}. "
                f"See `fusionkit plugins list`.")

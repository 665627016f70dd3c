"""Builds an isolated plugin manager and catalog from the ``fusionkit`` entry-point group.

Entry points are loaded one at a time: a plugin that fails to import (or registers something invalid) is
recorded as failed with a one-line cause and the rest keep working. Environment switches:

- ``FUSIONKIT_STRICT_PLUGINS=1``: any plugin failure is fatal (for plugin authors and CI);
- ``FUSIONKIT_LOAD_PLUGINS=dist1,dist2``: load only these third-party distributions (fusionkit's own
  built-ins always load; an empty value loads no third-party plugin).
"""
from __future__ import annotations

import os
import re
from importlib import metadata
from typing import Iterable

import pluggy

from ..errors import PluginError
from ..interfaces import KINDS, Component, Params
from . import hookspecs
from .catalog import Catalog, ComponentInfo, LoadFailure

GROUP = "fusionkit"
BUILTIN_DIST = "fusionkit"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line. pluggy's validation errors put the reason on later lines, so lines are
    joined with "; " rather than dropped (and the result is capped at 400 characters)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > 400:
        text = text[:399] + "…"
    return f"{type(exc).__name__}: {text}".rstrip(": ")


def _check_component(cls: object, kind: str) -> str | None:
    """Why ``cls`` cannot be registered as ``kind``, or None when it is fine."""
    base = KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"registered {cls!r} as a {kind}, but it does not subclass fusionkit.interfaces.{base.__name__}"
    for attr in ("name", "summary", "reference"):
        if not isinstance(getattr(cls, attr, None), str) or not getattr(cls, attr):
            return f"{cls.__name__} has no {attr!r} string"
    if not _NAME_RE.match(cls.name):
        return f"{cls.__name__}.name {cls.name!r} is not snake_case"
    p = getattr(cls, "Params", None)
    if not (isinstance(p, type) and issubclass(p, Params)):
        return f"{cls.__name__}.Params must subclass fusionkit.interfaces.Params"
    return None


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    """(distribution name, version) of an entry point; a dist-info without METADATA has neither."""
    try:  # newer Pythons warn, and may raise, on metadata with no Name/Version
        name, version = ep.dist.name, ep.dist.version
    except Exception:
        name = version = None
    return name or "unknown", version or "?"


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: (_dist_of(ep)[0], ep.name))


def build_catalog(
    *,
    load_entry_points: bool = True,
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    extra_plugins: Iterable[tuple[object, str]] = (),
    strict: bool | None = None,
    allow: Iterable[str] | None = None,
) -> Catalog:
    """Discover plugins and return a fresh :class:`Catalog` (no global state).

    ``extra_plugins`` are ``(module_or_object, dist_name)`` pairs registered in-process (tests, notebooks).
    ``strict`` and ``allow`` default to the environment variables described in the module docstring.
    """
    if strict is None:
        strict = os.environ.get("FUSIONKIT_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
    if allow is None and "FUSIONKIT_LOAD_PLUGINS" in os.environ:
        allow = [a for a in os.environ["FUSIONKIT_LOAD_PLUGINS"].split(",") if a.strip()]
    if allow is not None:
        allow = list(allow)
    allowed = None if allow is None else {_norm(a.strip()) for a in allow}

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    catalog = Catalog()
    # pluggy name -> (plugin, dist, version). Plugins are registered with pluggy as "dist:plugin": entry-point
    # names are only unique within one distribution, and two distributions may well both call theirs "sharpness".
    owners: dict[str, tuple[str, str, str]] = {}

    def fail(plugin: str, dist: str, cause: str) -> None:
        if strict:
            raise PluginError(f"plugin {plugin!r} from {dist} failed: {cause}",
                              "fix or uninstall the plugin, or unset FUSIONKIT_STRICT_PLUGINS")
        catalog.failures.append(LoadFailure(plugin, dist, cause))

    def add_plugin(obj: object, plugin: str, dist: str, version: str) -> None:
        key = f"{dist}:{plugin}"
        while key in owners or pm.has_plugin(key):
            key += "+"
        try:
            pm.register(obj, name=key)
            pm.check_pending()
        except Exception as exc:  # bad hookimpl, misspelled hook name
            if pm.get_plugin(key) is obj:  # never the earlier registration of an object offered twice
                pm.unregister(name=key)
            fail(plugin, dist, _one_line(exc))
            return
        owners[key] = (plugin, dist, version)
        catalog.plugins.append((plugin, dist, version))

    eps = list(entry_points) if entry_points is not None else (_entry_points() if load_entry_points else [])
    if allowed is not None and (entry_points is not None or load_entry_points):
        _report_unmatched(allow, eps, fail)
    for ep in eps:
        dist, version = _dist_of(ep)
        if allowed is not None and _norm(dist) != BUILTIN_DIST and _norm(dist) not in allowed:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # an import error must not brick the host
            fail(ep.name, dist, _one_line(exc))
            continue
        add_plugin(obj, ep.name, dist, version)
    for i, (obj, dist) in enumerate(extra_plugins):
        add_plugin(obj, getattr(obj, "__name__", f"in-process-{i}"), dist, "local")

    for kind, hook_name in hookspecs.HOOK_FOR_KIND.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin, dist, version = owners.get(impl.plugin_name, (impl.plugin_name, "unknown", "?"))
            registered: list[type[Component]] = []

            def register(cls, _kind=kind, _registered=registered):
                problem = _check_component(cls, _kind)
                if problem:
                    raise PluginError(problem)
                _registered.append(cls)

            try:
                impl.function(register=register)
            except Exception as exc:
                fail(plugin, dist, _one_line(exc))
                continue
            for cls in registered:
                catalog.add(ComponentInfo(kind, cls.name, cls, plugin, dist, version))

    if strict and catalog.conflicts:
        key, infos = next(iter(catalog.conflicts.items()))
        catalog.get(*key)  # raises the collision error naming both distributions
    return catalog


def _report_unmatched(allow: Iterable[str], eps: list[metadata.EntryPoint], fail) -> None:
    """An allowlist entry that names no installed plugin distribution is a mistake worth a line, not silence."""
    have = sorted({_dist_of(ep)[0] for ep in eps} - {BUILTIN_DIST})
    for name in allow:
        name = name.strip()
        if name and _norm(name) not in {_norm(d) for d in have} and _norm(name) != BUILTIN_DIST:
            import difflib

            close = difflib.get_close_matches(name, have, n=1, cutoff=0.6)
            fail("FUSIONKIT_LOAD_PLUGINS", name,
                 f"no installed distribution named {name!r} provides fusionkit plugins"
                 + (f" (did you mean {close[0]!r}?)" if close else "")
                 + f"; installed plugin distributions: {', '.join(have) or 'none'}")


_default: Catalog | None = None
_default_env: tuple = ()


def default_catalog() -> Catalog:
    """The process-wide catalog from installed entry points (built once, on first use).

    Read from the catalog cache when nothing has changed since it was written (no plugin module is imported until
    a component is used), else built and cached; see :mod:`fusionkit.registry.snapshot`.
    """
    global _default, _default_env
    env = (os.environ.get("FUSIONKIT_LOAD_PLUGINS"), os.environ.get("FUSIONKIT_STRICT_PLUGINS"))
    if _default is not None and env != _default_env:  # the switches changed in this process: they decide the catalog
        _default = None
    if _default is None:
        from . import snapshot

        strict = os.environ.get("FUSIONKIT_STRICT_PLUGINS", "") not in ("", "0", "false", "no")
        catalog = None if strict else snapshot.load()
        if catalog is None:
            catalog = build_catalog()
            if not strict:
                snapshot.save(catalog)
        if not any(i.dist == BUILTIN_DIST for i in catalog.components.values()):
            raise PluginError(
                "fusionkit's built-in components are not registered (no `fusionkit` entry points found)",
                "install the package so its entry points exist: `pip install -e .` in the checkout",
            )
        _default, _default_env = catalog, env
    return _default


def reset_default_catalog() -> None:
    """Forget the cached catalog (after installing a plugin in the same process)."""
    global _default
    _default = None

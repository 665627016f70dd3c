"""The catalog cache: what a full catalog build found, kept on disk so that light commands import no plugin module.

Building the catalog imports every plugin module, and with them torch, NumPy and SciPy (about 2 s). Commands that
only look things up (``fusionkit validate``, ``run --dry-run``, ``plugins list``) need none of that: a snapshot
records each component's kind, name, plugin, distribution, summary and reference and *where* its class and its
``Params`` live, and :func:`load` turns it back into a :class:`~fusionkit.registry.Catalog` whose classes are
imported on first use. Validation then imports only the ``Params`` modules (the built-ins keep theirs in
``fusionkit_plugins.params``, free of torch).

A snapshot is used only while nothing it depends on has changed. Its key holds fusionkit's version, the Python
interpreter, the ``FUSIONKIT_LOAD_PLUGINS`` allowlist and every ``fusionkit`` entry point (distribution, version,
target); beside it, a digest of the size and modification time of every source file of the packages involved
(fusionkit itself, each entry point's package and each package a registered class or ``Params`` comes from). Any
difference, an unreadable or corrupt file, or a class that can no longer be found means a full build, which
writes a new snapshot. Strict mode (``FUSIONKIT_STRICT_PLUGINS``) always builds, so that failures raise.

Location: ``$FUSIONKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/fusionkit``, else ``~/.cache/fusionkit``; one file per
Python environment. ``FUSIONKIT_CATALOG_CACHE=0`` turns the cache off. A cache that cannot be written is skipped.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from importlib import metadata
from pathlib import Path

from .catalog import Catalog, ClassRef, ComponentInfo, LoadFailure

FORMAT = 1
GROUP = "fusionkit"


def enabled() -> bool:
    return os.environ.get("FUSIONKIT_CATALOG_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    if os.environ.get("FUSIONKIT_CACHE_DIR"):
        return Path(os.environ["FUSIONKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fusionkit"


def cache_file() -> Path:
    """One file per Python environment (``sys.prefix``) and interpreter."""
    env = hashlib.sha1(f"{sys.prefix}\0{sys.version}".encode()).hexdigest()[:12]
    return cache_dir() / f"catalog-{env}.json"


def _key() -> dict:
    from .. import __version__
    from .manager import _dist_of

    eps = []
    for ep in metadata.entry_points(group=GROUP):
        dist, version = _dist_of(ep)
        eps.append([dist, version, ep.name, ep.value])
    return {"format": FORMAT, "fusionkit": __version__, "python": sys.version, "prefix": sys.prefix,
            "allow": os.environ.get("FUSIONKIT_LOAD_PLUGINS"), "entry_points": sorted(eps)}


def _package_files(top: str) -> list[Path] | None:
    """Every source file of the top-level package or module ``top`` (found without importing it)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        files = []
        for root in spec.submodule_search_locations:
            for folder, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
                files += [Path(folder) / n for n in sorted(names) if n.endswith((".py", ".pyi", ".so", ".pyd"))]
        return files
    return [Path(spec.origin)] if spec.origin and os.path.exists(spec.origin) else None


def _digest(packages: list[str]) -> str | None:
    """Size and modification time of every source file of ``packages``; None when one cannot be located."""
    h = hashlib.sha1()
    for top in sorted(set(packages)):
        files = _package_files(top)
        if files is None:
            return None
        for f in files:
            try:
                st = f.stat()
            except OSError:
                return None
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _info_row(info: ComponentInfo) -> dict | None:
    cls = info.cls
    ref, params = ClassRef.of(cls), ClassRef.of(cls.Params)
    if ref is None or params is None:
        return None
    return {"kind": info.kind, "name": info.name, "plugin": info.plugin, "dist": info.dist, "version": info.version,
            "cls": str(ref), "params": str(params), "summary": info.summary, "reference": info.reference,
            "checks_availability": info.checks_availability}


def save(catalog: Catalog) -> Path | None:
    """Write ``catalog`` (a full build of the installed entry points) as the snapshot; None when it cannot be
    cached (the cache is off or unwritable, or a class cannot be found again by module and name)."""
    if not enabled():
        return None
    rows, conflicts = [], []
    for info in catalog.components.values():
        row = _info_row(info)
        if row is None:
            return None
        rows.append(row)
    for infos in catalog.conflicts.values():
        group = [_info_row(i) for i in infos]
        if any(r is None for r in group):
            return None
        conflicts.append(group)
    packages = {"fusionkit"} | {_top(v) for *_, v in _key()["entry_points"]}
    packages |= {_top(r[k]) for r in rows + [r for g in conflicts for r in g] for k in ("cls", "params")}
    digest = _digest(sorted(packages))
    if digest is None:
        return None
    data = {"key": _key(), "packages": sorted(packages), "digest": digest, "components": rows,
            "conflicts": conflicts, "failures": [[f.plugin, f.dist, f.cause] for f in catalog.failures],
            "plugins": [list(p) for p in catalog.plugins]}
    path = cache_file()
    try:
        from ..io import write_text

        write_text(path, json.dumps(data, indent=1) + "\n")
    except OSError:
        return None
    return path


def load() -> Catalog | None:
    """The cached catalog, or None when there is none or anything it depends on has changed."""
    if not enabled():
        return None
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        if data["key"] != _key() or _digest(data["packages"]) != data["digest"]:
            return None
        catalog = Catalog()
        for row in data["components"]:
            catalog.add(_info(row))
        for group in data["conflicts"]:
            for row in group:
                catalog.add(_info(row))
        catalog.failures = [LoadFailure(*f) for f in data["failures"]]
        catalog.plugins = [tuple(p) for p in data["plugins"]]
        return catalog
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget() -> None:
    """Remove the snapshot (a class it names could not be imported): the next start builds afresh."""
    try:
        cache_file().unlink()
    except OSError:
        pass


def _info(row: dict) -> ComponentInfo:
    return ComponentInfo(row["kind"], row["name"], ClassRef.parse(row["cls"]), row["plugin"], row["dist"],
                         row["version"], summary=row["summary"], reference=row["reference"],
                         params=ClassRef.parse(row["params"]), checks_availability=row.get("checks_availability"))

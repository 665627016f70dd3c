"""Phase 2 of validation: a component reference (``{name, params}``) looked up in the catalog, its ``params``
validated against the component's own ``Params`` and completed with its defaults."""
from __future__ import annotations

import copy
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .context import MISSING, SpecContext, get_at
from .messages import join_hints, translate

if typing.TYPE_CHECKING:  # pragma: no cover
    from ..registry import Catalog


def resolve_component(view: dict, loc: tuple, kind: str, catalog: "Catalog", ctx: SpecContext) -> None:
    ref = get_at(view, loc)
    if not isinstance(ref, dict):
        return
    name, params = ref.get("name"), ref.get("params", {})
    if not isinstance(name, str) or not isinstance(params, dict):
        return  # phase 1 reported it
    words = kind.replace("_", " ")
    if (kind, name) in catalog.conflicts:  # two distributions provide it: the catalog's error names both
        from ..errors import PluginError
        try:
            catalog.get(kind, name)
        except PluginError as exc:
            ctx.add(loc + ("name",), exc.message, exc.hint)
        return
    if not catalog.has(kind, name):
        from ..registry.catalog import plural
        guess = catalog.suggest(kind, name)
        lead = f"did you mean {guess!r}? " if guess else ""
        installed = ", ".join(catalog.names(kind)) or "none"
        default = (get_at(ctx.original, loc + ("name",), MISSING) is MISSING
                   and ctx.origin(loc + ("name",)) is None)
        ctx.add(loc + ("name",), f"unknown {words} {name!r}" + (" (the default)" if default else ""),
                f"{lead}Installed {plural(kind)}: {installed}. " + (catalog.failure_note() or
                f"See `fusionkit plugins list --kind {kind}`."))
        return
    model = catalog.get(kind, name).params  # the Params model only: no need to import the component (torch)
    try:
        validated = model.model_validate(params)
    except ValidationError as exc:
        see = f"See `fusionkit plugins show {name}` for its parameters."
        for ploc, message, hint in translate(exc, model, params, owner=f"{name} ({words})"):
            ctx.add(loc + ("params",) + ploc, message, join_hints(hint, see))
        return
    ref["params"] = validated.model_dump(mode="json")


def overlay(defaults: Any, raw: Any) -> Any:
    """``raw`` with the spec defaults filled in where both are mappings (used when phase 1 failed)."""
    if isinstance(defaults, dict) and isinstance(raw, dict):
        out = copy.deepcopy(defaults)
        for k, v in raw.items():  # a component's params replace the default ones, never merge with them
            out[k] = overlay(defaults[k], v) if k in defaults and k != "params" else copy.deepcopy(v)
        return out
    return copy.deepcopy(raw)


def model_defaults(model: type[BaseModel]) -> dict:
    """The defaults of a spec model's fields as JSON, for the fields that have one (a model with required fields
    cannot be instantiated empty); what ``apply_overrides`` materialises missing sections from."""
    out = {}
    for name, f in model.model_fields.items():
        if f.is_required():
            continue
        value = f.get_default(call_default_factory=True)
        out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value

"""The JSON Schema of a pipeline spec that knows the installed components (``fusionkit schema``).

The spec model alone leaves a component's ``name`` a free string and its ``params`` an open mapping, so an editor
could complete nothing that matters. Here every component slot (``focus_measure``, ``generator``, ``losses[*]``,
...) gets its own definition: ``name`` is one of the installed components of that slot's kind (each with its
one-line summary), and ``params`` is checked against the named component's own ``Params`` schema (types, bounds,
defaults, descriptions), tied to the name by ``if``/``then`` rules; a slot whose name has a default (``generator:
skipnet``) checks that component's parameters when no name is written. Standard JSON Schema 2020-12: VS Code and
the YAML language server complete and check specs with it.
"""
from __future__ import annotations

import copy
import typing
from typing import Any

from .spec import PipelineSpec
from .specfile import json_schema

if typing.TYPE_CHECKING:  # pragma: no cover
    from .registry import Catalog

#: where the spec names components, as a path through the schema ("[]" = the list's items), and their kind
SLOTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("focus_measure",), "focus_measure"),
    (("generator",), "generator"),
    (("decision_embedding", "generator"), "generator"),
    (("decision_embedding", "loss"), "loss"),
    (("downsampler",), "resampler"),
    (("upsampler",), "resampler"),
    (("fuser",), "fuser"),
    (("generator", "warm_start"), "fuser"),
    (("light_field",), "light_field"),
    (("losses", "[]"), "loss"),
)


def spec_schema(catalog: "Catalog") -> dict:
    """JSON Schema (draft 2020-12) of a pipeline spec with the components of ``catalog``."""
    schema = json_schema(PipelineSpec)
    defs = schema.setdefault("$defs", {})
    params_refs: dict[tuple[str, str], str] = {}
    for info in catalog.all():
        if any(kind == info.kind for _, kind in SLOTS):
            params_refs[(info.kind, info.name)] = _add_params(defs, info)
    for path, kind in SLOTS:
        holder, key = _find(schema, path)
        if holder is None:
            continue
        holder[key] = _retarget(holder[key], lambda ref: _component_def(defs, ref, kind, catalog, params_refs))
    return schema


def _add_params(defs: dict, info) -> str:
    """Put the component's ``Params`` schema (and its own nested definitions) into ``defs``; its ``$ref``."""
    prefix = f"{info.kind}.{info.name}."
    params = info.params.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
    for name, sub in params.pop("$defs", {}).items():
        defs[prefix + name] = sub
    params["title"] = f"{info.name} parameters"
    params.setdefault("description", f"parameters of the {info.kind.replace('_', ' ')} {info.name!r} "
                                     f"(`fusionkit plugins show {info.name}`)")
    defs[prefix + "Params"] = params
    return f"#/$defs/{prefix}Params"


def _find(schema: dict, path: tuple[str, ...]) -> tuple[dict | None, str]:
    """The mapping and key that hold the schema at ``path`` (following ``$ref`` on the way)."""
    node: Any = schema
    holder, key = None, ""
    for step in path:
        node = _deref(schema, node)
        if step == "[]":
            holder, key = node, "items"
        else:
            holder, key = node.get("properties", {}), step
        if key not in holder:
            return None, ""
        node = holder[key]
        if step != path[-1] and isinstance(node, dict) and "anyOf" in node:
            node = next((n for n in node["anyOf"] if n.get("type") != "null"), node)
    return holder, key


def _deref(schema: dict, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _retarget(node: dict, replace) -> dict:
    """``node`` with its ``$ref`` (direct, or inside ``anyOf`` for an optional slot) replaced by ``replace(ref)``."""
    node = copy.deepcopy(node)
    if "$ref" in node:
        node["$ref"] = replace(node["$ref"])
    for alt in node.get("anyOf", []):
        if "$ref" in alt:
            alt["$ref"] = replace(alt["$ref"])
    return node


def _component_def(defs: dict, ref: str, kind: str, catalog: "Catalog", params_refs: dict) -> str:
    """A copy of the slot model's definition (``ComponentRef``, ``GeneratorSpec``, ``LossTerm``, ...) that knows
    the components of ``kind``; defined once per model and kind."""
    model = ref.rsplit("/", 1)[1]
    name = f"{model}.{kind}"
    if name in defs:
        return f"#/$defs/{name}"
    node = copy.deepcopy(defs[model])
    infos = [i for i in catalog.all(kind)]
    name_field = node["properties"]["name"]
    node["properties"]["name"] = {
        "description": name_field.get("description", f"a registered {kind.replace('_', ' ')}"),
        **({"default": name_field["default"]} if "default" in name_field else {}),
        "anyOf": [{"const": i.name, "description": i.summary} for i in infos],
    }
    node["title"] = f"{model} ({kind.replace('_', ' ')})"
    rules = [{"if": {"properties": {"name": {"const": i.name}}, "required": ["name"]},
              "then": {"properties": {"params": {"$ref": params_refs[(kind, i.name)]}}}} for i in infos]
    default = name_field.get("default")
    if isinstance(default, str) and (kind, default) in params_refs:
        rules.append({"if": {"not": {"required": ["name"]}},
                      "then": {"properties": {"params": {"$ref": params_refs[(kind, default)]}}}})
    node["allOf"] = rules
    defs[name] = node
    return f"#/$defs/{name}"

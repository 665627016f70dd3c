"""The spec machinery shared by every YAML file fusionkit reads: run, ablation and training specs.

One mechanism, in the order a loader uses it:

- :func:`read_yaml` (``yamlfile``): the file as data plus its YAML node tree, for ``file:line`` in every message;
  duplicate keys are problems, never "last one wins";
- :func:`apply_overrides` (``overrides``): ``--set KEY=VALUE`` with the dotted-key syntax of :func:`parse_key`,
  each value remembering the override that set it;
- phase 1, the structure: ``Model.model_validate`` and :func:`translate` (``messages``), which turns pydantic's
  errors into located sentences with a fix and a did-you-mean;
- phase 2, the components: :func:`resolve_component` (``components``) looks a ``{name, params}`` reference up in
  the plugin catalog and validates its ``params`` against that component's own ``Params``;
- :class:`SpecContext` (``context``) collects every problem on the way; the loader raises them together as one
  :class:`~fusionkit.errors.SpecError`.

:func:`json_schema` is what ``fusionkit schema`` prints for a spec model. ``fusionkit.validation`` (run specs),
``fusionkit.ablation.spec`` and ``fusionkit.training.spec`` are the loaders built on it.
"""
from __future__ import annotations

from pydantic import BaseModel

from .components import model_defaults, overlay, resolve_component
from .context import MISSING, Loc, SpecContext, dotted, get_at, line_of, resolve_path
from .messages import a_kind, describe, join_hints, non_finite, non_finite_numbers, show, show_number, translate
from .overrides import EXAMPLES, OverrideError, apply_overrides, parse_key, set_loc, set_path, shell_set
from .yamlfile import read_yaml

__all__ = ["MISSING", "Loc", "SpecContext", "dotted", "get_at", "line_of", "read_yaml", "parse_key",
           "apply_overrides", "set_path", "set_loc", "OverrideError", "EXAMPLES", "shell_set", "translate",
           "join_hints", "non_finite", "non_finite_numbers", "describe", "show", "show_number", "a_kind",
           "resolve_component", "overlay", "model_defaults", "resolve_path", "json_schema"]


def json_schema(model: type[BaseModel]) -> dict:
    """JSON Schema (draft 2020-12) of a spec model, for editor completion and checking."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}

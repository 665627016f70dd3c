"""Load a pipeline spec, apply ``--set`` overrides, validate it in two phases and resolve it.

``load_spec("spec.yaml", ["iterations=50"])`` returns a :class:`ResolvedSpec`: every default filled in, every
component's ``params`` validated against that component's ``Params`` and completed, input paths resolved against
the spec file's folder. Anything wrong is reported all at once as one :class:`~fusionkit.errors.SpecError` whose
problems each say where (``file:line`` or the ``--set`` that caused it, plus the dotted path), what, and the fix.

Phases:

0. read: the file exists, is YAML, and its top level is a mapping; overrides are parsed and applied;
1. structure: :class:`~fusionkit.spec.PipelineSpec` (unknown keys, types, ranges, choices);
2. components: each component reference is looked up in the catalog and its ``params`` validated against the
   component's ``Params``; then the cross-field checks (inputs, losses).
"""
from __future__ import annotations

import copy
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import SpecError, SpecProblem
from .presets import PRESET_NAMES, embedding_iterations, expand_preset
from .spec import PipelineSpec
from .specfile import MISSING as _MISSING
from .specfile import Loc, dotted, line_of, non_finite, non_finite_numbers, parse_key, shell_set
from .specfile import SpecContext as _Context
from .specfile import apply_overrides as _apply_spec_overrides
from .specfile import overlay as _overlay
from .specfile import read_yaml as _read_yaml
from .specfile import resolve_component as _resolve_component
from .specfile import resolve_path as _resolve_path
from .specfile import translate as _translate

if typing.TYPE_CHECKING:  # pragma: no cover
    from .registry import Catalog

__all__ = ["ResolvedSpec", "load_spec", "problem_at", "spec_json_schema", "COMPONENT_SLOTS"]

#: The component references of a spec: location -> kind. ``losses[i]`` is added per item.
COMPONENT_SLOTS: dict[tuple[str, ...], str] = {
    ("focus_measure",): "focus_measure",
    ("generator",): "generator",
    ("decision_embedding", "generator"): "generator",
    ("decision_embedding", "loss"): "loss",
    ("downsampler",): "resampler",
    ("upsampler",): "resampler",
    ("fuser",): "fuser",
    ("generator", "warm_start"): "fuser",
    ("light_field",): "light_field",
}


# ------------------------------------------------------------------------------------------------ the result

@dataclass
class ResolvedSpec:
    """A validated, fully resolved spec and where it came from."""

    spec: PipelineSpec
    source: str | None          # absolute path of the spec file; None for a dict
    base_dir: Path              # folder relative input paths were resolved against
    overrides: list[str] = field(default_factory=list)
    preset_values: dict[str, Any] = field(default_factory=dict)   # what `preset` filled in, by dotted key
    #: per input, how its path was resolved ("'near.png', given with --set, is relative to the current folder /x"),
    #: for messages about a missing input
    input_origins: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The resolved spec as plain JSON-able data (what the manifest records)."""
        return self.spec.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved spec as YAML that :func:`load_spec` accepts again."""
        head = [f"# resolved by fusionkit from {self.source or 'a Python dict'}"]
        if self.overrides:
            head.append("# overrides: " + " ".join(shell_set(o) for o in self.overrides))
        if self.spec.preset:
            filled = ", ".join(self.preset_values) or "nothing (the spec gives every value it sets)"
            head.append(f"# preset {self.spec.preset} filled in: {filled}")
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True,
                              width=110)
        return "\n".join(head) + "\n" + body


def spec_json_schema(catalog: "Catalog | None" = None) -> dict:
    """JSON Schema of :class:`PipelineSpec` (``fusionkit schema``), for editor completion and checking: with the
    installed components' names and parameters (:mod:`fusionkit.schema`)."""
    from .schema import spec_schema

    if catalog is None:
        from .registry import default_catalog
        catalog = default_catalog()
    return spec_schema(catalog)


# ------------------------------------------------------------------------------------------------ entry point

def load_spec(source: str | os.PathLike | Mapping, overrides: Sequence[str] = (), *,
              catalog: "Catalog | None" = None, require_inputs: bool = True) -> ResolvedSpec:
    """Read ``source`` (a YAML file path or a dict), apply ``overrides`` and validate; see the module docstring.

    ``require_inputs=False`` accepts a spec without ``inputs`` (the images are given as arrays instead).
    Raises :class:`SpecError` listing every problem found.
    """
    if isinstance(overrides, str):  # a single "k=v" string is a common slip
        overrides = [overrides]
    ctx = _Context()
    if isinstance(source, Mapping):
        ctx.file = "<dict>"
        data: Any = copy.deepcopy(dict(source))
        base_dir = Path.cwd()
        abs_source = None
    else:
        path = Path(source)
        ctx.file = str(source)
        abs_source = str(path.resolve())
        base_dir = path.resolve().parent
        data = _read_yaml(path, ctx)
        if data is _MISSING:
            raise SpecError(ctx.problems, source=ctx.file)

    ctx.original = copy.deepcopy(data)
    _apply_overrides(data, list(overrides), ctx)
    preset_values = (expand_preset(data, data["preset"])
                     if isinstance(data, dict) and data.get("preset") in PRESET_NAMES else {})

    if catalog is None:
        from .registry import default_catalog
        catalog = default_catalog()

    for loc, value in non_finite_numbers(data):  # NaN/inf anywhere, component params included
        ctx.add(loc, *non_finite(value))

    # phase 1: structure
    model: PipelineSpec | None = None
    try:
        model = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        for loc, message, hint in _translate(exc, PipelineSpec, data):
            ctx.add(loc, message, hint)

    # phase 2: components, on what parsed (defaults filled in where the structure is broken elsewhere)
    defaults = PipelineSpec().model_dump(mode="json")
    view = model.model_dump(mode="json") if model is not None else _overlay(defaults, data)
    for loc, kind in _slots(view):
        _resolve_component(view, loc, kind, catalog, ctx)
    _cross_checks(view, ctx, require_inputs, source_is_dict=isinstance(source, Mapping))

    if ctx.problems:
        raise SpecError(ctx.sorted_problems(), source=ctx.file)

    origins: list[str] = []
    if isinstance(view.get("inputs"), list):
        origins = [_input_origin(p, i, base_dir, ctx, isinstance(source, Mapping))
                   for i, p in enumerate(view["inputs"])]
        view["inputs"] = [_resolve_input(p, i, base_dir, ctx) for i, p in enumerate(view["inputs"])]
    if isinstance(view.get("light_field"), dict):
        view["light_field"]["path"] = _resolve_path(view["light_field"]["path"], ("light_field", "path"), base_dir, ctx)
    emb = view.get("decision_embedding")
    if isinstance(emb, dict) and emb.get("iterations") == "auto":  # a concrete budget in what is recorded
        emb["iterations"] = embedding_iterations(view["iterations"], "auto")
    spec = PipelineSpec.model_validate(view)
    return ResolvedSpec(spec=spec, source=abs_source, base_dir=base_dir, overrides=list(overrides),
                        preset_values=preset_values, input_origins=origins)


def problem_at(resolved: ResolvedSpec, loc: tuple, message: str, hint: str | None = None) -> SpecProblem:
    """A problem found after validation (e.g. an output folder that cannot be written), located like the others:
    at the ``--set`` that gave the value, else at its line in the spec file."""
    for raw in reversed(resolved.overrides):
        try:
            tokens = tuple(parse_key(raw.split("=", 1)[0].strip()))
        except ValueError:
            continue
        n = min(len(tokens), len(loc))
        if tokens[:n] == tuple(loc[:n]):
            return SpecProblem(dotted(loc), message, hint, file=shell_set(raw), override=raw)
    line = None
    if resolved.source:
        try:
            line = line_of(yaml.compose(Path(resolved.source).read_text(encoding="utf-8")), loc)
        except (OSError, yaml.YAMLError):
            pass
    return SpecProblem(dotted(loc), message, hint, line=line, file=resolved.source or "<dict>")



# ------------------------------------------------------------------------------------------------ overrides

def _apply_overrides(data: dict, overrides: list[str], ctx: _Context) -> None:
    """``--set`` overrides on a pipeline spec (the syntax and rules are :mod:`fusionkit.specfile.overrides`)."""
    _apply_spec_overrides(data, overrides, ctx, defaults=PipelineSpec().model_dump(mode="json"), is_slot=_is_slot)


def _is_slot(loc: Loc) -> bool:
    return tuple(loc) in COMPONENT_SLOTS or (len(loc) == 2 and loc[0] == "losses" and isinstance(loc[1], int))



# ------------------------------------------------------------------------------------------------ phase 2

def _slots(view: dict) -> list[tuple[tuple, str]]:
    """The component references that this spec actually uses, with their kinds."""
    lf = [(("light_field",), "light_field")] if isinstance(view.get("light_field"), dict) else []
    return lf + _pipeline_slots(view)


def _pipeline_slots(view: dict) -> list[tuple[tuple, str]]:
    method = view.get("method")
    if method == "fuser":  # a complete fuser replaces the focus measure, the embedding and the generator
        return [(("fuser",), "fuser"), (("upsampler",), "resampler")]
    out: list[tuple[tuple, str]] = [(("focus_measure",), "focus_measure")]
    if method != "composite":
        out.append((("generator",), "generator"))
        generator = view.get("generator")
        if isinstance(generator, dict) and isinstance(generator.get("warm_start"), dict):
            out.append((("generator", "warm_start"), "fuser"))
    emb = view.get("decision_embedding")
    if isinstance(emb, dict) and emb.get("enabled") is not False:
        out += [(("decision_embedding", "generator"), "generator"), (("decision_embedding", "loss"), "loss")]
    out += [(("downsampler",), "resampler"), (("upsampler",), "resampler")]
    losses = view.get("losses")
    if isinstance(losses, list):
        out += [(("losses", i), "loss") for i in range(len(losses))]
    return out



def _cross_checks(view: dict, ctx: _Context, require_inputs: bool, source_is_dict: bool) -> None:
    inputs = view.get("inputs")
    generator = view.get("generator")
    if view.get("crop") is not None and isinstance(generator, dict) and generator.get("residual") is True:
        ctx.add(("crop",), "random-crop iterations (`crop`) cannot be combined with `generator.residual: true` "
                "(the residual's base image exists only whole)",
                "set `crop: null`, or `generator.residual: false`")
    warm = generator.get("warm_start") if isinstance(generator, dict) else None
    if (isinstance(warm, dict) and view.get("method", "dfp") == "dfp" and generator.get("residual") is not True
            and generator.get("input") not in ("first_guess", "composite_upsampled")):
        ctx.add(("generator", "warm_start"), f"the warm-start fuser {warm.get('name')!r} would have no effect: "
                f"DFP uses its first guess as z (`generator.input: first_guess`) or as the starting output "
                f"(`generator.residual: true`), and this spec has `input: {generator.get('input')}` without "
                "`residual`",
                "set `generator.input: first_guess` (--set generator.input=first_guess), or `generator.residual: "
                "true`, or both; or remove `generator.warm_start`")
    if view.get("crop") is not None and view.get("output_average"):
        ctx.add(("output_average",), "averaging the output (`output_average`) needs whole-image iterations, but "
                "`crop` makes each iteration see only a window of it",
                "set `output_average: 0`, or `crop: null`")
    if isinstance(view.get("light_field"), dict):
        if isinstance(inputs, list) and inputs:
            ctx.add(("light_field",), "the spec gives both `inputs` and `light_field`; the stack to fuse comes "
                    "from exactly one of them",
                    "remove `inputs` to fuse the light field's refocused slices, or remove `light_field` to fuse "
                    "the listed images")
        require_inputs = False
    if require_inputs and isinstance(inputs, list) and len(inputs) < 2:
        if source_is_dict:
            hint = ("add \"inputs\": [\"near.png\", \"far.png\"] to the dict, or pass the images as arrays: "
                    "fusionkit.run(spec, inputs=[a, b])")
        else:
            hint = ("list the images in the spec, e.g. `inputs: [near.png, far.png]` (paths relative to the spec "
                    "file), or on the command line: --set 'inputs=[near.png,far.png]' (paths relative to the "
                    "current folder)")
            if not inputs:
                hint += (", or fuse a light field's refocused slices instead: `light_field: {name: view_grid, "
                         "path: views/, params: {...}}` (see docs/light-fields.md)")
        ctx.add(("inputs",), f"fusion needs at least 2 input images, got {len(inputs)}", hint)
    if view.get("method") == "fuser" and not isinstance(view.get("fuser"), dict):
        ctx.add(("fuser",), "method 'fuser' needs a fuser, got none",
                "name one, e.g. `fuser: {name: enfuse}` (see `fusionkit plugins list --kind fuser`), "
                "or use `method: composite` for the two-step baseline")
    if view.get("method", "dfp") == "dfp" and view.get("iterations") == 0:
        ctx.add(("iterations",), "method 'dfp' needs at least 1 iteration, got 0 (the output would be the "
                "untrained network's)",
                "give iterations: 1 or more, or use `method: composite` for the two-step result without any "
                "optimisation")
    losses = view.get("losses")
    if view.get("method", "dfp") == "dfp" and isinstance(losses, list) and not losses:
        ctx.add(("losses",), "method 'dfp' needs at least one loss term, got none",
                "add terms, e.g. `losses: [{name: content, weight: 1.0}, {name: joint_gradient, weight: 0.5}]`, "
                "or use `method: composite` (no optimisation)")
    if isinstance(losses, list):
        first: dict[str, int] = {}
        for i, term in enumerate(losses):
            name = term.get("name") if isinstance(term, dict) else None
            if not isinstance(name, str):
                continue
            if name in first:
                ctx.add(("losses", i, "name"), f"loss {name!r} appears twice (also losses[{first[name]}])",
                        "list each loss once and put the combined weight on it; the `losses[NAME]` override "
                        "selector needs unique names")
            else:
                first[name] = i


def _resolve_input(p: str, i: int, base_dir: Path, ctx: _Context) -> str:
    return _resolve_path(p, ("inputs", i), base_dir, ctx)


def _input_origin(p: str, i: int, base_dir: Path, ctx: _Context, from_dict: bool) -> str:
    """How input ``i`` was resolved, in words, for a message about a missing file."""
    if Path(os.path.expanduser(p)).is_absolute():
        return f"{p!r} is an absolute path"
    if ctx.origin(("inputs", i)) is not None:
        return f"{p!r}, given with --set, is relative to the current folder {Path.cwd()}"
    if from_dict:
        return f"{p!r}, in a spec given as a dict, is relative to the current folder {Path.cwd()}"
    return f"{p!r} is relative to the spec file's folder {base_dir}"



"""Regenerate the field tables of docs/spec.md from the pydantic models in fusionkit/spec.py.

    .venv/bin/python scripts/gen_spec_docs.py          # rewrite docs/spec.md in place
    .venv/bin/python scripts/gen_spec_docs.py --check  # exit 1 if docs/spec.md is stale (CI)

Only the text between the GENERATED markers is replaced; tests/test_validation.py checks it is up to date.
"""
from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from fusionkit.spec import (ComponentRef, DecisionEmbeddingSpec, GeneratorSpec, LossTerm, OptimizerSpec,
                            OutputSpec, PipelineSpec)

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
BEGIN = "<!-- BEGIN GENERATED FIELDS (scripts/gen_spec_docs.py) -->"
END = "<!-- END GENERATED FIELDS -->"

#: (model, heading, what it is) in the order the reference lists them
MODELS: list[tuple[type[BaseModel], str]] = [
    (PipelineSpec, "top level"),
    (ComponentRef, "`focus_measure`, `downsampler`, `upsampler`, `decision_embedding.generator`, "
                   "`decision_embedding.loss`"),
    (GeneratorSpec, "`generator`"),
    (LossTerm, "each item of `losses`"),
    (DecisionEmbeddingSpec, "`decision_embedding`"),
    (OptimizerSpec, "`optimizer`"),
    (OutputSpec, "`output`"),
]

#: Meanings for fields whose model gives no ``description`` (a description in fusionkit/spec.py wins).
NOTES: dict[tuple[type[BaseModel], str], str] = {
    (PipelineSpec, "name"): "run name; fills `{name}` in `output.dir`",
    (PipelineSpec, "focus_measure"): "the focus measure that gives the initial decision maps (kind focus_measure)",
    (PipelineSpec, "decision_embedding"): "Algorithm 2: refine the decision maps with a generator",
    (PipelineSpec, "generator"): "the generator optimised by Algorithm 1 (kind generator); used when method is dfp",
    (PipelineSpec, "losses"): "the weighted loss terms (kind loss); at least one when method is dfp; names unique",
    (PipelineSpec, "optimizer"): "optimiser of the fusion generator",
    (PipelineSpec, "iterations"): "optimisation steps of the fusion generator (method dfp)",
    (PipelineSpec, "seed"): "random seed (network initialisation, noise inputs)",
    (PipelineSpec, "device"): "auto: CUDA when available, else CPU",
    (PipelineSpec, "output"): "where and how the results are written",
    (GeneratorSpec, "name"): "registered generator name, see `fusionkit plugins list --kind generator`",
    (DecisionEmbeddingSpec, "enabled"): "false: fuse with the focus measure's maps directly (no Algorithm 2)",
    (DecisionEmbeddingSpec, "iterations"): "optimisation steps of the embedding generator",
    (DecisionEmbeddingSpec, "generator"): "the embedding generator (kind generator) and its params",
    (DecisionEmbeddingSpec, "loss"): "the embedding loss (kind loss), Eq. 20",
    (DecisionEmbeddingSpec, "lr"): "learning rate of the embedding generator",
    (OptimizerSpec, "name"): "the optimiser",
    (OutputSpec, "format"): "file format of the fused image",
    (OutputSpec, "save_maps"): "write the decision maps to `maps/`",
}


def _type(ann: Any) -> str:
    origin = typing.get_origin(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return f"[{ann.__name__}](#{ann.__name__.lower()})"
    if origin is Literal:
        return " \\| ".join(f"`{yaml.safe_dump(a, default_flow_style=True).strip().removesuffix('...').strip()}`"
                            for a in typing.get_args(ann))
    if origin is list:
        (arg,) = typing.get_args(ann)
        return f"list of {_type(arg)}"
    if origin is dict:
        return "mapping"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(ann, str(ann))


def _flow(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("...").strip()


def _bounds(field) -> str:
    out = []
    for meta in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(meta, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(model: type[BaseModel]) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "**required**"
        else:
            default = f"`{_cell(_flow(field.get_default(call_default_factory=True)))}`"
        meaning = field.description or NOTES.get((model, name), "")
        bounds = _bounds(field)
        if bounds:
            meaning = f"{meaning} ({bounds})" if meaning else bounds
        rows.append(f"| `{name}` | {_type(field.annotation)} | {default} | {_cell(meaning)} |")
    return "\n".join(rows)


def generated() -> str:
    parts = []
    for model, where in MODELS:
        doc = " ".join((model.__doc__ or "").split())
        parts.append(f"### {model.__name__}\n\nUsed for: {where}." + (f" {doc}" if doc else "") + "\n\n"
                     + table(model))
    return "\n\n".join(parts)


def update(text: str) -> str:
    """``text`` with the generated block replaced by the current one."""
    head, sep, rest = text.partition(BEGIN)
    if not sep:
        raise SystemExit(f"{DOC} has no {BEGIN!r} marker")
    _, sep, tail = rest.partition(END)
    if not sep:
        raise SystemExit(f"{DOC} has no {END!r} marker")
    return f"{head}{BEGIN}\n{generated()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    new = update(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is stale: run `.venv/bin/python scripts/gen_spec_docs.py`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC.write_text(new, encoding="utf-8")
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

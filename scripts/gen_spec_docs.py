"""Regenerate the field tables of docs/spec.md (pipeline specs, fusionkit/spec.py) and docs/training.md (training
specs, fusionkit/training/spec.py) from their pydantic models.

    .venv/bin/python scripts/gen_spec_docs.py          # rewrite both in place
    .venv/bin/python scripts/gen_spec_docs.py --check  # exit 1 if either is stale (CI)

Only the text between the GENERATED markers is replaced; tests/test_validation.py and tests/test_training.py check
they are up to date.
"""
from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from fusionkit.fielddoc import rows
from fusionkit.spec import (ComponentRef, DecisionEmbeddingSpec, GeneratorSpec, LightFieldSpec, LossTerm,
                            OptimizerSpec, OutputSpec, PipelineSpec, RefineSpec, StopSpec, TilingSpec)

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
TRAIN_DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
BEGIN = "<!-- BEGIN GENERATED FIELDS (scripts/gen_spec_docs.py) -->"
END = "<!-- END GENERATED FIELDS -->"

#: (model, heading, what it is) in the order the reference lists them
MODELS: list[tuple[type[BaseModel], str]] = [
    (PipelineSpec, "top level"),
    (ComponentRef, "`focus_measure`, `downsampler`, `upsampler`, `decision_embedding.generator`, "
                   "`decision_embedding.loss`, `fuser`, `generator.warm_start`"),
    (GeneratorSpec, "`generator`"),
    (LossTerm, "each item of `losses`"),
    (LightFieldSpec, "`light_field`"),
    (DecisionEmbeddingSpec, "`decision_embedding`"),
    (OptimizerSpec, "`optimizer`"),
    (StopSpec, "`stop`, `decision_embedding.stop`"),
    (RefineSpec, "`refine`"),
    (TilingSpec, "`tiling`"),
    (OutputSpec, "`output`"),
]


def _code(text: str) -> str:
    return f"`{text}`"


def _anchor(model: type[BaseModel]) -> str:
    """A nested model's type is a link to its own table below."""
    return f"[{model.__name__}](#{model.__name__.lower()})"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def table(model: type[BaseModel]) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for row in rows(model, code=_code, model_name=_anchor):
        default = "**required**" if model.model_fields[row.name].is_required() else row.default
        meaning = f"{row.description} ({row.bounds})" if row.description and row.bounds else (
            row.description or row.bounds)
        lines.append(f"| `{row.name}` | {_cell(row.type)} | {_cell(default)} | {_cell(meaning)} |")
    return "\n".join(lines)


def training_models() -> list[tuple[type[BaseModel], str]]:
    from fusionkit.training.spec import (AugmentSpec, CheckpointSpec, DataSource, DataSpec, ModelSpec, PhaseSpec,
                                         ScheduleSpec, TrainOptimizerSpec, TrainOutputSpec, TrainSpec,
                                         ValidationSpec)

    return [(TrainSpec, "top level"), (ModelSpec, "`model`"), (LossTerm, "each item of `losses`"),
            (DataSpec, "`data`"), (DataSource, "each item of `data.sources`"), (AugmentSpec, "`data.augment`"),
            (TrainOptimizerSpec, "`optimizer`, `phases[].optimizer`"),
            (ScheduleSpec, "`schedule`, `phases[].schedule`"), (PhaseSpec, "each item of `phases`"),
            (ValidationSpec, "`validation`"), (CheckpointSpec, "`checkpoint`"), (TrainOutputSpec, "`output`")]


def generated(models: list[tuple[type[BaseModel], str]] | None = None) -> str:
    parts = []
    for model, where in (models or MODELS):
        doc = " ".join((model.__doc__ or "").split())
        parts.append(f"### {model.__name__}\n\nUsed for: {where}." + (f" {doc}" if doc else "") + "\n\n"
                     + table(model))
    return "\n\n".join(parts)


def update(text: str, models: list[tuple[type[BaseModel], str]] | None = None) -> str:
    """``text`` with the generated block replaced by the current one (of ``models``; default: the pipeline's)."""
    head, sep, rest = text.partition(BEGIN)
    if not sep:
        raise SystemExit(f"no {BEGIN!r} marker")
    _, sep, tail = rest.partition(END)
    if not sep:
        raise SystemExit(f"no {END!r} marker")
    return f"{head}{BEGIN}\n{generated(models)}\n{END}{tail}"


def main(argv: list[str]) -> int:
    stale = 0
    for doc, models in ((DOC, None), (TRAIN_DOC, training_models())):
        text = doc.read_text(encoding="utf-8")
        new = update(text, models)
        if "--check" in argv:
            if new != text:
                print(f"{doc} is stale: run `.venv/bin/python scripts/gen_spec_docs.py`", file=sys.stderr)
                stale = 1
        elif new != text:
            doc.write_text(new, encoding="utf-8")
            print(f"updated {doc}")
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

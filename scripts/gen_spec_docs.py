"""Regenerate the field tables of docs/spec.md from the pydantic models in fusionkit/spec.py.

    .venv/bin/python scripts/gen_spec_docs.py          # rewrite docs/spec.md in place
    .venv/bin/python scripts/gen_spec_docs.py --check  # exit 1 if docs/spec.md is stale (CI)

Only the text between the GENERATED markers is replaced; tests/test_validation.py checks it is up to date.
"""
from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from fusionkit.fielddoc import rows
from fusionkit.spec import (ComponentRef, DecisionEmbeddingSpec, GeneratorSpec, LightFieldSpec, LossTerm,
                            OptimizerSpec, OutputSpec, PipelineSpec, StopSpec, TilingSpec)

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
    (LightFieldSpec, "`light_field`"),
    (DecisionEmbeddingSpec, "`decision_embedding`"),
    (OptimizerSpec, "`optimizer`"),
    (StopSpec, "`stop`, `decision_embedding.stop`"),
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

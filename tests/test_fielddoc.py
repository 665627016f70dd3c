"""fusionkit.fielddoc: how pydantic fields are described to people (plugins show, docs/spec.md, docs/components.md)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from fusionkit.fielddoc import FieldRow, bounds_text, default_text, rows, type_name


class Inner(BaseModel):
    k: int = 1


class Params(BaseModel):
    size: int = Field(3, ge=1, le=9, description="kernel size")
    ratio: float = Field(0.5, gt=0.0, lt=1.0)
    maybe: Optional[int] = None
    channels: list[int] = Field(default_factory=lambda: [8, 16], min_length=1, max_length=4)
    inner: Inner = Field(default_factory=Inner)
    mode: Literal["a", 8] = "a"
    name: str = Field(pattern=r"^[a-z]+$")


@pytest.mark.parametrize("annotation, expected", [
    (Optional[int], "integer or null"),
    (int | None, "integer or null"),
    (Literal["png", 16], '"png" or 16'),
    (list[int], "list of integer"),
    (int | list[int], "integer or list of integer"),
    (tuple[float, ...], "list of number"),
    (dict[str, int], "mapping"),
    (Annotated[bool, "meta"], "boolean"),
    (str, "string"),
    (Inner, "Inner"),
    (list[Inner], "list of Inner"),
])
def test_type_name(annotation, expected):
    assert type_name(annotation) == expected


def test_type_name_hooks_mark_literals_and_nested_models():
    assert type_name(Literal["a", "b"], code=lambda s: f"`{s}`") == '`"a"` or `"b"`'
    assert type_name(Optional[Inner], model=lambda m: f"[{m.__name__}]") == "[Inner] or null"


def test_bounds_text():
    f = Params.model_fields
    assert bounds_text(f["size"]) == "≥ 1, ≤ 9"
    assert bounds_text(f["ratio"]) == "> 0.0, < 1.0"
    assert bounds_text(f["channels"]) == "length ≥ 1, length ≤ 4"
    assert bounds_text(f["name"], code=lambda s: f"`{s}`") == "matches `^[a-z]+$`"
    assert bounds_text(f["maybe"]) == ""


def test_default_text():
    f = Params.model_fields
    assert default_text(f["size"]) == "3"
    assert default_text(f["maybe"]) == "null"
    assert default_text(f["channels"]) == "[8, 16]"          # default_factory is called
    assert default_text(f["inner"]) == '{"k": 1}'            # a model default shows its contents
    assert default_text(f["mode"], code=lambda s: f"`{s}`") == '`"a"`'
    assert default_text(f["name"]) == "required"


def test_rows():
    table = rows(Params)
    assert [r.name for r in table] == list(Params.model_fields)
    assert table[0] == FieldRow("size", "integer", "3", "≥ 1, ≤ 9", "kernel size")
    assert table[2].type == "integer or null"
    assert all(isinstance(r, tuple) and len(r) == 5 for r in table)

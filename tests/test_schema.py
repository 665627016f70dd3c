"""`fusionkit schema` knows the installed components (issue 13.7): their names as choices per kind, and each
component's parameters (types, bounds, defaults, descriptions) tied to its name, so that an editor completes and
checks what matters. Checked with a real JSON Schema validator."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from fusionkit.cli import cli
from fusionkit.registry import default_catalog

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def schema() -> dict:
    r = CliRunner().invoke(cli, ["schema"], obj={}, catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def slot(schema: dict, *path: str) -> dict:
    node: dict = schema
    for key in path:
        node = resolve(schema, node)["properties"][key]
        if "anyOf" in node:  # optional slots: the component reference or null
            node = next(n for n in node["anyOf"] if n.get("type") != "null")
    return resolve(schema, node)


def names_in(node: dict) -> set[str]:
    name = node["properties"]["name"]
    return {c["const"] for c in name.get("anyOf", [])}


@pytest.mark.parametrize("path, kind", [(("focus_measure",), "focus_measure"), (("generator",), "generator"),
                                        (("downsampler",), "resampler"), (("upsampler",), "resampler"),
                                        (("decision_embedding", "generator"), "generator"),
                                        (("decision_embedding", "loss"), "loss"), (("fuser",), "fuser"),
                                        (("light_field",), "light_field")])
def test_component_names_are_choices_per_kind(schema, path, kind):
    assert names_in(slot(schema, *path)) == set(default_catalog().names(kind))


def test_loss_terms_know_the_losses(schema):
    items = resolve(schema, resolve(schema, schema["properties"]["losses"])["items"])
    assert names_in(items) == set(default_catalog().names("loss"))


def test_a_component_s_parameters_carry_type_bounds_default_and_description(schema):
    node = slot(schema, "focus_measure")
    rules = [r for r in node["allOf"] if r["if"]["properties"]["name"].get("const") == "double_reblur"]
    params = resolve(schema, rules[0]["then"]["properties"]["params"])
    k = params["properties"]["gaussian_kernel"]
    assert k["type"] == "integer" and k["minimum"] == 1 and k["maximum"] == 99 and k["default"] == 5
    assert "k_g" in k["description"]
    assert params["additionalProperties"] is False
    summaries = {c["const"]: c.get("description", "") for c in node["properties"]["name"]["anyOf"]}
    assert summaries["double_reblur"] == default_catalog().get("focus_measure", "double_reblur").summary


def validate(schema: dict, doc: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


def test_every_example_spec_validates(schema):
    r = CliRunner().invoke(cli, ["schema", "--kind", "train"], obj={}, catch_exceptions=False)
    train_schema = json.loads(r.stdout)
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if "base" in doc and "dataset" in doc:
            continue  # an ablation file, not a pipeline spec
        if path.parent.name == "train":
            assert validate(train_schema, doc) == [], path
            continue
        assert validate(schema, doc) == [], path


@pytest.mark.parametrize("doc, ok", [
    ({"focus_measure": {"name": "max_gradient", "params": {"window": 3}}}, True),
    ({"focus_measure": {"name": "double_reblur", "params": {"window": 3}}}, False),        # max_gradient's key
    ({"focus_measure": {"name": "double_reblur", "params": {"gaussian_kernal": 5}}}, False),
    ({"focus_measure": {"name": "double_reblur", "params": {"gaussian_kernel": 0}}}, False),   # below the bound
    ({"focus_measure": {"name": "doublereblur"}}, False),                                    # not installed
    ({"generator": {"params": {"channels": [8, 16]}}}, True),                                # default: skipnet
    ({"generator": {"params": {"base_channels": 8}}}, False),                                # unet's key
    ({"generator": {"name": "unet", "params": {"base_channels": 8}}}, True),
    ({"losses": [{"name": "content", "weight": 1, "params": {"lambdas": [1, 1]}}]}, True),
    ({"losses": [{"name": "content", "params": {"mode": "paper"}}]}, False),                 # joint_gradient's
    ({"decision_embedding": {"loss": {"name": "decision", "params": {"map_weight": 2}}}}, True),
])
def test_parameters_are_tied_to_the_component_name(schema, doc, ok):
    assert (validate(schema, doc) == []) is ok, validate(schema, doc)

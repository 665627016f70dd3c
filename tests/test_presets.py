"""Presets (fusionkit.presets): expansion under the spec, what is recorded, and one knob for the whole budget."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

import fusionkit
from fusionkit.errors import SpecError
from fusionkit.presets import PRESETS, expand_preset
from fusionkit.validation import load_spec

from conftest import QUICK


def resolved(*overrides, data=None):
    return load_spec(data or {"name": "t"}, list(overrides), require_inputs=False)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves_to_a_valid_spec(name):
    r = resolved(f"preset={name}")
    assert r.spec.preset == name
    assert isinstance(r.spec.decision_embedding.iterations, int)     # concrete, never "auto", in what is recorded


def test_spec_values_and_overrides_win_over_the_preset():
    r = resolved("preset=paper", "iterations=77", data={"name": "t", "optimizer": {"lr": 0.01}})
    assert r.spec.iterations == 77 and r.spec.optimizer.lr == 0.01
    assert r.spec.optimizer.schedule == PRESETS["paper"]["optimizer"]["schedule"]   # the rest of the mapping filled
    assert "iterations" not in r.preset_values and "optimizer.lr" not in r.preset_values
    assert "optimizer.schedule" in r.preset_values


def test_expansion_fills_only_missing_keys():
    data = {"stop": {"rule": "plateau"}}
    applied = expand_preset(data, "paper")
    assert data["stop"]["rule"] == "plateau" and "stop.rule" not in applied
    assert data["iterations"] == PRESETS["paper"]["iterations"] and applied["iterations"] == data["iterations"]


def test_iterations_alone_scales_the_embedding():
    assert resolved("iterations=80").spec.decision_embedding.iterations == 40
    assert resolved("iterations=80", "decision_embedding.iterations=7").spec.decision_embedding.iterations == 7
    fast = resolved("preset=fast", "iterations=100").spec
    assert fast.decision_embedding.iterations == 50


def test_unknown_preset_is_a_spec_error_with_the_choices():
    with pytest.raises(SpecError) as e:
        resolved("preset=quick")
    assert "'fast', 'default', 'paper'" in e.value.render()


def test_resolved_yaml_names_the_preset_and_reloads_to_the_same_spec(tmp_path):
    r = resolved("preset=fast")
    text = r.to_yaml()
    assert "# preset fast filled in:" in text
    again = load_spec(yaml.safe_load(text), require_inputs=False)
    assert again.spec == r.spec


def test_manifest_records_the_preset(pair):
    r = fusionkit.run({"name": "t", "preset": "fast"}, [*QUICK, "iterations=20", "refine.iterations=5"],
                      inputs=pair.inputs, write=False)
    assert r.manifest["preset"]["name"] == "fast"
    assert "iterations" not in r.manifest["preset"]["filled"]          # QUICK gives it
    assert r.manifest["spec"]["preset"] == "fast"


def test_cli_preset_flag_and_dry_run_print_the_concrete_values(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("inputs: [a.png, b.png]\n")
    out = subprocess.run([sys.executable, "-m", "fusionkit.cli", "run", str(spec), "--preset", "paper",
                          "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "preset: paper" in text and f"iterations: {PRESETS['paper']['iterations']}" in text

"""The command line: exit codes, one-paragraph errors (no tracebacks), and every verb."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from fusionkit.cli import cli

from conftest import QUICK

SPECS = Path(__file__).parent / "data" / "specs"


def invoke(*args):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def write_spec(tmp_path, pair_files, **extra):
    spec = {"name": "cli", "inputs": [str(p) for p in pair_files], "output": {"dir": str(tmp_path / "out")}, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_run_and_dry_run(tmp_path, pair_files):
    spec = write_spec(tmp_path, pair_files)
    sets = [x for q in QUICK for x in ("--set", q)]
    r = invoke("run", str(spec), *sets, "--dry-run")
    assert r.exit_code == 0, r.output
    assert "spec is valid" in r.output and not (tmp_path / "out").exists()
    r = invoke("run", str(spec), *sets)
    assert r.exit_code == 0, r.output
    assert "fused image" in r.output and (tmp_path / "out" / "fused.png").exists()


def test_spec_errors_exit_2_without_traceback(tmp_path, pair_files):
    spec = write_spec(tmp_path, pair_files)
    r = invoke("validate", str(spec), "--set", "iterations=-1", "--set", "focus_measure.name=doublereblur")
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert "did you mean 'double_reblur'" in r.output and "iterations" in r.output


def test_runtime_errors_exit_1(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"inputs": ["missing_a.png", "missing_b.png"]}))
    r = invoke("run", str(spec))
    assert r.exit_code == 1 and "not found" in r.output and "Fix:" in r.output and "Traceback" not in r.output


def test_validate_examples():
    root = Path(__file__).resolve().parents[1] / "examples"
    for spec in sorted(root.glob("*.yaml")):
        r = invoke("validate", str(spec))
        assert r.exit_code == 0, (spec, r.output)


def test_plugins_list_and_show():
    r = invoke("plugins", "list", "--json")
    data = json.loads(r.output)
    names = {(c["kind"], c["name"]) for c in data["components"]}
    assert {("focus_measure", "double_reblur"), ("generator", "skipnet"), ("resampler", "lanczos2"),
            ("loss", "content")} <= names
    r = invoke("plugins", "show", "double_reblur")
    assert r.exit_code == 0 and "threshold" in r.output and "0.01" in r.output
    r = invoke("plugins", "show", "skipnett")
    assert r.exit_code == 1 and "did you mean 'skipnet'" in r.output


def test_schema_and_env():
    r = invoke("schema")
    assert r.exit_code == 0 and "focus_measure" in json.loads(r.output)["properties"]
    r = invoke("schema", "--kind", "train")
    assert r.exit_code == 0 and {"model", "data", "steps"} <= set(json.loads(r.output)["properties"])
    r = invoke("schema", "--kind", "ablate")
    assert r.exit_code == 0 and {"base", "grid", "variants"} <= set(json.loads(r.output)["properties"])
    r = invoke("env")
    assert r.exit_code == 0 and "torch" in json.loads(r.output)["packages"]


def test_validate_baseline_specs():
    root = Path(__file__).resolve().parents[1] / "examples" / "baselines"
    specs = sorted(root.glob("*.yaml"))
    assert specs
    for spec in specs:
        r = invoke("validate", str(spec), "--set", "inputs=[a.png,b.png]")
        assert r.exit_code == 0, (spec, r.output)


def test_mean_baseline_is_the_mean(pair):
    import numpy as np

    import fusionkit

    root = Path(__file__).resolve().parents[1] / "examples" / "baselines"
    r = fusionkit.run(str(root / "mean-bicubic.yaml"), ["scale=1", "colour=rgb"], inputs=pair.inputs, write=False)
    assert np.allclose(r.fused, np.mean(pair.inputs, axis=0), atol=1e-6)

"""The external-fuser kind and its built-in, enfuse: command line, availability, errors, and real runs."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionkit.errors import RunError, SpecError
from fusionkit.runner import run
from fusionkit_plugins.fusers import Enfuse

HAVE_ENFUSE = shutil.which("enfuse") is not None
needs_enfuse = pytest.mark.skipif(not HAVE_ENFUSE, reason="the enfuse program is not on the PATH "
                                  "(Debian: apt install enfuse); its real-run tests are skipped")
BASELINE = Path(__file__).resolve().parents[2] / "examples" / "baselines" / "enfuse-bicubic.yaml"


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def _tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).float().permute(0, 3, 1, 2)


def test_command_is_focus_stacking_mode(tmp_path):
    cmd = Enfuse().command([tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "o.tif")
    for flag in ("--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1", "--hard-mask",
                 "--depth=16", f"--output={tmp_path / 'o.tif'}"):
        assert flag in cmd
    assert cmd[-2:] == [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
    soft = Enfuse(hard_mask=False, levels=4, contrast_window_size=7).command([], tmp_path / "o.tif")
    assert "--hard-mask" not in soft and "--levels=4" in soft and "--contrast-window-size=7" in soft


def test_unavailable_names_the_fix(monkeypatch):
    monkeypatch.setattr(Enfuse, "program", "enfuse-not-installed-here")
    reason = Enfuse.unavailable()
    assert reason and "apt install enfuse" in reason
    with pytest.raises(RunError, match="not on the PATH"):
        Enfuse()(torch.zeros(2, 1, 16, 16))


def test_missing_program_fails_before_anything_is_written(monkeypatch, tmp_path, pair):
    monkeypatch.setattr(Enfuse, "program", "enfuse-not-installed-here")
    out = tmp_path / "runs"
    with pytest.raises(RunError, match="cannot run here") as info:
        run(BASELINE, inputs=list(pair.inputs), overrides=[f"output.dir={out}"])
    assert "install" in info.value.hint
    assert not out.exists()


def test_program_failure_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(Enfuse, "program", "false")  # exits 1, writes nothing
    with pytest.raises(RunError, match=r"enfuse failed \(exit 1\)"):
        Enfuse()(torch.rand(2, 1, 16, 16))


def test_method_fuser_needs_a_fuser(pair):
    with pytest.raises(SpecError, match="needs a fuser"):
        run({"method": "fuser"}, inputs=list(pair.inputs), write=False)
    with pytest.raises(SpecError, match="unknown fuser"):
        run({"method": "fuser", "fuser": {"name": "enfsue"}}, inputs=list(pair.inputs), write=False)


@needs_enfuse
@pytest.mark.parametrize("gray", [False, True])
def test_enfuse_beats_every_input(pair, gray):
    from fusionkit.synthetic import make_stack, sample_image
    st = make_stack(sample_image("astronaut", 96), n=2, scale=1, blur_sigma=2.5, seed=3)
    inputs, truth = list(st.inputs), st.truth
    if gray:
        inputs, truth = [i.mean(2, keepdims=True) for i in inputs], truth.mean(2, keepdims=True)
    fused = Enfuse()(_tensor(inputs))[0].permute(1, 2, 0).numpy()
    assert fused.shape == truth.shape
    assert _psnr(fused, truth) > max(_psnr(i, truth) for i in inputs) + 3


@needs_enfuse
def test_enfuse_baseline_spec_runs_end_to_end(tmp_path, pair):
    result = run(BASELINE, inputs=list(pair.inputs), overrides=[f"output.dir={tmp_path / 'r'}"])
    assert result.fused.shape == pair.truth.shape
    assert _psnr(result.fused, pair.truth) > max(_psnr(np.kron(i, np.ones((2, 2, 1))), pair.truth)
                                                  for i in pair.inputs)
    manifest = result.manifest
    assert "fuser:enfuse" in manifest["components"] and manifest["spec"]["method"] == "fuser"
    assert not (result.run_dir / "maps").exists()


def test_even_window_is_a_spec_error(pair):
    with pytest.raises(SpecError, match="must be odd"):
        run({"method": "fuser", "fuser": {"name": "enfuse", "params": {"contrast_window_size": 6}}},
            inputs=list(pair.inputs), write=False)


def test_plugins_list_shows_a_missing_program(monkeypatch):
    import json

    from click.testing import CliRunner

    from fusionkit.cli import cli
    monkeypatch.setattr(Enfuse, "program", "enfuse-not-installed-here")
    out = CliRunner().invoke(cli, ["plugins", "list", "--kind", "fuser", "--json"], obj={}, catch_exceptions=False)
    entry = json.loads(out.output)["components"][0]
    assert entry["name"] == "enfuse" and "apt install enfuse" in entry["unavailable"]
    table = CliRunner().invoke(cli, ["plugins", "list", "--kind", "fuser"], obj={}, catch_exceptions=False)
    assert "unavailable" in table.output

"""End-to-end runs through the Python API: quality, determinism, outputs, manifest and failure modes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

import fusionkit
from fusionkit.errors import InputError, RunError
from fusionkit.interfaces import Loss
from fusionkit.registry import build_catalog, hookimpl
from fusionkit.synthetic import make_stack, sample_image

from conftest import QUICK


def psnr(truth, img):
    return peak_signal_noise_ratio(truth, img.reshape(truth.shape), data_range=1.0)


def bicubic(img, s):
    import cv2

    h, w = img.shape[:2]
    return np.clip(cv2.resize(img, (w * s, h * s), interpolation=cv2.INTER_CUBIC), 0, 1).reshape(
        h * s, w * s, img.shape[2])


def test_dfp_beats_every_input(tmp_path, pair):
    spec = {"name": "t", "output": {"dir": str(tmp_path / "run")}}
    result = fusionkit.run(spec, [*QUICK, "iterations=150"], inputs=pair.inputs)
    got = psnr(pair.truth, result.fused)
    for img in pair.inputs:
        assert got > psnr(pair.truth, bicubic(img, 2))
    assert result.fused.shape == pair.truth.shape and result.fused.dtype == np.float32


def test_same_seed_same_output(pair):
    spec = {"name": "t"}
    a = fusionkit.run(spec, QUICK, inputs=pair.inputs, write=False).fused
    b = fusionkit.run(spec, QUICK, inputs=pair.inputs, write=False).fused
    c = fusionkit.run(spec, [*QUICK, "seed=5"], inputs=pair.inputs, write=False).fused
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_run_folder_and_manifest(tmp_path, pair_files):
    spec = {"name": "t", "inputs": [str(p) for p in pair_files], "output": {"dir": str(tmp_path / "run")}}
    r = fusionkit.run(spec, [*QUICK, "decision_embedding.enabled=auto"])
    names = {p.relative_to(r.run_dir).as_posix() for p in r.run_dir.rglob("*")}
    for f in ("fused.png", "maps/map_00.png", "maps/map_01.png", "loss.csv", "loss.png", "manifest.json",
              "spec.resolved.yaml", "embedding_loss.csv"):
        assert f in names
    m = json.loads((r.run_dir / "manifest.json").read_text())
    assert m["seed"] == 0 and m["status"] == "ok"
    assert m["spec"]["focus_measure"]["params"]  # every default filled in
    assert m["environment"]["packages"]["torch"] == torch.__version__.split("+")[0] or m["environment"]["packages"]["torch"]
    assert {"focus_measure", "decision_embedding", "fusion", "total"} <= set(m["timings"])
    assert m["output_size"] == [64, 64]
    # a second run never overwrites the first
    r2 = fusionkit.run(spec, QUICK)
    assert r2.run_dir != r.run_dir and (r.run_dir / "fused.png").exists()
    # the resolved spec reproduces the run
    r3 = fusionkit.run(str(r.run_dir / "spec.resolved.yaml"), ["output.dir=" + str(tmp_path / "again")])
    assert np.array_equal(r3.fused, r.fused)


def test_composite_is_the_two_step_baseline(pair):
    r = fusionkit.run({"name": "t", "method": "composite", "decision_embedding": {"enabled": False}},
                      ["device=cpu"], inputs=pair.inputs, write=False)
    assert r.fused.shape == pair.truth.shape
    assert psnr(pair.truth, r.fused) > max(psnr(pair.truth, bicubic(i, 2)) for i in pair.inputs)


def test_grayscale_and_16_bit(tmp_path):
    st = make_stack(sample_image("camera", 48), n=2, scale=2, seed=0)
    inputs = [(np.clip(i, 0, 1) * 65535).astype(np.uint16) for i in st.inputs]
    r = fusionkit.run({"name": "g", "output": {"dir": str(tmp_path / "g"), "format": "tiff"}}, QUICK, inputs=inputs)
    assert r.fused.shape == (48, 48, 1)
    from fusionkit.io import read_image

    img, depth = read_image(r.run_dir / "fused.tif")
    assert depth == 16 and img.shape == (48, 48, 1)


def test_rgb_mode_and_three_inputs(pair):
    st = make_stack(sample_image("astronaut", 48), n=3, scale=1, seed=2)
    r = fusionkit.run({"name": "t", "colour": "rgb", "scale": 1, "focus_measure": {"name": "max_gradient"}},
                      QUICK, inputs=st.inputs, write=False)
    assert r.fused.shape == (48, 48, 3)
    assert r.outcome.maps.shape == (3, 48, 48)
    assert np.allclose(r.outcome.maps.sum(0), 1.0)


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        fusionkit.run({"name": "t", "inputs": [str(tmp_path / "a.png"), str(tmp_path / "b.png")]})
    assert "Fix:" in e.value.render()


class _NaNAfter(Loss):
    """Returns NaN from the 10th call on (to exercise the engine's NaN guard)."""

    name = "nan_after"
    summary = "test loss"
    reference = "test"

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        self.calls = 0

    def __call__(self, ctx):
        self.calls += 1
        value = (ctx.output_low - ctx.inputs[:1]).abs().mean()
        return value * float("nan") if self.calls >= 10 else value


class _Plugin:
    @hookimpl
    def register_losses(self, register):
        register(_NaNAfter)


def test_nan_loss_stops_and_keeps_last_good_output(tmp_path, pair):
    catalog = build_catalog(extra_plugins=[(_Plugin(), "test-nan")])
    spec = {"name": "t", "losses": [{"name": "nan_after"}], "output": {"dir": str(tmp_path / "run")}}
    with pytest.raises(RunError, match="non-finite") as e:
        fusionkit.run(spec, [*QUICK, "iterations=400"], inputs=pair.inputs, catalog=catalog)
    assert "lower optimizer.lr" in e.value.render()
    run_dir = tmp_path / "run"
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "stopped_early" and (run_dir / "fused.png").exists()

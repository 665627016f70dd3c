"""The super-resolving fuser contract (``Fuser.fuse``) and DFP warm-started from a fuser (``generator.warm_start``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fusionkit
from fusionkit import engine
from fusionkit.errors import PluginError, RunError, SpecError
from fusionkit.imaging import rgb_to_ycbcr
from fusionkit.interfaces import Fuser, UnsupportedInput
from fusionkit.io import stack_from_arrays
from fusionkit.planning import Planner, StackShape
from fusionkit.registry import build_catalog, hookimpl
from fusionkit.synthetic import make_stack, sample_image
from fusionkit.validation import load_spec

from conftest import QUICK

pytestmark = pytest.mark.usefixtures("one_thread")

#: small and quick: no refinement, tiny generator
FAST = [*QUICK, "iterations=5", "refine.iterations=0", "tiling.mode=never"]


class OldFuser(Fuser):
    """A fuser written before ``fuse`` existed: only ``__call__``, at the inputs' resolution (the inputs' max)."""

    name = "old_max"
    summary = "test fuser: per-pixel max of the inputs"
    reference = "test"
    calls: list = []

    def __call__(self, images):
        OldFuser.calls.append(tuple(images.shape))
        return images.max(0, keepdim=True).values


class SRFuser(Fuser):
    """A super-resolving fuser: the mean of the inputs, repeated to ×s (nearest neighbour), plus a fixed pattern so
    that its result is recognisably not anything the engine would make."""

    name = "sr_test"
    summary = "test fuser: x s by pixel repetition"
    reference = "test"

    def __call__(self, images):
        return images.mean(0, keepdim=True)

    def fuse(self, images, scale):
        out = images.mean(0, keepdim=True).repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        yy = torch.arange(out.shape[-2]).view(-1, 1) % 3 == 0
        return (out * 0.8 + 0.1 * yy).clamp(0, 1)


class BadShape(Fuser):
    name = "bad_shape"
    summary = "test fuser: wrong shape"
    reference = "test"

    def __call__(self, images):
        return images[:1, :, :-1]


class Missing(Fuser):
    name = "missing_program"
    summary = "test fuser: never available"
    reference = "test"

    @classmethod
    def unavailable(cls):
        return "the program 'nowhere' is not on the PATH"

    def __call__(self, images):   # pragma: no cover - never reached
        raise AssertionError("an unavailable fuser must not run")


class PairsOnly(Fuser):
    name = "pairs_only"
    summary = "test fuser: N = 2 only"
    reference = "test"

    def __call__(self, images):
        if images.shape[0] != 2:
            raise UnsupportedInput(f"pairs_only fuses exactly 2 images, got {images.shape[0]}",
                                   "give it a pair")
        return images.mean(0, keepdim=True)


class _Plugin:
    @hookimpl
    def register_fusers(self, register):
        for cls in (OldFuser, SRFuser, BadShape, Missing, PairsOnly):
            register(cls)


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(extra_plugins=[(_Plugin(), "test-warm-start")])


def run(spec, overrides, inputs, catalog):
    return fusionkit.run({"name": "t", **spec}, overrides, inputs=inputs, write=False, catalog=catalog)


def luma(img: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    return rgb_to_ycbcr(t)[:, :1] if t.shape[1] == 3 else t


def assert_starts_at(fused: np.ndarray, guess: torch.Tensor, atol: float = 2e-6) -> None:
    """The output's luma is ``guess`` wherever the RGB output was not clipped to [0, 1] (luma + the maps' chroma can
    leave the RGB cube; the clipped pixels' luma then differs, whatever the first guess)."""
    inside = torch.from_numpy(((fused > 0) & (fused < 1)).all(-1))[None, None]
    assert inside.float().mean() > 0.9
    got = luma(fused)
    torch.testing.assert_close(got[inside], guess[inside], atol=atol, rtol=0)


def sr_first_guess(inputs, s=2) -> torch.Tensor:
    """What SRFuser gives for these inputs, as the engine's work-space first guess."""
    x = torch.from_numpy(np.stack(inputs)).permute(0, 3, 1, 2)
    out = SRFuser().fuse(x, s)
    return rgb_to_ycbcr(out)[:, :1] if out.shape[1] == 3 else out


# ------------------------------------------------------------------------------------------------ Fuser.fuse


def test_the_default_fuse_is_call_and_old_fusers_still_run(pair, catalog):
    x = torch.rand(2, 3, 8, 8)
    f = OldFuser()
    torch.testing.assert_close(f.fuse(x, 2), f(x))
    res = run({"method": "fuser", "fuser": {"name": "old_max"}}, ["device=cpu"], pair.inputs, catalog)
    assert res.fused.shape == pair.truth.shape
    assert res.manifest["fuser"] == {"name": "old_max", "super_resolved": False, "upsampled_by": "bicubic"}


def test_a_super_resolving_fuser_is_used_as_it_is(pair, catalog):
    res = run({"method": "fuser", "fuser": {"name": "sr_test"}}, ["device=cpu"], pair.inputs, catalog)
    want = SRFuser().fuse(torch.from_numpy(np.stack(pair.inputs)).permute(0, 3, 1, 2), 2)[0].permute(1, 2, 0)
    np.testing.assert_allclose(res.fused, want.numpy(), atol=1e-6)
    assert res.manifest["fuser"] == {"name": "sr_test", "super_resolved": True, "upsampled_by": None}


def test_a_wrong_shape_is_a_plugin_error_naming_the_fuser(pair, catalog):
    with pytest.raises(PluginError, match="bad_shape.*returned shape") as e:
        run({"method": "fuser", "fuser": {"name": "bad_shape"}}, ["device=cpu"], pair.inputs, catalog)
    assert "(1, 3, 32, 32)" in e.value.message and "(1, 3, 64, 64)" in e.value.message


# ------------------------------------------------------------------------------------------------ warm start


def test_warm_start_is_z_with_input_first_guess(pair, catalog, monkeypatch):
    seen = []
    original = engine.generator_input
    monkeypatch.setattr(engine, "generator_input", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    res = run({"generator": {"warm_start": {"name": "sr_test"}, "input": "first_guess"}}, FAST, pair.inputs,
              catalog)
    torch.testing.assert_close(seen[0], sr_first_guess(pair.inputs))
    assert res.manifest["warm_start"]["name"] == "sr_test" and res.manifest["warm_start"]["super_resolved"]
    assert res.manifest["warm_start"]["seconds"] >= 0 and "warm_start" in res.manifest["timings"]
    assert "fuser:sr_test" in res.manifest["components"]
    # composite_upsampled means the same when a warm start is given
    seen.clear()
    run({"generator": {"warm_start": {"name": "sr_test"}, "input": "composite_upsampled"}}, FAST, pair.inputs,
        catalog)
    torch.testing.assert_close(seen[0], sr_first_guess(pair.inputs))


def test_without_a_warm_start_first_guess_is_the_upsampled_composite(pair, catalog, monkeypatch):
    seen = []
    original = engine.generator_input
    monkeypatch.setattr(engine, "generator_input", lambda *a, **k: seen.append(original(*a, **k)) or seen[-1])
    for inp in ("first_guess", "composite_upsampled"):
        res = run({"generator": {"input": inp}}, FAST, pair.inputs, catalog)
        assert "warm_start" not in res.manifest
    torch.testing.assert_close(seen[0], seen[1])


def _zero_iterations(spec, overrides, inputs, catalog):
    """The engine's result with no optimisation at all (validation refuses iterations 0 for dfp, the engine not)."""
    resolved = load_spec({"name": "t", **spec}, overrides, catalog=catalog, require_inputs=False)
    zero = resolved.spec.model_copy(update={"iterations": 0})
    return engine.fuse(zero, catalog, stack_from_arrays(inputs), device=torch.device("cpu"))


@pytest.mark.parametrize("inp", ["mean_upsampled", "first_guess"])
def test_the_residual_output_starts_at_the_warm_start(pair, catalog, inp):
    out = _zero_iterations({"generator": {"warm_start": {"name": "sr_test"}, "residual": True, "input": inp}},
                           FAST, pair.inputs, catalog)
    assert_starts_at(out.fused, sr_first_guess(pair.inputs), atol=2e-6)
    assert out.warm_start["name"] == "sr_test"


def test_a_x1_fuser_is_upsampled_for_the_warm_start(pair, catalog):
    out = _zero_iterations({"generator": {"warm_start": {"name": "old_max"}, "residual": True}}, FAST,
                           pair.inputs, catalog)
    x = torch.from_numpy(np.stack(pair.inputs)).permute(0, 3, 1, 2)
    up = catalog.get("resampler", "bicubic").cls()
    want = rgb_to_ycbcr(up.up(x.max(0, keepdim=True).values, 2).clamp(0, 1))[:, :1]
    assert_starts_at(out.fused, want.clamp(0, 1), atol=2e-6)
    assert out.warm_start["upsampled_by"] == "bicubic" and not out.warm_start["super_resolved"]


def test_warm_start_changes_the_result_and_still_optimises(pair, catalog):
    cold = run({"generator": {"input": "first_guess"}}, FAST, pair.inputs, catalog)
    warm = run({"generator": {"warm_start": {"name": "sr_test"}, "input": "first_guess"}}, FAST, pair.inputs,
               catalog)
    assert not np.allclose(cold.fused, warm.fused)
    assert len(warm.outcome.loss_history) > 0


def test_grey_inputs_use_every_channel(catalog):
    stack = make_stack(sample_image("camera", 48), n=2, scale=2, blur_sigma=2.0, seed=3)
    grey = [img[..., :1] if img.ndim == 3 else img[..., None] for img in stack.inputs]
    out = _zero_iterations({"generator": {"warm_start": {"name": "sr_test"}, "residual": True}}, FAST, grey,
                           catalog)
    assert_starts_at(out.fused, sr_first_guess(grey), atol=2e-6)


def test_three_inputs(catalog):
    stack = make_stack(sample_image("astronaut", 48), n=3, scale=2, blur_sigma=2.0, seed=2)
    out = _zero_iterations({"generator": {"warm_start": {"name": "sr_test"}, "residual": True}}, FAST,
                           stack.inputs, catalog)
    assert_starts_at(out.fused, sr_first_guess(stack.inputs), atol=2e-6)
    res = run({"generator": {"warm_start": {"name": "old_max"}, "input": "first_guess"}}, FAST, stack.inputs,
              catalog)
    assert res.manifest["inputs"]["count"] == 3 and res.manifest["warm_start"]["name"] == "old_max"
    assert OldFuser.calls[-1][0] == 3


def test_tiled_runs_crop_one_whole_image_warm_start(pair, catalog):
    OldFuser.calls.clear()
    tiled = [*FAST, "tiling.mode=auto", "tiling.tile=32", "tiling.overlap=8", "tiling.workers=1"]
    out = _zero_iterations({"generator": {"warm_start": {"name": "old_max"}, "residual": True}}, tiled,
                           pair.inputs, catalog)
    assert out.memory["mode"] == "tiled" and out.memory["tiles"] > 1
    assert OldFuser.calls == [(2, 3, 32, 32)]          # once, on the whole stack
    x = torch.from_numpy(np.stack(pair.inputs)).permute(0, 3, 1, 2)
    up = catalog.get("resampler", "bicubic").cls()
    want = rgb_to_ycbcr(up.up(x.max(0, keepdim=True).values, 2).clamp(0, 1))[:, :1]
    # every tile starts at its crop of the same first guess, so the blend of the tiles is that first guess
    assert_starts_at(out.fused, want.clamp(0, 1), atol=1e-5)
    res = run({"generator": {"warm_start": {"name": "sr_test"}, "input": "first_guess"}}, tiled, pair.inputs,
              catalog)
    assert res.manifest["memory"]["mode"] == "tiled" and "warm_start" in res.manifest["memory"]["parts_gib"]
    assert res.manifest["warm_start"]["name"] == "sr_test"


@pytest.mark.slow
def test_tiled_runs_in_worker_processes_with_a_warm_start(pair, catalog):
    tiled = [*FAST, "tiling.mode=auto", "tiling.tile=32", "tiling.overlap=8", "tiling.workers=2"]
    res = run({"generator": {"warm_start": {"name": "sr_test"}, "residual": True}}, tiled, pair.inputs, catalog)
    assert res.manifest["stops"]["tiles"]["fused"] > 1 and res.manifest["warm_start"]["super_resolved"]


def test_the_planner_counts_the_warm_start(catalog):
    base = load_spec({"name": "t"}, FAST, catalog=catalog, require_inputs=False).spec
    warm = load_spec({"name": "t", "generator": {"warm_start": {"name": "sr_test"}, "input": "first_guess"}},
                     FAST, catalog=catalog, require_inputs=False).spec
    shape = StackShape(2, 100, 100, 3)
    cpu = torch.device("cpu")
    need0, parts0 = Planner(base, catalog, cpu).whole(shape)
    need1, parts1 = Planner(warm, catalog, cpu).whole(shape)
    assert "warm_start" not in parts0 and parts1["warm_start"] == (3 + 1) * 200 * 200 * 4
    assert need1 == need0 + parts1["warm_start"]
    assert Planner(warm, catalog, cpu).tiled_fixed(shape)["warm_start"] == parts1["warm_start"]


# ------------------------------------------------------------------------------------------------ failures


def test_an_unknown_warm_start_fuser_is_a_spec_error_with_a_suggestion(catalog):
    with pytest.raises(SpecError) as e:
        load_spec({"name": "t", "generator": {"warm_start": {"name": "sr_tset"}, "input": "first_guess"}}, FAST,
                  catalog=catalog, require_inputs=False)
    text = e.value.render()
    assert "generator.warm_start.name" in text and "did you mean 'sr_test'" in text


def test_a_warm_start_that_would_do_nothing_is_refused(catalog):
    with pytest.raises(SpecError) as e:
        load_spec({"name": "t", "generator": {"warm_start": {"name": "sr_test"}}}, FAST, catalog=catalog,
                  require_inputs=False)
    assert "generator.warm_start" in e.value.render() and "first_guess" in e.value.render()
    # with method composite the generator, and so its warm start, is not used: nothing to refuse
    load_spec({"name": "t", "method": "composite", "generator": {"warm_start": {"name": "sr_tset"}}}, FAST,
              catalog=catalog, require_inputs=False)


def test_warm_start_can_be_set_from_the_command_line(catalog):
    r = load_spec({"name": "t"}, [*FAST, "generator.warm_start.name=sr_test", "generator.input=first_guess"],
                  catalog=catalog, require_inputs=False)
    assert r.spec.generator.warm_start.name == "sr_test"
    assert "warm_start:" in r.to_yaml() and "sr_test" in r.to_yaml()    # what `run --dry-run` prints


def _events(catalog, spec, inputs):
    events = []
    with pytest.raises(RunError) as e:
        fusionkit.run({"name": "t", **spec}, FAST, inputs=inputs, write=False, catalog=catalog,
                      progress=events.append)
    return e.value, {ev.stage for ev in events}


def test_an_unavailable_warm_start_fuser_fails_before_any_work(pair, catalog):
    err, stages = _events(catalog, {"generator": {"warm_start": {"name": "missing_program"},
                                                  "input": "first_guess"}}, pair.inputs)
    assert "missing_program" in err.message and "not on the PATH" in err.message
    assert "generator.warm_start" in err.hint
    assert not stages & {"focus", "embedding", "fusion", "tile"}


def test_a_fuser_that_refuses_the_inputs_fails_before_any_optimisation(catalog):
    stack = make_stack(sample_image("astronaut", 48), n=3, scale=2, blur_sigma=2.0, seed=2)
    err, stages = _events(catalog, {"generator": {"warm_start": {"name": "pairs_only"}, "input": "first_guess"}},
                          stack.inputs)
    assert "pairs_only" in err.message and "refuses these inputs" in err.message and "exactly 2" in err.message
    assert "give it a pair" in err.hint and "generator.warm_start" in err.hint
    assert not stages & {"focus", "embedding", "fusion", "tile"}


def test_a_broken_warm_start_fuser_is_a_plugin_error(pair, catalog):
    with pytest.raises(PluginError, match="warm-start fuser 'bad_shape'"):
        run({"generator": {"warm_start": {"name": "bad_shape"}, "input": "first_guess"}}, FAST, pair.inputs,
            catalog)


def test_the_built_in_udpnet_fuser_warm_starts_dfp(pair):
    from fusionkit.registry import default_catalog

    cat = default_catalog()
    if not cat.has("fuser", "udpnet"):
        pytest.skip("the udpnet fuser is not installed")
    res = run({"generator": {"warm_start": {"name": "udpnet"}, "input": "first_guess"}}, FAST, pair.inputs, cat)
    assert res.manifest["warm_start"]["name"] == "udpnet" and res.manifest["warm_start"]["upsampled_by"] == "bicubic"
    assert res.fused.shape == pair.truth.shape

"""Trained weights as data (fusionkit.weights) and the roles of a trained network (fusionkit.trained): file and
package references, the architecture check with its fix, tensors that do not fit, and UDPNet as a fuser and as a
mask source in pipelines (gray and colour, any N, DFP fed with its masks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from fusionkit import weights
from fusionkit.errors import SpecError
from fusionkit.runner import run
from fusionkit.validation import load_spec
from fusionkit_plugins.udpnet.model import UDPNet
from fusionkit_plugins.udpnet.roles import BUILTIN_WEIGHTS, UDPNetFuser, UDPNetMasks

from conftest import QUICK

TINY = {"stages": 1, "predictor_widths": [4, 6, 8], "mask_widths": [4, 6, 8], "image_widths": [4, 6, 8]}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    """Weights of an untrained tiny UDPNet (what is loaded is checked, not how well it fuses)."""
    torch.manual_seed(0)
    net = UDPNet(params=TINY)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    weights.save(path, model="udpnet", architecture=net.params.model_dump(mode="json"), state_dict=net.state_dict(),
                 training={"steps": 0})
    return str(path)


def params(tiny_weights, **kw) -> dict:
    return {**TINY, "weights": tiny_weights, **kw}


# ------------------------------------------------------------------------------------------------ references

def test_references_paths_and_package_data(tiny_weights, tmp_path, monkeypatch):
    assert weights.is_package_ref("fusionkit_plugins.udpnet:udpnet-mfiwhu")
    assert not weights.is_package_ref("runs/train/weights.pt") and not weights.is_package_ref("w.pt")
    monkeypatch.chdir(tmp_path)
    assert weights.normalise_ref("w.pt") == str(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="neither a weights file"):
        weights.normalise_ref("not a: reference")
    with pytest.raises(weights.WeightsError, match="weights file not found") as exc:
        weights.resolve(str(tmp_path / "missing.pt"))
    assert "fusionkit train" in exc.value.hint
    with pytest.raises(weights.WeightsError, match="no installed package 'no_such_pkg'"):
        weights.resolve("no_such_pkg:x")
    with pytest.raises(weights.WeightsError, match="ships no weights named 'nope'"):
        weights.resolve("fusionkit_plugins.udpnet:nope")
    assert weights.read(tiny_weights)["model"] == "udpnet"


def test_a_foreign_file_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(weights.WeightsError, match="not a fusionkit weights file"):
        weights.read(str(bad))
    bad.write_bytes(b"garbage")
    with pytest.raises(weights.WeightsError, match="cannot read the weights file"):
        weights.read(str(bad))


def test_wrong_architecture_is_refused_with_the_fix(tiny_weights):
    payload = weights.read(tiny_weights)
    wanted = {**payload["architecture"], "stages": 3, "mask_widths": [8, 8, 8]}
    with pytest.raises(weights.WeightsError) as exc:
        weights.check(payload, model="udpnet", architecture=wanted, where="the weights x")
    text = exc.value.render()
    assert "stages: the weights have 1, configured 3" in text
    assert "mask_widths: the weights have [4, 6, 8], configured [8, 8, 8]" in text
    assert "stages=1" in exc.value.hint and "mask_widths=[4,6,8]" in exc.value.hint
    with pytest.raises(weights.WeightsError, match="weights of the model 'udpnet', not 'other'"):
        weights.check(payload, model="other", architecture=wanted, where="the weights x")


def test_tensors_that_do_not_fit_are_refused(tiny_weights, tmp_path):
    payload = weights.read(tiny_weights)
    state = dict(payload["state_dict"])
    state.pop(next(iter(state)))
    broken = tmp_path / "broken.pt"
    weights.save(broken, model="udpnet", architecture=payload["architecture"], state_dict=state)
    with pytest.raises(weights.WeightsError, match="do not match the udpnet network's tensors: missing"):
        weights.load_into(UDPNet(params=TINY), str(broken), model="udpnet", architecture=payload["architecture"])


# ------------------------------------------------------------------------------------------------ roles

def test_role_params_check_the_weights_on_validation(tiny_weights):
    UDPNetFuser.Params(**params(tiny_weights))
    with pytest.raises(ValidationError, match="stages: the weights have 1, configured 3"):
        UDPNetFuser.Params(**params(tiny_weights, stages=3))
    with pytest.raises(ValidationError, match="weights file not found"):
        UDPNetMasks.Params(**params(tiny_weights, weights="/nowhere/w.pt"))


def test_a_spec_with_mismatched_weights_fails_validation_at_its_line(tiny_weights, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"method: fuser\nfuser:\n  name: udpnet\n  params: {{weights: {tiny_weights}}}\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec, require_inputs=False)
    text = exc.value.render()
    assert "spec.yaml:2" in text or "spec.yaml:3" in text or "spec.yaml:4" in text
    assert "does not fit the configured udpnet architecture" in text and "fix:" in text


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("n", [2, 3])
def test_fuser_composes_luma_and_chroma_with_the_same_maps(tiny_weights, channels, n):
    g = torch.Generator().manual_seed(n + channels)
    images = torch.rand(n, channels, 20, 24, generator=g)
    fuser = UDPNetFuser(params=params(tiny_weights))
    fused = fuser(images)
    assert fused.shape == (1, channels, 20, 24) and 0 <= fused.min() and fused.max() <= 1
    masks = UDPNetMasks(params=params(tiny_weights))
    from fusionkit.imaging import rgb_to_ycbcr, to_luma, ycbcr_to_rgb

    maps = masks(to_luma(images))
    assert maps.shape == (n, 1, 20, 24) and torch.allclose(maps.sum(0), torch.ones(1, 20, 24), atol=1e-5)
    if channels == 3:
        expected = ycbcr_to_rgb((maps * rgb_to_ycbcr(images)).sum(0, keepdim=True))
    else:
        expected = (maps * images).sum(0, keepdim=True)
    assert torch.allclose(fused, expected, atol=1e-5)


def test_identical_inputs_come_back_unchanged(tiny_weights):
    img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    fused = UDPNetFuser(params=params(tiny_weights))(img.expand(2, 3, 16, 16).contiguous())
    assert torch.allclose(fused, img, atol=1e-4)


def test_binary_decision_is_the_argmax_of_the_soft_masks(tiny_weights):
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    soft = UDPNetMasks(params=params(tiny_weights, decision="soft"))(images)
    binary = UDPNetMasks(params=params(tiny_weights))(images)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(binary.argmax(0), soft.argmax(0)) and torch.equal(binary.sum(0), torch.ones(1, 16, 16))
    assert not torch.equal(soft, binary)


def test_predictor_masks_are_another_source(tiny_weights):
    images = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    g = UDPNetMasks(params=params(tiny_weights, decision="soft"))(images)
    f = UDPNetMasks(params=params(tiny_weights, masks="predictor", decision="soft"))(images)
    assert not torch.allclose(g, f)


def test_pipelines_use_the_trained_network_in_both_roles(tiny_weights, pair):
    fused = run({"method": "fuser", "fuser": {"name": "udpnet", "params": params(tiny_weights)}, "scale": 2,
                 "device": "cpu"}, inputs=pair.inputs, write=False)
    assert fused.fused.shape == (64, 64, 3)
    dfp = run({"focus_measure": {"name": "udpnet", "params": params(tiny_weights)}, "scale": 2},
              [*QUICK, "iterations=4", "decision_embedding.iterations=3"], inputs=pair.inputs, write=False)
    assert dfp.fused.shape == (64, 64, 3) and np.isfinite(dfp.fused).all()
    assert dfp.manifest["components"]["focus_measure:udpnet"]["dist"] == "fusionkit"


def test_the_built_in_weights_load_and_fit_the_defaults():
    payload = weights.read(BUILTIN_WEIGHTS)
    assert payload["architecture"] == UDPNet.Params().model_dump(mode="json")
    assert payload["training"]["steps"] > 0 and weights.count_parameters(payload["state_dict"]) < 390_000
    data = " ".join(d["path"] for d in payload["training"]["data"])
    assert "mfi-whu" in data and not any(b in data for b in ("lytro", "mffw", "nyud"))
    net = UDPNetFuser()
    assert net(torch.rand(2, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_an_ablation_swaps_the_trained_masks_in(tiny_weights, tmp_path, pair):
    """`fusionkit ablate` takes the trained network like any focus measure (grid over the mask source)."""
    import yaml

    from fusionkit.ablation import load_ablation, run_study
    from fusionkit.io import write_image

    for i, img in enumerate(pair.inputs):
        write_image(tmp_path / "ds" / f"01_{'AB'[i]}.png", img)
    (tmp_path / "base.yaml").write_text("name: swap\nmethod: composite\ndecision_embedding: {enabled: false}\n")
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump({
        "name": "swap", "base": "base.yaml", "dataset": "ds", "metrics": ["q_g"], "plots": False,
        "overrides": {"focus_measure.params": {}},
        "grid": {"focus_measure": [{"name": "max_gradient"},
                                   {"name": "udpnet", "params": params(tiny_weights)}]}}))
    plan = load_ablation(tmp_path / "abl.yaml")
    assert [v.resolved.spec.focus_measure.name for v in plan.variants] == ["max_gradient", "udpnet"]
    result = run_study(plan, tmp_path / "study")
    assert not result.failed and len(result.records) == 2

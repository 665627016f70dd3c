"""``fusionkit train`` for joint fusion and super-resolution (FAP-SR, issue 11): synthetic ``binary_regions`` stacks
(Eq. 21 for K inputs) with exact masks, ``data.scale`` batches (low-resolution inputs made as the mfisrf protocol
makes them), training phases (freezing by parameter group, BatchNorm statistics kept, fresh optimisers), their spec
errors, resume mid-phase bit for bit, and validation at scale 2. A tiny two-group test model stands in for FAP-SR."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fusionkit.errors import SpecError
from fusionkit.interfaces import Params as ParamsBase
from fusionkit.interfaces import TrainableModel, TrainingLoss
from fusionkit.io import write_image
from fusionkit.registry import build_catalog, hookimpl
from fusionkit.synthetic import region_map, sample_image
from fusionkit.training import load_train_spec, train
from fusionkit.training.data import area_average, batch_for_step, load_data, validation_set

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------ a test model

class TwoGroup(TrainableModel):
    """Per-pixel softmax weights from two small branches ``a`` and ``b`` (each conv, BatchNorm, conv), summed;
    ``fuse`` upsamples the weighted sum by ``scale`` (bicubic)."""

    name = "two_group"
    summary = "test model with two parameter groups"
    reference = "test"
    provides = ("fused", "weights")

    class Params(ParamsBase):
        scale: int = 1

    def __init__(self, params=None, training=None, **overrides):
        super().__init__(params, training, **overrides)
        self.a = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))
        self.b = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))
        self.seen_phases: list = []

    def parameter_groups(self):
        return {"a": self.a, "b": self.b}

    def _weights(self, s):
        b, k, _, h, w = s.shape
        x = s.reshape(b * k, 1, h, w)
        return (self.a(x) + self.b(x)).reshape(b, k, 1, h, w).softmax(1)

    def training_outputs(self, batch):
        self.seen_phases.append(batch.phase)
        m = self._weights(batch.sources)
        return {"fused": (m * batch.sources).sum(1), "weights": m}

    def fuse(self, sources):
        m = self._weights(sources)
        fused = (m * sources).sum(1)
        if self.params.scale > 1:
            fused = F.interpolate(fused, scale_factor=self.params.scale, mode="bicubic", align_corners=False)
        return fused, m


class TruthL1(TrainingLoss):
    """L1 between the fused image and the ground truth at the inputs' resolution."""

    name = "truth_l1"
    summary = "test loss"
    reference = "test"
    needs = ("fused",)

    class Params(ParamsBase):
        pass

    def __call__(self, outputs, batch):
        return (outputs["fused"] - batch.truth).abs().mean()


class MaskL1(TrainingLoss):
    """L1 between the predicted weights and the ground-truth masks."""

    name = "mask_l1"
    summary = "test loss"
    reference = "test"
    needs = ("weights",)

    class Params(ParamsBase):
        pass

    def __call__(self, outputs, batch):
        return (outputs["weights"] - batch.masks).abs().mean()


class NeedsDepth(TrainingLoss):
    """Needs an output the test model does not provide."""

    name = "needs_depth"
    summary = "test loss"
    reference = "test"
    needs = ("depth",)

    class Params(ParamsBase):
        pass

    def __call__(self, outputs, batch):
        return outputs["depth"].mean()


class _Plugin:
    @staticmethod
    @hookimpl
    def register_models(register):
        register(TwoGroup)

    @staticmethod
    @hookimpl
    def register_training_losses(register):
        for cls in (TruthL1, MaskL1, NeedsDepth):
            register(cls)


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(extra_plugins=[(_Plugin, "test-dist")])


@pytest.fixture(scope="module")
def aif(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr-data") / "aif"
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "camera"]):
        write_image(root / f"img{i}.png", sample_image(name, 40))
    return root


PHASES = [{"name": "masks", "steps": 3, "train": ["a"], "losses": [{"name": "mask_l1"}]},
          {"name": "image", "steps": 3, "train": ["b"], "losses": [{"name": "truth_l1"}],
           "optimizer": {"lr": 5e-3}}]


def sr_spec(aif, scale: int = 1, **extra) -> dict:
    d = {"name": "sr", "model": {"name": "two_group", "params": {"scale": scale}},
         "data": {"sources": [{"kind": "synthetic", "path": str(aif), "pattern": "binary_regions",
                               "strength": [1.0, 2.0]}], "crop": 16, "scale": scale},
         "batch": 4, "phases": PHASES, "optimizer": {"lr": 1e-2},
         "validation": {"every": 0, "fraction": 0.2, "size": 24, "metrics": ["q_g"]},
         "checkpoint": {"every": 100, "keep": 10}, "device": "cpu", "threads": 1}
    d.update(extra)
    return d


# ------------------------------------------------------------------------------------------------ data

def test_region_map_partitions_into_k_non_trivial_regions():
    for k in (2, 3, 5):
        labels = region_map((32, 32), k, np.random.default_rng(k))
        counts = np.bincount(labels.ravel(), minlength=k)
        assert labels.shape == (32, 32) and len(counts) == k and counts.min() >= 0.25 * 32 * 32 / k
        assert np.array_equal(labels, region_map((32, 32), k, np.random.default_rng(k)))


def test_binary_regions_batches(aif, catalog):
    spec = load_train_spec(sr_spec(aif, data={"sources": [{"kind": "synthetic", "path": str(aif),
                                                           "pattern": "binary_regions"}],
                                              "crop": 16, "stack_size": 3}), catalog=catalog).spec
    data = load_data(spec, catalog=catalog)
    a = batch_for_step(data, 5, 6, spec.data.augment)
    b = batch_for_step(data, 5, 6, spec.data.augment)
    c = batch_for_step(data, 6, 6, spec.data.augment)
    assert a.sources.shape == (6, 3, 1, 16, 16) and a.truth.shape == (6, 1, 16, 16)
    assert a.masks.shape == (6, 3, 1, 16, 16) and a.scale == 1 and a.phase is None
    assert a.hr_sources is a.sources and a.hr_truth is a.truth, "at scale 1 the HR fields are the inputs"
    assert torch.equal(a.masks.sum(1), torch.ones(6, 1, 16, 16))
    assert set(a.masks.unique().tolist()) <= {0.0, 1.0}
    inside = a.masks.bool()                                                  # [B, K, 1, h, w]
    truth = a.truth[:, None].expand_as(a.sources)
    assert torch.equal(a.sources[inside], truth[inside]), "input k is the crop itself inside region k"
    outside = ~inside
    assert (a.sources[outside] - truth[outside]).abs().mean() > 1e-3, "and blurred elsewhere"
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("sources", "truth", "masks"))
    assert not torch.equal(a.sources, c.sources)


def test_depth_layers_batches_carry_their_masks_too(aif, catalog):
    spec = load_train_spec(sr_spec(aif, data={"sources": [{"kind": "synthetic", "path": str(aif)}], "crop": 16}),
                           catalog=catalog).spec
    a = batch_for_step(load_data(spec, catalog=catalog), 2, 4, spec.data.augment)
    assert a.masks is not None and torch.equal(a.masks.sum(1), torch.ones(4, 1, 16, 16))
    inside = a.masks.bool()
    assert torch.equal(a.sources[inside], a.truth[:, None].expand_as(a.sources)[inside])


def test_scale_batches_are_the_mfisrf_downsampling_of_the_hr_crops(aif, catalog):
    from fusionkit.evaluation import _down

    spec = load_train_spec(sr_spec(aif, scale=2), catalog=catalog).spec
    data = load_data(spec, catalog=catalog)
    a = batch_for_step(data, 3, 4, spec.data.augment)
    assert a.scale == 2
    assert a.sources.shape == (4, 2, 1, 8, 8) and a.truth.shape == (4, 1, 8, 8)
    assert a.hr_sources.shape == (4, 2, 1, 16, 16) and a.hr_truth.shape == (4, 1, 16, 16)
    assert a.masks.shape == (4, 2, 1, 8, 8)
    bicubic = catalog.get("resampler", "bicubic").cls()
    for i in range(4):
        for k in range(2):
            want = _down(bicubic, a.hr_sources[i, k, 0].numpy()[:, :, None], 2)[:, :, 0]
            assert np.allclose(a.sources[i, k, 0].numpy(), want, atol=1e-6)
        assert np.allclose(a.truth[i, 0].numpy(), _down(bicubic, a.hr_truth[i, 0].numpy()[:, :, None], 2)[:, :, 0],
                           atol=1e-6)
    hr_masks = (a.hr_sources == a.hr_truth[:, None]).float()   # where the HR input is the crop itself
    assert torch.allclose(a.masks.sum(1), torch.ones(4, 1, 8, 8), atol=1e-6) and a.masks.min() >= 0
    assert torch.allclose(area_average(hr_masks, 2), a.masks, atol=1e-6), "LR masks: the HR masks area-averaged"
    assert torch.equal(batch_for_step(data, 3, 4, spec.data.augment).sources, a.sources)


def test_validation_items_at_scale(aif, catalog):
    spec = load_train_spec(sr_spec(aif, scale=2, validation={"every": 0, "fraction": 0.2, "size": 25}),
                           catalog=catalog).spec
    data = load_data(spec, catalog=catalog)
    items = validation_set(data, 25)
    assert len(items) == 1
    v = items[0]
    assert v.hr_sources.shape == (1, 2, 1, 24, 24) and v.sources.shape == (1, 2, 1, 12, 12)
    assert v.hr_truth.shape == (1, 1, 24, 24) and v.masks.shape == (1, 2, 1, 12, 12)
    assert torch.equal(validation_set(data, 25)[0].sources, v.sources)


def test_validation_ids_fix_the_split(aif, catalog):
    spec = load_train_spec(sr_spec(aif, data={"sources": [{"kind": "synthetic", "path": str(aif),
                                                           "validation_ids": ["img3", "img4"]}], "crop": 16}),
                           catalog=catalog).spec
    src = load_data(spec, catalog=catalog).sources[0]
    assert [it.id for it in src.validation] == ["img3", "img4"] and src.train_ids == ["img0", "img1", "img2"]


# ------------------------------------------------------------------------------------------------ spec errors

def test_spec_errors_for_scale_and_phases(tmp_path, aif, catalog):
    data = sr_spec(aif, scale=3, phases=[
        {"name": "masks", "steps": 2, "train": ["aa"], "losses": [{"name": "mask_l1"}]},
        {"name": "masks", "steps": 2, "train": ["b"], "losses": []},
        {"name": "other", "train": ["b"], "losses": [{"name": "needs_depth"}]}])
    path = tmp_path / "sr.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as exc:
        load_train_spec(path, catalog=catalog)
    text = exc.value.render()
    assert "not divisible by data.scale 3" in text and "data.crop 18" in text
    assert "no parameter group 'aa'" in text and "did you mean 'a'" in text and "its groups are: a, b" in text
    assert "phase 'masks' appears twice" in text
    assert "phase 'masks' has no losses" in text
    assert "needs depth, which the model 'two_group' does not provide" in text
    assert "training budget is missing in phase 'other'" in text
    lines = path.read_text().splitlines()
    aa = next(i for i, line in enumerate(lines, 1) if "- aa" in line)
    assert f"sr.yaml:{aa}" in text
    with pytest.raises(SpecError, match="top-level `steps` with phases"):
        load_train_spec(sr_spec(aif, steps=5), catalog=catalog)
    with pytest.raises(SpecError, match="top-level losses with phases"):
        load_train_spec(sr_spec(aif, losses=[{"name": "truth_l1"}]), catalog=catalog)
    with pytest.raises(SpecError, match="unknown downsampler 'bicubik'"):
        load_train_spec(sr_spec(aif, scale=2), ["data.downsampler=bicubik"], catalog=catalog)


def test_phases_inherit_the_optimizer_and_resolve_in_full(aif, catalog):
    resolved = load_train_spec(sr_spec(aif), ["phases[image].steps=4"], catalog=catalog)
    spec = resolved.spec
    assert spec.losses == [] and spec.steps is None
    assert spec.phases[0].optimizer.lr == 1e-2 and spec.phases[1].optimizer.lr == 5e-3
    assert spec.phases[1].optimizer.name == "adam" and spec.phases[1].steps == 4
    again = load_train_spec(resolved.to_dict(), catalog=catalog)
    assert again.to_dict() == resolved.to_dict(), "the resolved spec reads back as itself"


# ------------------------------------------------------------------------------------------------ phases

def _initial(spec_dict, catalog):
    spec = load_train_spec(spec_dict, catalog=catalog).spec
    torch.manual_seed(spec.seed)
    return TwoGroup(params=TwoGroup.Params(**spec.model.params)).state_dict()


def test_a_phase_trains_its_group_and_freezes_the_other(tmp_path, aif, catalog):
    d = sr_spec(aif, phases=[PHASES[0]], output={"dir": str(tmp_path / "one")})
    before = _initial(d, catalog)
    result = train(d, catalog=catalog, handle_signals=False)
    after = torch.load(result.weights, weights_only=True)["state_dict"]
    for k, v in before.items():
        if k.startswith("b."):
            assert torch.equal(v, after[k]), f"frozen {k} changed (BatchNorm statistics included)"
    assert not torch.equal(before["a.0.weight"], after["a.0.weight"])
    assert not torch.equal(before["a.1.running_mean"], after["a.1.running_mean"]), "a trained BN keeps statistics"
    m = result.manifest
    assert [p["name"] for p in m["phases"]] == ["masks"] and m["phases"][0]["steps_done"] == 3
    assert m["phases"][0]["final_loss"] == pytest.approx(_rows(result.run_dir)[-1]["total"])


def test_two_phases_resume_mid_phase_bit_for_bit(tmp_path, aif, catalog):
    whole = train(sr_spec(aif, output={"dir": str(tmp_path / "whole")}), catalog=catalog, handle_signals=False)
    rows = _rows(whole.run_dir)
    assert [r["phase"] for r in rows] == ["masks"] * 3 + ["image"] * 3
    assert [r["lr"] for r in rows] == [1e-2] * 3 + [5e-3] * 3, "each phase has its own optimiser"
    m = whole.manifest
    assert [(p["name"], p["first_step"], p["last_step"], p["steps_done"]) for p in m["phases"]] == \
        [("masks", 1, 3, 3), ("image", 4, 6, 3)]
    assert all(p["wall_seconds"] >= 0 and p["final_loss"] is not None for p in m["phases"])
    assert {(x["name"], x["phase"]) for x in m["losses"]} == {("mask_l1", "masks"), ("truth_l1", "image")}
    assert (whole.run_dir / "checkpoints" / "step-00000003.pt").is_file(), "a checkpoint at each phase's end"

    def interrupt_after_step_4(event):
        if event.kind == "step" and event.step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    cut = train(sr_spec(aif, output={"dir": str(tmp_path / "cut")}), catalog=catalog,
                progress=interrupt_after_step_4)
    assert cut.status == "interrupted" and cut.step == 4
    ckpt = torch.load(cut.run_dir / "checkpoints" / "step-00000004.pt", weights_only=True)
    assert ckpt["phase"] == "image" and ckpt["phase_index"] == 1
    again = train(sr_spec(aif), resume=cut.run_dir, catalog=catalog, handle_signals=False)
    assert again.status == "finished" and again.manifest["resumed"][0]["phase"] == "image"
    a = torch.load(whole.weights, weights_only=True)["state_dict"]
    b = torch.load(again.weights, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a), "resume mid-phase is bit for bit"
    assert [r["total"] for r in rows] == [r["total"] for r in _rows(again.run_dir)]


def test_the_model_sees_the_phase(tmp_path, aif, catalog):
    seen = []

    class Spy(TwoGroup):
        def training_outputs(self, batch):
            seen.append(batch.phase)
            return super().training_outputs(batch)

    class P:
        @staticmethod
        @hookimpl
        def register_models(register):
            register(Spy)

    Spy.name = "spy"
    cat = build_catalog(extra_plugins=[(_Plugin, "test-dist"), (P, "spy-dist")])
    d = sr_spec(aif, model={"name": "spy"}, output={"dir": str(tmp_path / "spy")},
                phases=[{**PHASES[0], "steps": 1}, {**PHASES[1], "steps": 2}])
    train(d, catalog=cat, handle_signals=False)
    assert [p for p in seen if p is not None][:3] == ["masks", "image", "image"]


def test_validation_at_scale_2_scores_against_the_hr_truth(tmp_path, aif, catalog):
    from fusionkit.training.loop import _Trainer  # noqa: F401  (the loop's validation is what is checked)

    d = sr_spec(aif, scale=2, phases=[{**PHASES[1], "steps": 1, "optimizer": {"lr": 1e-9}}],
                validation={"every": 1, "fraction": 0.2, "size": 24, "metrics": ["q_g"]},
                output={"dir": str(tmp_path / "x2")})
    result = train(d, catalog=catalog, handle_signals=False)
    m = result.manifest
    val = m["final"]["validation"]
    assert {"psnr", "ssim", "q_g", "loss/truth_l1"} <= set(val) and val["phase"] == "image"
    # the same number by hand from the final weights on the fixed validation stack
    spec = load_train_spec(d, catalog=catalog).spec
    model = TwoGroup(params=TwoGroup.Params(scale=2))
    model.load_state_dict(torch.load(result.weights, weights_only=True)["state_dict"])
    model.eval()
    item = validation_set(load_data(spec, catalog=catalog), 24)[0]
    with torch.no_grad():
        fused, _ = model.fuse(item.sources)
    assert fused.shape[-2:] == item.hr_truth.shape[-2:] == (24, 24)
    mse = float(((fused.clamp(0, 1) - item.hr_truth) ** 2).double().mean())
    assert val["psnr"] == pytest.approx(10 * np.log10(1 / mse), rel=1e-5)
    assert m["degradation"]["downsampler"] == "bicubic" and m["degradation"]["scale"] == 2
    assert abs(sum(m["degradation"]["taps"]) - 1) < 1e-6 and m["budget"]["scale"] == 2
    assert "x2 by bicubic up" in m["validation_reference"]["rule"]


def test_a_model_of_the_wrong_scale_is_refused_at_validation(tmp_path, aif, catalog):
    from fusionkit.errors import RunError

    d = sr_spec(aif, scale=2, model={"name": "two_group", "params": {"scale": 1}},
                phases=[{**PHASES[1], "steps": 1}], output={"dir": str(tmp_path / "bad")})
    with pytest.raises(RunError, match="make the model's scale parameter equal data.scale"):
        train(d, catalog=catalog, handle_signals=False)


def test_curves_mark_the_phases_and_dry_run_lists_them(tmp_path, aif, catalog, monkeypatch):
    from click.testing import CliRunner

    from fusionkit import cli as cli_mod

    result = train(sr_spec(aif, output={"dir": str(tmp_path / "c")}), catalog=catalog, handle_signals=False)
    assert (result.run_dir / "curves" / "train.png").is_file()
    monkeypatch.setattr("fusionkit.registry.default_catalog", lambda: catalog)
    path = tmp_path / "sr.yaml"
    path.write_text(yaml.safe_dump(sr_spec(aif), sort_keys=False))
    res = CliRunner().invoke(cli_mod.cli, ["train", str(path), "--dry-run"], obj={})
    assert res.exit_code == 0, res.output
    assert "phases" in res.output and "masks" in res.output and "4-6" in res.output


@pytest.mark.slow
def test_two_processes_with_phases_under_torchrun(tmp_path, aif):
    """DDP with a frozen part: udpnet's one group trained in two phases, the second a fresh wrapper."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    tiny = {"name": "udpnet", "params": {"stages": 1, "predictor_widths": [4, 6, 8], "mask_widths": [4, 6, 8],
                                         "image_widths": [4, 6, 8]}}
    d = {"name": "ddp", "model": tiny, "data": {"sources": [{"kind": "synthetic", "path": str(aif)}], "crop": 16},
         "batch": 4, "device": "cpu", "threads": 1, "output": {"dir": str(tmp_path / "ddp")},
         "validation": {"every": 0, "fraction": 0.2, "size": 24, "metrics": ["q_g"]},
         "phases": [{"name": "one", "steps": 2, "train": ["all"], "losses": [{"name": "blind_spot_mask"}]},
                    {"name": "two", "steps": 2, "losses": [{"name": "fusion_consistency"}]}]}
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m",
                           "fusionkit.cli", "train", str(path)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    m = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    assert m["status"] == "finished" and [p["steps_done"] for p in m["phases"]] == [2, 2]
    sums = m["distributed"]["replica_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "curves" / "train.csv") as fh:
        return [{k: (v if k == "phase" else float(v)) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]


def test_json_schema_describes_scale_patterns_and_phases():
    from fusionkit.training import train_json_schema

    schema = train_json_schema()
    defs = schema["$defs"]
    assert "phases" in schema["properties"] and {"name", "steps", "epochs", "losses", "train", "optimizer",
                                                 "schedule"} <= set(defs["PhaseSpec"]["properties"])
    assert {"scale", "downsampler"} <= set(defs["DataSpec"]["properties"])
    assert "binary_regions" in json.dumps(defs["DataSource"]["properties"]["pattern"])

"""``fusionkit train``: the training spec (the shared spec machinery), the data (split, shards, reproducible
batches, augmentation, synthetic stacks), a tiny training run that lowers its loss and resumes bit for bit after a
Ctrl-C, resume refusals, the result folder, and two processes under torchrun (gloo)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fusionkit.errors import InputError, SpecError
from fusionkit.io import write_image
from fusionkit.synthetic import sample_image
from fusionkit.training import load_train_spec, train, train_json_schema
from fusionkit.training.data import batch_for_step, load_data, read_exclusions, resolve_steps, validation_set
from fusionkit.training.loop import learning_rate, resume_problems

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {"name": "udpnet", "params": {"stages": 1, "predictor_widths": [4, 6, 8], "mask_widths": [4, 6, 8],
                                           "image_widths": [4, 6, 8]}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A folder of 6 real-looking pairs (NN_A/NN_B, one with a GT) and a folder of 4 all-in-focus images."""
    from fusionkit.synthetic import make_stack

    root = tmp_path_factory.mktemp("train-data")
    stacks, aif = root / "pairs", root / "aif"
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]
    for i, name in enumerate(names, 1):
        st = make_stack(sample_image(name, 48), n=2, scale=1, blur_sigma=2.0, seed=i)
        write_image(stacks / f"{i:02d}_A.png", st.inputs[0])
        write_image(stacks / f"{i:02d}_B.png", st.inputs[1])
        if i == 1:
            write_image(stacks / f"{i:02d}_GT.png", st.truth)
        if i <= 4:
            write_image(aif / f"img{i}.png", sample_image(name, 40))
    return stacks, aif


def spec_dict(folders, **extra) -> dict:
    stacks, aif = folders
    d = {"name": "tiny", "model": TINY_MODEL,
         "data": {"sources": [{"kind": "stacks", "path": str(stacks)},
                              {"kind": "synthetic", "path": str(aif), "strength": [1.0, 2.0]}],
                  "crop": 16},
         "batch": 4, "steps": 6, "optimizer": {"lr": 1e-3},
         "validation": {"every": 3, "fraction": 0.25, "size": 24, "metrics": ["q_g"]},
         "checkpoint": {"every": 3, "keep": 5}, "device": "cpu", "threads": 1}
    d.update(extra)
    return d


def write_spec(tmp_path: Path, data: dict, name: str = "train.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------ spec

def test_the_example_spec_validates_and_keeps_the_test_subset_out():
    data_dir = ROOT.parent / "shared" / "data" / "mfi-whu"
    if not data_dir.is_dir():
        pytest.skip(f"real data not available: {data_dir}")
    resolved = load_train_spec(ROOT / "examples" / "train" / "udpnet.yaml")
    spec = resolved.spec
    assert [t.name for t in spec.losses] == ["blind_spot_mask", "stage_mask", "fusion_consistency"]
    assert [t.weight for t in spec.losses] == [1.0, 0.2, 0.2]
    assert spec.losses[0].params == {"alpha": 0.4} and spec.model.params["stages"] == 3
    assert spec.data.crop == 60 and spec.batch == 16 and spec.optimizer.lr == 2e-4
    src = spec.data.sources[0]
    assert Path(src.path).resolve() == data_dir.resolve()   # ../shared may be a link
    test_ids = read_exclusions(src.exclude_list, [])
    assert len(test_ids) == 30 and "1" in test_ids and "116" in test_ids
    for banned in ("lytro", "mffw", "nyud"):
        assert all(banned not in s.path for s in spec.data.sources)


def test_spec_errors_are_located_with_a_fix(tmp_path, folders):
    data = spec_dict(folders)
    data["losses"] = [{"name": "blind_spot_mask"}, {"name": "stage_mask", "weight": 0.2},
                      {"name": "fusion_consistensy"}]
    data["optimizer"] = {"lr": 1e-3, "momentum": 0.9}
    path = write_spec(tmp_path, data)
    with pytest.raises(SpecError) as exc:
        load_train_spec(path)
    text = exc.value.render()
    assert "did you mean 'fusion_consistency'" in text
    assert "unknown key 'momentum'" in text
    lines = path.read_text().splitlines()
    momentum_line = next(i for i, line in enumerate(lines, 1) if "momentum" in line)
    assert f"train.yaml:{momentum_line}" in text


def test_set_overrides_and_budget_rules(tmp_path, folders):
    path = write_spec(tmp_path, spec_dict(folders))
    resolved = load_train_spec(path, ["steps=9", "losses[stage_mask].weight=0.5", "model.training.keep_probability=0.8"])
    assert resolved.spec.steps == 9
    assert [t.weight for t in resolved.spec.losses if t.name == "stage_mask"] == [0.5]
    assert resolved.spec.model.training["keep_probability"] == 0.8
    with pytest.raises(SpecError, match="both `steps` and `epochs`"):
        load_train_spec(path, ["epochs=2"])
    with pytest.raises(SpecError, match="training budget is missing"):
        load_train_spec(path, ["steps=null"])
    with pytest.raises(SpecError, match="must be < 1"):
        load_train_spec(path, ["model.training.keep_probability=1.5"])
    with pytest.raises(SpecError, match="nothing would be trained"):
        load_train_spec(path, ["losses=[{name: stage_mask, weight: 0}]"])
    with pytest.raises(SpecError, match="data folder not found"):
        load_train_spec(path, ["data.sources[0].path=nowhere"])


def test_a_loss_the_model_cannot_feed_is_refused(tmp_path, folders):
    from fusionkit.interfaces import Params as ParamsBase
    from fusionkit.interfaces import TrainingLoss
    from fusionkit.registry import build_catalog, hookimpl

    class NeedsDepth(TrainingLoss):
        """Needs an output udpnet does not provide."""

        name = "needs_depth"
        summary = "test loss"
        reference = "test"
        needs = ("depth",)

        class Params(ParamsBase):
            pass

        def __call__(self, outputs, batch):
            return outputs["depth"].mean()

    class Plugin:
        @staticmethod
        @hookimpl
        def register_training_losses(register):
            register(NeedsDepth)

    catalog = build_catalog(extra_plugins=[(Plugin, "test-dist")])
    data = spec_dict(folders, losses=[{"name": "blind_spot_mask"}, {"name": "needs_depth"}])
    with pytest.raises(SpecError, match="needs depth, which the model 'udpnet' does not provide"):
        load_train_spec(data, catalog=catalog)


def test_json_schema_describes_the_training_spec():
    schema = train_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"model", "losses", "data", "steps", "epochs", "optimizer", "schedule"} <= set(schema["properties"])


# ------------------------------------------------------------------------------------------------ data

def test_split_shards_and_exclusions(folders, tmp_path):
    listing = tmp_path / "test.txt"
    listing.write_text("# test subset\n01 005\n02 6\n")
    spec = load_train_spec(spec_dict(folders, data={
        "sources": [{"kind": "stacks", "path": str(folders[0]), "exclude_list": str(listing), "exclude": ["4"]}],
        "crop": 16})).spec
    one = load_data(spec)
    src = one.sources[0]
    assert sorted(src.excluded) == ["04", "05", "06"]
    assert len(src.validation) == 1 and len(src.train_ids) == 2
    assert not set(src.train_ids) & {it.id for it in src.validation}
    shards = [load_data(spec, rank=r, world=2).sources[0].shard_ids for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == sorted(src.train_ids)
    assert load_data(spec).summary() == one.summary(), "the split depends on the seed only"


def test_batches_are_reproducible_and_augmented_consistently(folders):
    spec = load_train_spec(spec_dict(folders)).spec
    data = load_data(spec)
    a = batch_for_step(data, 7, 6, spec.data.augment)
    b = batch_for_step(data, 7, 6, spec.data.augment)
    c = batch_for_step(data, 8, 6, spec.data.augment)
    assert torch.equal(a.sources, b.sources) and not torch.equal(a.sources, c.sources)
    assert torch.equal(torch.rand(3, generator=a.generator), torch.rand(3, generator=b.generator))
    assert a.sources.shape == (6, 2, 1, 16, 16) and a.sources.dtype == torch.float32
    assert 0 <= a.sources.min() and a.sources.max() <= 1


def test_synthetic_stacks_are_sharp_where_the_truth_is(folders):
    """A synthetic crop: each pixel of the truth equals one of the inputs there (the sharp layer)."""
    spec = load_train_spec(spec_dict(folders, data={
        "sources": [{"kind": "synthetic", "path": str(folders[1])}], "crop": 20})).spec
    batch = batch_for_step(load_data(spec), 3, 4, spec.data.augment)
    assert batch.truth is not None and batch.truth.shape == (4, 1, 20, 20)
    diff = (batch.sources[:, :, 0] - batch.truth).abs().amin(dim=1)
    assert diff.max() < 1e-6


def test_epochs_resolve_into_steps(folders):
    spec = load_train_spec(spec_dict(folders, steps=None, epochs=2)).spec
    data = load_data(spec)
    assert resolve_steps(spec, data) == int(np.ceil(2 * data.n_train_items / 4))


def test_validation_set_is_fixed(folders):
    spec = load_train_spec(spec_dict(folders)).spec
    data = load_data(spec)
    one, two = validation_set(data, 24), validation_set(data, 24)
    assert len(one) == 3 and all(torch.equal(x.sources, y.sources) for x, y in zip(one, two))
    assert any(v.truth is not None for v in one), "the synthetic validation stacks carry their ground truth"


def test_learning_rate_schedules(folders):
    spec = load_train_spec(spec_dict(folders, schedule={"name": "cosine", "warmup": 10, "min_ratio": 0.1})).spec
    lr = [learning_rate(spec, s, 110) for s in range(1, 111)]
    assert lr[4] == pytest.approx(5e-4) and lr[9] == pytest.approx(1e-3)
    assert lr[-1] == pytest.approx(1e-4) and all(a >= b for a, b in zip(lr[9:], lr[10:]))


# ------------------------------------------------------------------------------------------------ training

def test_tiny_training_lowers_its_loss(tmp_path, folders):
    data = spec_dict(folders, steps=40, batch=8, optimizer={"lr": 3e-3},
                     validation={"every": 0, "fraction": 0.25, "size": 24, "metrics": ["q_g"]},
                     checkpoint={"every": 40}, output={"dir": str(tmp_path / "run")})
    result = train(data, handle_signals=False)
    rows = [r["total"] for r in _rows(result.run_dir)]
    assert result.status == "finished" and result.step == 40
    assert np.mean(rows[-10:]) < 0.9 * np.mean(rows[:10]), rows


def _rows(run_dir: Path) -> list[dict]:
    import csv

    with open(run_dir / "curves" / "train.csv") as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def test_result_folder_and_weights(tmp_path, folders):
    from fusionkit import weights

    result = train(spec_dict(folders, output={"dir": str(tmp_path / "run")}), handle_signals=False)
    d = result.run_dir
    for name in ("weights.pt", "spec.resolved.yaml", "manifest.json", "curves/train.csv", "curves/train.png",
                 "curves/validation.csv", "curves/validation.png", "validation/sheet.png"):
        assert (d / name).is_file(), name
    m = json.loads((d / "manifest.json").read_text())
    assert m["status"] == "finished" and m["seed"] == 0 and m["budget"]["crops"] == 24
    assert m["environment"]["device"]["device"] == "cpu" and m["wall_seconds"] >= 0
    assert m["data"][0]["train_items"] + m["data"][0]["validation_items"] == 6
    assert m["outputs"]["weights_sha256"] == weights.sha256(d / "weights.pt")
    payload = weights.read(str(d / "weights.pt"))
    assert payload["model"] == "udpnet" and payload["architecture"]["stages"] == 1
    assert payload["training"]["steps"] == 6
    assert [p.name for p in sorted((d / "checkpoints").iterdir())] == ["step-00000003.pt", "step-00000006.pt"]
    assert load_train_spec(d / "spec.resolved.yaml").to_dict() == result.manifest["spec"]


def test_ctrl_c_keeps_a_checkpoint_and_resume_continues_bit_for_bit(tmp_path, folders):
    whole = train(spec_dict(folders, output={"dir": str(tmp_path / "whole")}), handle_signals=False)

    def interrupt_after_step_2(event):
        if event.kind == "step" and event.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    cut = train(spec_dict(folders, output={"dir": str(tmp_path / "cut")}), progress=interrupt_after_step_2)
    assert cut.status == "interrupted" and cut.step == 2 and cut.weights is None
    assert (cut.run_dir / "checkpoints" / "step-00000002.pt").is_file()
    assert json.loads((cut.run_dir / "manifest.json").read_text())["status"] == "interrupted"
    again = train(spec_dict(folders, output={"dir": str(tmp_path / "elsewhere")}), resume=cut.run_dir,
                  handle_signals=False)
    assert again.status == "finished" and again.run_dir == cut.run_dir.resolve()
    a = torch.load(whole.weights, weights_only=True)["state_dict"]
    b = torch.load(again.weights, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resume is bit for bit"
    rows_a, rows_b = _rows(whole.run_dir), _rows(again.run_dir)
    assert [r["total"] for r in rows_a] == [r["total"] for r in rows_b]
    assert again.manifest["resumed"][0]["at_step"] == 2


def test_resume_refuses_another_spec_and_allows_a_longer_constant_run(tmp_path, folders):
    first = train(spec_dict(folders, steps=3, output={"dir": str(tmp_path / "run")}), handle_signals=False)
    with pytest.raises(InputError, match=r"optimizer.lr 0.001 -> 0.002"):
        train(spec_dict(folders, steps=3, optimizer={"lr": 2e-3}), resume=first.run_dir, handle_signals=False)
    longer = train(spec_dict(folders, steps=5), resume=first.run_dir, handle_signals=False)
    assert longer.step == 5 and longer.status == "finished"
    with pytest.raises(InputError, match="checkpoint at step 5, beyond the 4 steps"):
        train(spec_dict(folders, steps=4), resume=first.run_dir, handle_signals=False)
    assert resume_problems({"steps": 5, "schedule": {"name": "cosine"}}, {"steps": 9, "schedule": {"name": "cosine"}})
    with pytest.raises(InputError, match="holds no checkpoint"):
        train(spec_dict(folders), resume=tmp_path, handle_signals=False)


def test_cli_dry_run_and_errors(tmp_path, folders):
    from click.testing import CliRunner

    from fusionkit.cli import cli

    path = write_spec(tmp_path, spec_dict(folders))
    res = CliRunner().invoke(cli, ["train", str(path), "--dry-run", "--set", "steps=12"], obj={})
    assert res.exit_code == 0, res.output
    assert "steps: 12" in res.output and "training spec is valid" in res.output and "parameters" in res.output
    res = CliRunner().invoke(cli, ["train", str(path), "--set", "batch=0"], obj={})
    assert res.exit_code == 2 and "batch" in res.output and "Fix:" in res.output


def test_two_processes_under_torchrun(tmp_path, folders):
    """torchrun --nproc_per_node 2 (gloo): both processes train, rank 0 alone writes, replicas stay identical, and
    each process trains on its own shard."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    path = write_spec(tmp_path, spec_dict(folders, steps=4, checkpoint={"every": 2, "keep": 5},
                                          output={"dir": str(tmp_path / "ddp")}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()),
                           "-m", "fusionkit.cli", "train", str(path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # not a terminal: progress as plain lines for a log, the last step always shown, no escape codes
    assert "\x1b[" not in done.stderr and re.search(r"^training\s+4/4\s", done.stderr, re.M), done.stderr[-2000:]
    runs = [p for p in tmp_path.iterdir() if p.name.startswith("ddp")]
    assert [p.name for p in runs] == ["ddp"], "only rank 0 made a folder"
    m = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    assert m["status"] == "finished" and m["distributed"]["world_size"] == 2
    assert m["distributed"]["backend"] == "gloo"
    sums = m["distributed"]["replica_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    for src in m["data"]:
        a, b = src["shards"]
        assert not set(a) & set(b) and sorted(a + b) == sorted(src["train_ids"])
    ckpts = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir())
    assert ckpts == ["step-00000002.pt", "step-00000004.pt"]
    state = torch.load(tmp_path / "ddp" / "weights.pt", weights_only=True)["state_dict"]
    last = torch.load(tmp_path / "ddp" / "checkpoints" / "step-00000004.pt", weights_only=True)["model"]
    assert all(torch.equal(state[k], last[k]) for k in state)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_training_spec_reference_is_up_to_date():
    import importlib.util

    script = ROOT / "scripts" / "gen_spec_docs.py"
    spec = importlib.util.spec_from_file_location("gen_spec_docs", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    assert mod.update(doc, mod.training_models()) == doc, \
        "docs/training.md is stale: run `.venv/bin/python scripts/gen_spec_docs.py`"


def test_keep_best_ships_the_best_validated_step_and_survives_a_resume(tmp_path, folders):
    """``validation.keep: best``: weights.pt holds the weights of the validation with the lowest loss (here), the
    last step's go to weights-last.pt, the manifest says which; a run interrupted and resumed chooses the same."""
    import csv

    val = {"every": 2, "fraction": 0.25, "size": 24, "metrics": ["q_g"], "keep": "best", "best_by": "loss"}
    data = spec_dict(folders, steps=8, optimizer={"lr": 3e-2}, validation=val, checkpoint={"every": 2, "keep": 10},
                     output={"dir": str(tmp_path / "whole")})
    whole = train(data, handle_signals=False)
    with open(whole.run_dir / "curves" / "validation.csv") as fh:
        rows = [(int(float(r["step"])), float(r["loss"])) for r in csv.DictReader(fh)]
    best = min(rows, key=lambda r: r[1])[0]
    chosen = torch.load(whole.weights, weights_only=True)
    at_best = torch.load(whole.run_dir / "checkpoints" / f"step-{best:08d}.pt", weights_only=True)["model"]
    assert all(torch.equal(chosen["state_dict"][k], at_best[k]) for k in at_best)
    assert chosen["training"]["selected"]["step"] == best == whole.manifest["weights_selected"]["step"]
    assert "best by loss" in whole.manifest["weights_selected"]["why"]
    last = whole.run_dir / "weights-last.pt"
    assert last.is_file() == (best != 8)
    if best != 8:
        at_last = torch.load(whole.run_dir / "checkpoints" / "step-00000008.pt", weights_only=True)["model"]
        kept = torch.load(last, weights_only=True)["state_dict"]
        assert all(torch.equal(kept[k], at_last[k]) for k in at_last)

    def interrupt_after_step_5(event):
        if event.kind == "step" and event.step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    cut = train({**data, "output": {"dir": str(tmp_path / "cut")}}, progress=interrupt_after_step_5)
    again = train(data, resume=cut.run_dir, handle_signals=False)
    resumed = torch.load(again.weights, weights_only=True)["state_dict"]
    assert all(torch.equal(resumed[k], chosen["state_dict"][k]) for k in resumed)
    assert again.manifest["weights_selected"] == whole.manifest["weights_selected"]


def test_best_by_must_be_a_validation_score(tmp_path, folders):
    val = {"metrics": ["q_g"], "keep": "best", "best_by": "q_y"}
    with pytest.raises(SpecError, match=r"'q_y' is not a validation score"):
        load_train_spec(write_spec(tmp_path, spec_dict(folders, validation=val)))
    ok = load_train_spec(write_spec(tmp_path, spec_dict(folders, validation={"keep": "best", "best_by": "q_y"})))
    assert ok.spec.validation.best_by == "q_y"      # the default metrics (q_g, q_y) include it

"""Ablation studies: variant expansion and patch semantics, validation errors naming the variant, dry run, resume,
failed runs, ARank, plots, CLI exit codes, and the local and Dask executors giving the same table."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import QUICK
from fusionkit.ablation import average_ranks, load_ablation, run_study, yaml_value
from fusionkit.ablation.results import aggregate, summary_markdown
from fusionkit.cli import cli
from fusionkit.errors import InputError, SpecError
from fusionkit.io import write_image
from fusionkit.synthetic import make_dataset, sample_image

#: a run in well under a second on one CPU thread (16x16 inputs, x2)
TINY = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in QUICK)}
TINY.update({"iterations": 8, "decision_embedding.iterations": 4})


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Rich wraps at 80 columns under CliRunner; wide enough that table cells stay on one line."""
    import fusionkit.cli as cli_module

    monkeypatch.setattr(cli_module.out, "width", 250)
    monkeypatch.setattr(cli_module.err, "width", 250)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two 32x32 synthetic pairs with ground truth and a one-line base spec."""
    root = tmp_path_factory.mktemp("ablation")
    for name in ("astronaut", "camera"):
        write_image(root / "src" / f"{name}.png", sample_image(name, 32), 8)
    make_dataset(root / "src", root / "ds", seed=2)
    (root / "base.yaml").write_text("name: tiny\nfocus_measure:\n  name: double_reblur\n  params: {threshold: 0.01}\n")
    return root


def write(root: Path, name: str = "abl.yaml", **fields) -> Path:
    doc = {"name": "t", "base": "base.yaml", "dataset": "ds", "protocol": "mfisrf", "scale": 2,
           "metrics": ["psnr", "rmg"], "overrides": dict(TINY), "plots": False, **fields}
    path = root / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------ expansion

def test_grid_times_named_variants_and_patch_order(data):
    path = write(data, grid={"focus_measure.params.threshold": [0.0, 0.05], "losses[joint_gradient].weight": [0, 0.5]},
                 variants={"ref": {}, "dm": {"decision_embedding.enabled": True,
                                              "focus_measure.params.threshold": 0.3}})
    plan = load_ablation(path, ["iterations=3"])
    names = [v.name for v in plan.variants]
    assert len(names) == 8 and len(set(v.slug for v in plan.variants)) == 8
    # named variants outermost, then the grid in key order with the last key varying fastest
    assert names[:2] == ["ref,focus_measure.params.threshold=0.0,losses[joint_gradient].weight=0",
                         "ref,focus_measure.params.threshold=0.0,losses[joint_gradient].weight=0.5"]
    assert names[4].startswith("dm,")
    by = {v.name: v.resolved.spec for v in plan.variants}
    s = by["dm,focus_measure.params.threshold=0.05,losses[joint_gradient].weight=0"]
    # the grid wins over the named patch, which wins over the study overrides; --set wins over everything
    assert s.focus_measure.params["threshold"] == 0.05 and s.decision_embedding.enabled is True
    assert [t.weight for t in s.losses if t.name == "joint_gradient"] == [0.0]
    assert s.iterations == 3 and s.focus_measure.params["gaussian_kernel"] == 5  # base params kept, defaults filled
    assert by[names[0]].decision_embedding.enabled is False  # the default, untouched by the patch
    assert plan.n_runs == 16 and plan.scale == 2
    for v in plan.variants:  # folder slugs are safe file names
        assert all(c.isalnum() or c in "._+-" for c in v.slug)


def test_no_grid_no_variants_is_the_base_and_switching_a_component_drops_its_params(data):
    plan = load_ablation(write(data))
    assert [v.name for v in plan.variants] == ["base"]
    plan = load_ablation(write(data, grid={"focus_measure.name": ["double_reblur", "max_gradient"]}))
    specs = [v.resolved.spec.focus_measure for v in plan.variants]
    assert specs[0].params["threshold"] == 0.01 and specs[1].name == "max_gradient" and "threshold" not in specs[1].params
    assert [v.short for v in plan.variants] == ["double_reblur", "max_gradient"]
    assert [v.slug for v in plan.variants][1].startswith("max_gradient-")


@pytest.mark.parametrize("value", [0, 1e-05, 0.5, -2.5e10, True, None, "0.5", "max_gradient", [8, 16, 32],
                                   {"name": "content", "weight": 1.0}, float("inf")])
def test_values_round_trip_through_set_syntax(value):
    assert yaml.safe_load(yaml_value(value)) == value


# ------------------------------------------------------------------------------------------------ errors

def test_every_invalid_variant_is_reported_at_once_naming_it(data):
    path = write(data, grid={"focus_measure.name": ["double_reblur", "doublereblur"]},
                 variants={"a": {"focus_measure.params.threshold": "high"}, "b": {"generator.prams.kernel": 3},
                           "c": {"iterations": 5}})
    with pytest.raises(SpecError) as info:
        load_ablation(path)
    text = info.value.render()
    lines = path.read_text().splitlines()
    assert text.startswith("3 problem(s)") and "did you mean 'double_reblur'" in text
    assert ("unknown focus measure 'doublereblur' (in variants 'a,focus_measure.name=doublereblur', "
            "'b,focus_measure.name=doublereblur', 'c,focus_measure.name=doublereblur')") in text
    assert "expected a number, got 'high' (in variant 'a,focus_measure.name=double_reblur')" in text
    assert ("unknown key 'prams' (in variants 'b,focus_measure.name=double_reblur', "
            "'b,focus_measure.name=doublereblur')") in text and "did you mean 'params'" in text
    # located on the ablation file's own lines
    grid_line = next(i for i, l in enumerate(lines, 1) if "doublereblur" in l)
    assert f"{path}:{grid_line}" in text
    a_line = next(i for i, l in enumerate(lines, 1) if "high" in l)
    assert f"{path}:{a_line}" in text


def test_ablation_file_errors(data):
    with pytest.raises(SpecError) as info:
        load_ablation(write(data, metrics=["psnrr"], grid={"iterations": 5}, varients={}, base="nope.yaml"))
    text = info.value.render()
    assert "unknown key 'varients'" in text and "did you mean 'variants'" in text
    assert "grid.iterations" in text and "YAML list" in text
    with pytest.raises(SpecError) as info:
        load_ablation(write(data, metrics=["psnrr"], base="nope.yaml", grid={"iterations": [5, 5]}))
    text = info.value.render()
    assert "did you mean 'psnr'" in text and "base spec not found" in text and "appears twice" in text


# ------------------------------------------------------------------------------------------------ running

def test_resume_failed_run_dry_run_and_outputs(data, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(data / "ds", ds)
    (ds / "02_B.png").write_bytes(b"not a png")  # item 02 fails in every variant; the others go on
    (tmp_path / "base.yaml").write_text((data / "base.yaml").read_text())
    path = write(tmp_path, grid={"losses[joint_gradient].weight": [0, 0.5]}, plots=True)
    out = tmp_path / "study"

    r = invoke("ablate", path, "--dry-run", "--out", out)
    assert r.exit_code == 0, r.output
    assert "2 variant(s) x 2 stack(s) = 4 run(s)" in r.output and "joint_gradient].weight=0.5" in r.output
    assert not out.exists()

    plan = load_ablation(path)
    seen = []

    def stop_after_two(event):
        seen.append(event.done)
        if event.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(plan, out, progress=stop_after_two)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and seen == [0, 1, 2]
    first = {(json.loads(x)["variant"], json.loads(x)["item"]) for x in lines}

    res = run_study(load_ablation(path), out)  # resumes: the ok run is skipped, the failed one retried
    ok_first = [k for k in first if k[1] == "01"]
    assert res.skipped == ok_first and len(res.ran) == 3
    assert [(r["variant"][-3:], r["item"], r["status"]) for r in res.records] == [
        ("t=0", "01", "ok"), ("t=0", "02", "failed"), ("0.5", "01", "ok"), ("0.5", "02", "failed")]
    assert "02_B.png" in res.failed[0]["error"]
    for name in ("study.json", "runs.csv", "runs.json", "summary.csv", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    run_dir = out / res.records[0]["run_dir"]
    assert {"spec.resolved.yaml", "manifest.json", "loss.csv", "fused.png"} <= {p.name for p in run_dir.iterdir()}
    assert res.records[0]["loss"] and res.table["variants"][0]["failed"] == ["02"]
    from PIL import Image

    for png in ("metrics.png", "loss.png", "contact_01.png", "contact_02.png"):  # 02: the GT beside "failed"
        with Image.open(out / "plots" / png) as im:
            im.verify()
            assert im.format == "PNG" and min(im.size) > 100, png

    # the CLI resumes too; a failed run gives exit code 1, and the dry run reports what is done
    r = invoke("ablate", path, "--out", out)
    assert r.exit_code == 1 and "resumed: 2 run(s)" in r.output and "failed" in r.output
    r = invoke("ablate", path, "--out", out, "--dry-run")
    assert "2 already done there" in r.output
    # another study into the same folder is refused, naming what changed
    with pytest.raises(InputError, match="holds a different study.*changed spec"):
        run_study(load_ablation(path, ["iterations=9"]), out)
    r = invoke("ablate", path, "--out", out, "--set", "iterations=9")
    assert r.exit_code == 1 and "resuming would mix results" in r.output and "Traceback" not in r.output


def test_cli_spec_errors_exit_2(data):
    path = write(data, grid={"generator.name": ["skipnet", "unett"]})
    r = invoke("ablate", path, "--dry-run")
    assert r.exit_code == 2 and "did you mean 'unet'" in r.output and "Traceback" not in r.output
    r = invoke("ablate", write(data, name="ok.yaml"), "--set", "optimizer.lr=-1", "--dry-run")
    assert r.exit_code == 2 and "--set optimizer.lr=-1" in r.output


def test_local_and_dask_executors_give_the_same_table(data, tmp_path):
    distributed = pytest.importorskip("distributed")
    path = write(data, grid={"losses[joint_gradient].weight": [0, 0.5]})
    local = run_study(load_ablation(path), tmp_path / "local")
    assert len(local.ran) == 4 and not local.failed
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = run_study(load_ablation(path), tmp_path / "dask", client=client)
    assert len(remote.ran) == 4 and not remote.failed
    strip = lambda t: {**t, "variants": [{k: v for k, v in r.items() if k != "seconds"} for r in t["variants"]]}
    assert strip(local.table) == strip(remote.table)
    assert json.loads((tmp_path / "dask" / "study.json").read_text())["executor"]["name"] == "dask"


# ------------------------------------------------------------------------------------------------ ranking

def test_average_ranks_ties_and_missing():
    assert average_ranks([3.0, 1.0, 2.0], higher_is_better=True) == [1.0, 3.0, 2.0]
    assert average_ranks([3.0, 1.0, 2.0], higher_is_better=False) == [3.0, 1.0, 2.0]
    assert average_ranks([5.0, 5.0, 1.0, None], higher_is_better=True) == [1.5, 1.5, 3.0, 4.0]
    assert average_ranks([None, 2.0, float("nan")], higher_is_better=True) == [2.5, 1.0, 2.5]


def test_arank_on_a_hand_made_table():
    # three variants, two stacks; psnr higher is better, rmg lower is better; q_g missing for C
    vals = {"A": [(30, 2.0, 0.5), (32, 2.0, 0.7)], "B": [(31, 1.0, 0.6), (31, 1.0, 0.6)], "C": [(20, 3.0, None)] * 2}
    records = [{"variant": v, "item": f"0{i}", "status": "ok", "seconds": 1.0,
                "metrics": {"psnr": p, "rmg": r, "q_g": q}} for v, rows in vals.items() for i, (p, r, q) in enumerate(rows)]
    records.append({"variant": "D", "item": "01", "status": "failed", "seconds": 0.0,
                    "metrics": {"psnr": None, "rmg": None, "q_g": None}})
    t = aggregate(records, ["A", "B", "C", "D"], ["psnr", "rmg", "q_g"], {"psnr": True, "rmg": False, "q_g": True},
                  ["psnr", "rmg", "q_g"])
    rows = {r["variant"]: r for r in t["variants"]}
    assert rows["A"]["metrics"]["psnr"] == {"mean": 31.0, "std": 1.0, "n": 2}
    # psnr: A=B tie (31) -> 1.5 each, C 3, D 4; rmg: B 1, A 2, C 3, D 4; q_g: A=B tie -> 1.5, C and D missing -> 3.5
    assert rows["A"]["ranks"] == {"psnr": 1.5, "rmg": 2.0, "q_g": 1.5}
    assert rows["B"]["arank"] == pytest.approx((1.5 + 1 + 1.5) / 3)
    assert rows["C"]["arank"] == pytest.approx((3 + 3 + 3.5) / 3) and rows["D"]["arank"] == pytest.approx(11.5 / 3)
    assert t["best"] == "B" and rows["D"]["failed"] == ["01"]
    md = summary_markdown(t, "x")
    assert "| `B` |" in md and "**1.33**" in md and "31.0000 ± 1.0000" in md
    only = aggregate(records, ["A", "B", "C", "D"], ["psnr", "rmg", "q_g"], {"psnr": True, "rmg": False, "q_g": True},
                     ["rmg"])
    assert [r["arank"] for r in only["variants"]] == [2.0, 1.0, 3.0, 4.0]


@pytest.mark.slow
def test_local_worker_processes_give_the_sequential_table(data, tmp_path):
    """Two spawned worker processes (one torch thread each) against the sequential run, same thread count."""
    path = write(data, grid={"losses[joint_gradient].weight": [0, 0.5]})
    seq = run_study(load_ablation(path), tmp_path / "seq", threads=1)
    par = run_study(load_ablation(path), tmp_path / "par", workers=2, threads=1)
    assert len(par.ran) == 4 and not par.failed and {r["host"] for r in par.records}
    strip = lambda t: {**t, "variants": [{k: v for k, v in r.items() if k != "seconds"} for r in t["variants"]]}
    assert strip(seq.table) == strip(par.table)

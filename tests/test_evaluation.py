"""`fusionkit synth` and `fusionkit eval`: dataset discovery, both protocols end to end, resume, failed items."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import QUICK
from fusionkit.cli import cli
from fusionkit.dataset import discover
from fusionkit.errors import InputError
from fusionkit.evaluation import evaluate
from fusionkit.io import read_image, write_image
from fusionkit.synthetic import make_dataset, sample_image

#: even quicker than QUICK: a few seconds for a whole 3-item evaluation on one CPU thread
TINY = [o for o in QUICK if not o.startswith(("iterations=", "decision_embedding.iterations="))] + [
    "iterations=10", "decision_embedding.iterations=5", "name=tiny"]
SPEC = {"name": "tiny"}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    for name in ("astronaut", "camera", "coffee"):
        write_image(root / "src" / f"{name}.png", sample_image(name, 48), 8)
    r = invoke("synth", root / "src", root / "ds", "--seed", 3)
    assert r.exit_code == 0, r.output
    return root / "ds"


def test_synth_writes_a_deterministic_dataset(dataset, tmp_path):
    names = sorted(p.name for p in dataset.iterdir())
    assert names == [f"0{k}_{r}.png" for k in (1, 2, 3) for r in ("A", "B", "GT")]
    again = make_dataset(dataset.parent / "src", tmp_path / "again", seed=3)
    for p in again:
        assert np.array_equal(read_image(p)[0], read_image(dataset / p.name)[0])
    a, b, gt = (read_image(dataset / f"01_{r}.png")[0] for r in ("A", "B", "GT"))
    assert a.shape == gt.shape == (48, 48, 3) and not np.array_equal(a, b)
    stack = make_dataset(dataset.parent / "src", tmp_path / "stack", n=3, blur="disk", limit=1)
    assert sorted(p.name for p in stack) == ["01_1.png", "01_2.png", "01_3.png", "01_GT.png"]
    items = discover(tmp_path / "stack")
    assert len(items) == 1 and len(items[0].sources) == 3 and items[0].gt is not None


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="no dataset images"):
        discover(tmp_path)
    img = np.zeros((8, 8, 1), np.float32)
    write_image(tmp_path / "01_A.png", img)
    with pytest.raises(InputError, match="single source"):
        discover(tmp_path)
    write_image(tmp_path / "01_2.png", img)
    with pytest.raises(InputError, match="mixes pair and stack"):
        discover(tmp_path)


def test_both_protocols_end_to_end(dataset, tmp_path):
    out = tmp_path / "fusion"
    r = invoke("eval", "--help")
    assert "--protocol" in r.output
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: tiny\n")
    sets = [x for q in TINY for x in ("--set", q)]
    r = invoke("eval", spec, dataset, "--out", out, "--metrics", "psnr,q_g", *sets)
    assert r.exit_code == 0, r.output
    assert "q_g" in r.output and "results:" in r.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["id"] for x in rows] == ["01", "02", "03"] and all(x["status"] == "ok" for x in rows)
    assert all(x["metrics"]["psnr"] > 10 for x in rows)
    assert (out / "items" / "01" / "fused.png").is_file()
    assert read_image(out / "items" / "01" / "fused.png")[0].shape == (48, 48, 3)
    md = (out / "summary.md").read_text()
    assert "psnr ↑" in md and "q_g ↑" in md and "**mean**" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["psnr"]["n"] == 3 and summary["metrics"]["q_g"]["higher_is_better"] is True
    assert (out / "results.csv").read_text().splitlines()[0] == "id,status,psnr,q_g,seconds,error"

    res = evaluate(SPEC, dataset, tmp_path / "sr", protocol="mfisrf", scale=2, overrides=TINY)
    assert res.metrics == ["psnr", "ssim", "rmg", "rei", "rie", "rmga", "reco"]
    assert all(r["status"] == "ok" and None not in r["metrics"].values() for r in res.rows)
    info = json.loads((tmp_path / "sr" / "eval.json").read_text())
    assert info["protocol"] == "mfisrf" and info["scale"] == 2 and info["downsampler"] == "bicubic"
    assert info["spec"]["scale"] == 2 and info["status"] == "finished" and "numpy" in info["versions"]
    # x2 output of the 24x24 inputs is compared at the sources' full resolution
    assert read_image(tmp_path / "sr" / "items" / "02" / "fused.png")[0].shape == (48, 48, 1)  # camera: grey
    assert "rmg ↓" in (tmp_path / "sr" / "summary.md").read_text()


def test_resume_after_interruption(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = Path("resume")  # a relative results folder works too

    def stop_after_first(event):
        if event.stage == "items" and event.iteration == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(SPEC, dataset, out, metrics=["psnr"], overrides=TINY, progress=stop_after_first)
    assert len((out / "results.jsonl").read_text().splitlines()) == 1
    assert not (out / "summary.json").exists()
    res = evaluate(SPEC, dataset, out, metrics=["psnr"], overrides=TINY)
    assert res.skipped == ["01"] and res.ran == ["02", "03"]
    assert [r["status"] for r in res.rows] == ["ok"] * 3 and res.rows[2]["run_dir"] == "items/03"
    # a lost line is run again, nothing else
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    res = evaluate(SPEC, dataset, out, metrics=["psnr"], overrides=TINY)
    assert res.ran == ["02"] and res.summary["metrics"]["psnr"]["n"] == 3
    with pytest.raises(InputError, match="different settings"):
        evaluate(SPEC, dataset, out, protocol="mfisrf", metrics=["psnr"], overrides=TINY)


def test_failed_item_is_recorded_and_the_rest_scored(dataset, tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    for p in dataset.iterdir():
        (ds / p.name).write_bytes(p.read_bytes())
    (ds / "02_B.png").write_bytes(b"not a png")
    (ds / "03_GT.png").unlink()  # no ground truth: reference metrics are left empty
    out = tmp_path / "out"
    r = invoke("eval", tmp_path / "missing.yaml", ds, "--out", out)
    assert r.exit_code == 2  # spec errors are one paragraph and exit code 2
    res = evaluate(SPEC, ds, out, metrics=["psnr", "q_g"], overrides=TINY)
    by_id = {r["id"]: r for r in res.rows}
    assert by_id["02"]["status"] == "failed" and "02_B.png" in by_id["02"]["error"]
    assert "\n" not in by_id["02"]["error"]
    assert by_id["01"]["status"] == by_id["03"]["status"] == "ok"
    assert by_id["03"]["metrics"]["psnr"] is None and by_id["03"]["metrics"]["q_g"] is not None
    assert res.summary["failed"] == ["02"] and res.summary["metrics"]["psnr"]["n"] == 1
    assert "## Failures" in (out / "summary.md").read_text()
    # rerunning retries only the failed item
    res = evaluate(SPEC, ds, out, metrics=["psnr", "q_g"], overrides=TINY)
    assert res.ran == ["02"] and res.skipped == ["01", "03"]


def test_executors_give_the_same_rows(dataset, tmp_path):
    """`fusionkit eval` spreads items like `fusionkit ablate`: 2 local processes and a Dask cluster give the rows of
    the sequential evaluation."""
    distributed = pytest.importorskip("distributed")
    seq = evaluate(SPEC, dataset, tmp_path / "seq", metrics=["psnr", "q_g"], overrides=TINY, threads=1)
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: tiny\n")
    sets = [x for q in TINY for x in ("--set", q)]
    r = invoke("eval", spec, dataset, "--out", tmp_path / "two", "--metrics", "psnr,q_g", "--workers", 2,
               "--threads", 1, *sets)
    assert r.exit_code == 0, r.output
    two = [json.loads(x) for x in (tmp_path / "two" / "results.jsonl").read_text().splitlines()]
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask = evaluate(SPEC, dataset, tmp_path / "dask", metrics=["psnr", "q_g"], overrides=TINY, client=client,
                        executor="dask")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "host")} for r in rows]  # noqa: E731
    assert strip(two) == strip(seq.rows) == strip(dask.rows)
    assert [x["run_dir"] for x in two] == ["items/01", "items/02", "items/03"]

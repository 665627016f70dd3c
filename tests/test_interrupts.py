"""SIGINT and SIGTERM (issue 12.3): handled alike, at any moment of a run.

- during the fusion: the last good iterate is written, with a manifest that says ``interrupted`` at iteration k
  (exit 130 for SIGINT, 143 for SIGTERM);
- before anything worth keeping exists: no run folder at all;
- while the run folder is being written: it is finished first, then the process stops;
- never a temporary file or a half-written folder left behind.

The CLI runs in a subprocess (real signals, real handlers); the Python API and the evaluation/study bookkeeping
are also checked in-process.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import fusionkit
from fusionkit.errors import RunInterrupted
from fusionkit.io import write_image

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["device=cpu", "generator.params.channels=[8,16]", "generator.params.skip=[4,4]",
         "decision_embedding.generator.params.channels=[8,16]", "decision_embedding.generator.params.skip=[0,4]"]
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.fixture
def folder(tmp_path, pair):
    (tmp_path / "in").mkdir()
    for name, img in (("a", pair.inputs[0]), ("b", pair.inputs[1])):
        write_image(tmp_path / "in" / f"{name}.png", img, 8)
    spec = {"name": "t", "inputs": [str(tmp_path / "in" / "a.png"), str(tmp_path / "in" / "b.png")],
            "output": {"dir": str(tmp_path / "out" / "run")}}
    (tmp_path / "in" / "spec.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def leftovers(root: Path) -> list[str]:
    """Temporary files and staging folders anywhere under ``root`` (there must be none)."""
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(".part") or ".partial-" in p.name)


def start(args: list[str], cwd: Path, driver: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "FUSIONKIT_PROGRESS_SECONDS": "0", "PYTHONUNBUFFERED": "1"}
    code = driver or "import sys; from fusionkit.cli import main; sys.argv = ['fusionkit'] + sys.argv[1:]; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def signal_when(proc: subprocess.Popen, marker: str, sig: int, timeout: float = 120) -> tuple[str, str]:
    """Send ``sig`` as soon as a stderr line starts with ``marker``; return (stdout, stderr) once it ends."""
    seen: list[str] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if line.lstrip().startswith(marker):
            proc.send_signal(sig)
            break
    out, rest = proc.communicate(timeout=timeout)
    return out, "".join(seen) + rest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_fusion_keeps_the_last_good_iterate(folder, sig):
    proc = start(["run", str(folder / "in" / "spec.yaml"), *[x for s in SMALL for x in ("--set", s)],
                  "--set", "iterations=20000", "--set", "decision_embedding.iterations=5"], folder)
    out, err = signal_when(proc, "fusion", sig)
    assert proc.returncode == EXIT[sig], err
    assert "Traceback" not in err and "interrupted at iteration" in err
    run = folder / "out" / "run"
    assert out.strip() == str(run)
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "interrupted" and m["complete"] is False
    assert m["interrupted"].startswith("interrupted at iteration") and "of 20000" in m["interrupted"]
    names = {p.relative_to(run).as_posix() for p in run.rglob("*")}
    assert {"fused.png", "manifest.json", "spec.resolved.yaml", "loss.csv", "maps/map_00.png"} <= names
    assert leftovers(folder) == [] and sorted(p.name for p in (folder / "out").iterdir()) == ["run"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_any_good_iterate_leaves_no_run_folder(folder, sig):
    proc = start(["run", str(folder / "in" / "spec.yaml"), *[x for s in SMALL for x in ("--set", s)],
                  "--set", "decision_embedding.enabled=auto", "--set", "decision_embedding.iterations=20000",
                  "--set", "decision_embedding.stop.rule=none"], folder)
    out, err = signal_when(proc, "decision embedding", sig)
    assert proc.returncode == EXIT[sig], err
    assert "Traceback" not in err and "no run folder was written" in err
    assert out == ""
    assert not (folder / "out").exists() or list((folder / "out").iterdir()) == []


DURING_WRITE = """
import os, signal, sys
import fusionkit.runner as runner
real = runner._write_outputs

def interrupted_while_writing(run_dir, *args, **kwargs):
    from fusionkit.io import write_text
    write_text(run_dir / "early.txt", "the first file of the folder")
    os.kill(os.getpid(), signal.{sig})          # arrives while the run folder is being written
    return real(run_dir, *args, **kwargs)

runner._write_outputs = interrupted_while_writing
from fusionkit.cli import main
sys.argv = ["fusionkit"] + sys.argv[1:]
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_writing_finishes_the_folder_first(folder, sig):
    proc = start(["run", str(folder / "in" / "spec.yaml"), "--set", "method=composite",
                  "--set", "decision_embedding.enabled=false", "--set", "device=cpu"], folder,
                 driver=DURING_WRITE.replace("{sig}", sig.name))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT[sig], err
    assert "Traceback" not in err and "completed first" in err
    run = folder / "out" / "run"
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "ok" and m["complete"] is True
    assert (run / "fused.png").exists() and (run / "early.txt").exists()
    assert leftovers(folder) == []


def test_the_api_writes_the_interrupted_run_and_raises(tmp_path, pair):
    """In Python, Ctrl-C (KeyboardInterrupt) during the fusion: a RunInterrupted that carries the run folder."""
    from fusionkit.interfaces import Loss
    from fusionkit.registry import build_catalog, hookimpl

    class StopAfter(Loss):
        """L1 to the first input; the 30th call is interrupted."""

        name = "stop_after"
        summary = "test loss"
        reference = "test"

        def __init__(self, params=None, **kw):
            super().__init__(params, **kw)
            self.calls = 0

        def __call__(self, ctx):
            self.calls += 1
            if self.calls == 30:
                raise KeyboardInterrupt
            return (ctx.output_low - ctx.inputs[:1]).abs().mean()

    class Plugin:
        @hookimpl
        def register_losses(self, register):
            register(StopAfter)

    catalog = build_catalog(extra_plugins=[(Plugin(), "test-stop")])
    spec = {"name": "t", "losses": [{"name": "stop_after"}], "output": {"dir": str(tmp_path / "run")}}
    with pytest.raises(RunInterrupted) as e:
        fusionkit.run(spec, [*SMALL, "iterations=100", "decision_embedding.enabled=false"], inputs=pair.inputs,
                      catalog=catalog)
    assert e.value.run_dir == tmp_path / "run" and not e.value.complete
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["status"] == "interrupted" and "of 100" in m["interrupted"]
    assert e.value.result.fused.shape == (64, 64, 3)
    assert leftovers(tmp_path) == []


def test_an_interrupted_evaluation_says_so(tmp_path, pair, monkeypatch):
    from fusionkit import evaluation

    data = tmp_path / "data"
    data.mkdir()
    for i in (1, 2, 3):
        for role, img in (("A", pair.inputs[0]), ("B", pair.inputs[1])):
            write_image(data / f"0{i}_{role}.png", img, 8)
    real = evaluation.evaluate_item
    calls = []

    def item(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_item", item)
    spec = {"name": "t", "method": "composite", "decision_embedding": {"enabled": False}, "device": "cpu"}
    with pytest.raises(KeyboardInterrupt):
        evaluation.evaluate(spec, data, tmp_path / "eval", metrics=["q_g"])
    info = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert info["status"] == "interrupted" and info["n_ok"] == 1 and "finished" not in info
    assert leftovers(tmp_path) == []


def test_an_interrupted_study_says_so(tmp_path, monkeypatch):
    from fusionkit.ablation import load_ablation, run_study
    from fusionkit.ablation import study as study_module
    from fusionkit.synthetic import make_dataset, sample_image

    write_image(tmp_path / "src" / "a.png", sample_image("astronaut", 32), 8)
    make_dataset(tmp_path / "src", tmp_path / "ds", seed=2)
    (tmp_path / "base.yaml").write_text("name: tiny\nmethod: composite\ndecision_embedding: {enabled: false}\n")
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump(
        {"name": "t", "base": "base.yaml", "dataset": "ds", "metrics": ["psnr"], "plots": False,
         "grid": {"focus_measure.name": ["double_reblur", "max_gradient", "uniform"]}}))
    plan = load_ablation(tmp_path / "abl.yaml")
    real = study_module.run_local

    def first_then_interrupted(tasks, *args, **kwargs):
        yield next(iter(real(tasks[:1], *args, **kwargs)))
        raise KeyboardInterrupt

    monkeypatch.setattr(study_module, "run_local", first_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_study(plan, tmp_path / "study")
    info = json.loads((tmp_path / "study" / "study.json").read_text())
    assert info["status"] == "interrupted" and info["n_ok"] == 1 and "finished" not in info
    assert leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_tiled_run_keeps_finished_tiles_and_completes_the_rest(folder, workers):
    proc = start(["run", str(folder / "in" / "spec.yaml"), *[x for s in SMALL for x in ("--set", s)],
                  "--set", "tiling.tile=32", "--set", "tiling.overlap=16", "--set", f"tiling.workers={workers}",
                  "--set", "threads=1", "--set", f"iterations={20000 if workers == 1 else 1500}"], folder)
    # one worker: during the first tile's fusion; two: once the first tile is done
    out, err = signal_when(proc, "fusion" if workers == 1 else "tiles                   1/", signal.SIGINT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    m = json.loads((folder / "out" / "run" / "manifest.json").read_text())
    assert m["status"] == "interrupted" and "two-step composite" in m["interrupted"]
    assert leftovers(folder) == []

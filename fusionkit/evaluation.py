"""Evaluating one spec over a dataset folder (``fusionkit eval``).

Protocols:

- ``fusion``: the dataset's sources are the inputs as they are; the output is scored against the sources (at the
  output's size: upsampled by the named resampler when the spec's scale is above 1) and the ground truth when the
  item has one. Default scale 1.
- ``mfisrf`` (the DFP paper's multi-focus image super-resolution fusion protocol): each full-resolution source is
  cropped to a multiple of ``s`` and downsampled x``s`` by the named resampler's ``down`` to make the inputs; the
  x``s`` output is scored against the full-resolution sources (the R-metrics) and the ground truth when present.
  Default scale: the spec's.

Outputs in ``out_dir``: ``items/<id>/`` (each item's run folder), ``results.jsonl`` (one line per item, rewritten
atomically after every item: this is what resuming reads; items already ``ok`` are skipped), and at the end
``results.csv``, ``summary.json``, ``summary.md`` and ``eval.json`` (the protocol and what produced it).
"""
from __future__ import annotations

import csv
import dataclasses
import io as _io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from .dataset import DatasetItem, discover
from .engine import ProgressCallback, ProgressEvent
from .errors import FusionkitError, InputError
from .io import read_image, write_json, write_text
from .provenance import environment, utc_now
from .registry import Catalog, default_catalog
from .validation import load_spec

PROTOCOLS = ("fusion", "mfisrf")
FUSION_METRICS = ("q_g", "q_mi", "q_y", "q_cb")
MFISRF_METRICS = ("rmg", "rei", "rie", "rmga", "reco")
REFERENCE_METRICS = ("psnr", "ssim")


@dataclass
class EvalResult:
    """Where the evaluation was written, the per-item rows (all items, also those done by an earlier run), the
    per-metric summary, and which item ids this call ran and skipped (already ``ok``)."""

    out_dir: Path
    rows: list[dict]
    summary: dict
    metrics: list[str]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    protocol: str = "fusion"
    scale: int = 1

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]

    @property
    def files(self) -> dict[str, Path]:
        return {k: self.out_dir / v for k, v in (("results", "results.jsonl"), ("csv", "results.csv"),
                                                  ("summary", "summary.json"), ("markdown", "summary.md"),
                                                  ("eval", "eval.json"))}


def default_metrics(protocol: str, with_reference: bool) -> list[str]:
    base = list(FUSION_METRICS if protocol == "fusion" else MFISRF_METRICS)
    return (list(REFERENCE_METRICS) if with_reference else []) + base


def evaluate(spec, dataset_dir: str | Path, out_dir: str | Path, *, protocol: str = "fusion",
             metrics: Sequence[str] | None = None, scale: int | None = None, downsampler: str = "bicubic",
             overrides: Sequence[str] = (), catalog: Catalog | None = None,
             progress: ProgressCallback | None = None, executor: str = "local", workers: int = 1,
             scheduler: str | None = None, threads: int | None = None, client=None) -> EvalResult:
    """Run ``spec`` on every item of ``dataset_dir`` under ``protocol`` and score it; see the module docstring.

    ``progress`` gets ``ProgressEvent("items", done, total)`` after each item (and, sequentially, the runs' own
    events). A failing item is recorded as ``failed`` with its error and the loop goes on; an interrupted
    evaluation resumes when called again with the same ``out_dir``. The items run where ``fusionkit ablate`` runs
    its runs (:mod:`fusionkit.ablation.executors`): ``executor="local"`` with ``workers`` processes (1:
    sequentially in this process), or ``"dask"`` on ``scheduler`` (or ``client``, or a local cluster of
    ``workers``); ``threads`` torch threads per item. Every executor gives the same rows.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown evaluation protocol {protocol!r}", f"use one of: {', '.join(PROTOCOLS)}")
    catalog = catalog or default_catalog()
    if isinstance(overrides, str):
        overrides = [overrides]
    items = discover(dataset_dir)
    base = load_spec(spec, overrides, catalog=catalog, require_inputs=False)
    s = protocol_scale(protocol, scale, base.spec.scale)
    resolved = load_spec(spec, [*overrides, f"scale={s}"], catalog=catalog, require_inputs=False)
    resampler = catalog.get("resampler", downsampler).cls()
    has_gt = any(it.gt is not None for it in items)
    names = list(metrics) if metrics else default_metrics(protocol, has_gt)
    scorers = {m: catalog.get("metric", m).cls() for m in names}

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = {"protocol": protocol, "scale": s, "downsampler": downsampler, "metrics": names}
    _check_same_config(out, config)
    eval_info = {**config, "fusionkit": __version__, "dataset": str(Path(dataset_dir).resolve()),
                 "spec_file": resolved.source, "overrides": list(overrides), "spec": resolved.to_dict(),
                 "items": [it.id for it in items], "status": "running", "started": utc_now(),
                 "versions": environment()["packages"],
                 "metric_info": metric_info(scorers, catalog)}
    write_json(out / "eval.json", eval_info)

    rows = _read_jsonl(out / "results.jsonl")
    known = {it.id for it in items}
    rows = {k: v for k, v in rows.items() if k in known}
    report = progress or (lambda e: None)
    ran, skipped = [], []
    done = sum(1 for it in items if rows.get(it.id, {}).get("status") == "ok")
    report(ProgressEvent("items", done, len(items)))
    todo = []
    for it in items:
        if rows.get(it.id, {}).get("status") == "ok":
            skipped.append(it.id)
        else:
            todo.append(it)
    if executor == "local" and workers <= 1 and client is None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        finished = (_evaluate_item(it, resolved, protocol, s, resampler, scorers, catalog, out, progress)
                    for it in todo)
    else:
        finished = _distributed_rows(todo, resolved, protocol, s, downsampler, names, out, executor, workers,
                                     scheduler, threads, client)
    try:
        for row in finished:
            ran.append(row["id"])
            rows[row["id"]] = row
            _write_jsonl(out / "results.jsonl", [rows[i.id] for i in items if i.id in rows])
            done += 1
            report(ProgressEvent("items", done, len(items)))
    except KeyboardInterrupt:  # SIGINT/SIGTERM: say so in eval.json (rerunning resumes), then stop as asked
        eval_info.update(status="interrupted", interrupted=utc_now(),
                         n_ok=sum(r.get("status") == "ok" for r in rows.values()))
        write_json(out / "eval.json", eval_info)
        raise

    ordered = [rows[it.id] for it in items if it.id in rows]
    summary = _summary(ordered, scorers)
    write_text(out / "results.csv", _csv(ordered, names))
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", _markdown(ordered, summary, names, config, resolved.spec.name))
    eval_info.update(status="finished", finished=utc_now(),
                     n_ok=sum(r["status"] == "ok" for r in ordered),
                     n_failed=sum(r["status"] != "ok" for r in ordered))
    write_json(out / "eval.json", eval_info)
    return EvalResult(out, ordered, summary, names, ran, skipped, protocol, s)


def _distributed_rows(items: list[DatasetItem], resolved, protocol: str, s: int, downsampler: str, names: list[str],
                      out: Path, executor: str, workers: int, scheduler: str | None, threads: int | None, client):
    """Each item as one run of an ablation executor (local processes or Dask), yielded as rows as they finish."""
    from .ablation.executors import run_dask, run_local
    from .ablation.worker import RunTask

    if executor not in ("local", "dask"):
        raise InputError(f"unknown executor {executor!r}", "use --executor local or --executor dask")
    spec = resolved.to_dict()
    tasks = [RunTask(i, resolved.spec.name, resolved.spec.name, it.id, tuple(str(p) for p in it.sources),
                     str(it.gt) if it.gt else None, spec, protocol, s, downsampler, tuple(names),
                     str(out / "items" / it.id), str(out), threads) for i, it in enumerate(items)]
    by_id = {it.id: it for it in items}
    stream = (run_dask(tasks, scheduler, workers, threads, client) if executor == "dask"
              else run_local(tasks, workers, threads))
    try:
        for rec in stream:
            it = by_id[rec["item"]]
            yield {"id": it.id, "status": rec["status"], "error": rec.get("error", ""), "metrics": rec["metrics"],
                   "metric_errors": rec.get("metric_errors", {}), "seconds": rec.get("seconds", 0.0),
                   "sources": [p.name for p in it.sources], "gt": it.gt.name if it.gt else None,
                   "run_dir": rec.get("run_dir"), "host": rec.get("host")}
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()


# ------------------------------------------------------------------------------------------------ one item

def protocol_scale(protocol: str, scale: int | None, spec_scale: int) -> int:
    """The scale a protocol runs at (``scale`` or its default: the spec's for mfisrf, 1 for fusion), checked."""
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown evaluation protocol {protocol!r}", f"use one of: {', '.join(PROTOCOLS)}")
    s = int(scale) if scale is not None else (spec_scale if protocol == "mfisrf" else 1)
    if s < 1:
        raise InputError(f"scale must be >= 1, got {s}", "use --scale 1 or more")
    if protocol == "mfisrf" and s < 2:
        raise InputError("the mfisrf protocol needs a scale of 2 or more", "pass --scale 2 (or 3, 4)")
    return s


def metric_info(scorers: dict, catalog: Catalog) -> dict:
    """What each metric needs, its direction and provenance (recorded with every evaluation and study)."""
    return {m: {"requires": getattr(c, "requires", "sources"),
                "higher_is_better": bool(getattr(c, "higher_is_better", True)),
                "dist": catalog.get("metric", m).dist,
                "version": catalog.get("metric", m).version} for m, c in scorers.items()}


def _evaluate_item(it: DatasetItem, resolved, protocol: str, s: int, resampler, scorers: dict, catalog: Catalog,
                   out: Path, progress) -> dict:
    return evaluate_item(it, resolved, protocol, s, resampler, scorers, catalog, out / "items" / it.id, progress,
                         relative_to=out)


def evaluate_item(it: DatasetItem, resolved, protocol: str, s: int, resampler, scorers: dict, catalog: Catalog,
                  item_dir: Path, progress=None, relative_to: Path | None = None) -> dict:
    """Run ``resolved`` on one item under ``protocol`` at scale ``s`` into ``item_dir`` and score it.

    Never raises for a failing item: the returned row has ``status`` ``ok`` or ``failed`` (with a one-line
    ``error``), so callers (``evaluate``, ablation studies) can record it and go on. ``run_dir`` in the row is
    relative to ``relative_to`` (absolute when None). A leftover ``item_dir`` from an unfinished attempt is replaced.
    """
    from .runner import run

    t0 = time.perf_counter()
    row: dict = {"id": it.id, "status": "failed", "error": "", "metrics": {m: None for m in scorers},
                 "metric_errors": {}, "seconds": 0.0, "sources": [p.name for p in it.sources],
                 "gt": it.gt.name if it.gt else None, "run_dir": None}
    item_dir = Path(item_dir)
    out = Path(relative_to) if relative_to is not None else None
    try:
        sources = [read_image(p)[0] for p in it.sources]
        gt = read_image(it.gt)[0] if it.gt is not None else None
        if protocol == "mfisrf":
            sources = [_crop(x, s) for x in sources]
            gt = None if gt is None else _crop(gt, s)
            inputs = [_down(resampler, x, s) for x in sources]
            ref_sources = sources
        else:
            inputs = sources
            ref_sources = sources
        if item_dir.exists():  # a leftover of an earlier, unfinished attempt at this item
            shutil.rmtree(item_dir)
        spec = resolved.spec.model_copy(update={"output": resolved.spec.output.model_copy(
            update={"dir": str(item_dir)})})
        result = run(dataclasses.replace(resolved, spec=spec), inputs=inputs, catalog=catalog, progress=progress)
        if result.run_dir:
            row["run_dir"] = os.path.relpath(result.run_dir, out) if out is not None else str(result.run_dir)
        fused = result.fused
        if protocol == "fusion" and s > 1:
            ref_sources = [_up(resampler, x, s) for x in sources]
        for name, scorer in scorers.items():
            if getattr(scorer, "requires", "sources") == "reference" and gt is None:
                continue
            try:
                value = scorer(_plain(fused), [_plain(x) for x in ref_sources], None if gt is None else _plain(gt))
                row["metrics"][name] = float(value)
            except Exception as exc:  # one metric failing does not lose the others
                row["metric_errors"][name] = _one_line(exc)
        row["status"] = "ok"
    except Exception as exc:
        row["error"] = _one_line(exc)
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _crop(x: np.ndarray, s: int) -> np.ndarray:
    h, w = x.shape[:2]
    return np.ascontiguousarray(x[:h - h % s, :w - w % s])


def _down(resampler, x: np.ndarray, s: int) -> np.ndarray:
    import torch

    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()
        y = resampler.down(t, s)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(y, dtype=np.float32)


def _up(resampler, x: np.ndarray, s: int) -> np.ndarray:
    import torch

    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()
        y = resampler.up(t, s)[0].clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(y, dtype=np.float32)


def _plain(x: np.ndarray) -> np.ndarray:
    """``[H, W, 1]`` -> ``[H, W]`` (what every metric accepts), RGB unchanged."""
    x = np.asarray(x, dtype=np.float64)
    return x[:, :, 0] if x.ndim == 3 and x.shape[2] == 1 else x


def _one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, FusionkitError) else str(exc)
    first = (text.strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


# ------------------------------------------------------------------------------------------------ files

def _check_same_config(out: Path, config: dict) -> None:
    path = out / "eval.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    diff = [k for k in config if k in old and old[k] != config[k]]
    if diff:
        what = ", ".join(f"{k} {old[k]!r} -> {config[k]!r}" for k in diff)
        raise InputError(f"{out} holds an evaluation with different settings ({what}); resuming would mix them",
                         "use another --out folder, or delete this one to start over")


def _read_jsonl(path: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a damaged line: that item is simply run again
        if isinstance(row, dict) and "id" in row:
            rows[str(row["id"])] = row
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def _summary(rows: list[dict], scorers: dict) -> dict:
    metrics = {}
    for name, scorer in scorers.items():
        vals = [r["metrics"].get(name) for r in rows if r["status"] == "ok"]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        metrics[name] = {"mean": float(np.mean(vals)) if vals else None,
                         "std": float(np.std(vals)) if vals else None, "n": len(vals),
                         "higher_is_better": bool(getattr(scorer, "higher_is_better", True))}
    return {"metrics": metrics, "items": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "failed": [r["id"] for r in rows if r["status"] != "ok"],
            "seconds": round(sum(r.get("seconds", 0.0) for r in rows), 3)}


def _csv(rows: list[dict], names: list[str]) -> str:
    buf = _io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "status", *names, "seconds", "error"])
    for r in rows:
        vals = [r["metrics"].get(m) for m in names]
        writer.writerow([r["id"], r["status"], *("" if v is None else repr(v) for v in vals), r.get("seconds", ""),
                         r.get("error", "")])
    return buf.getvalue()


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def _markdown(rows: list[dict], summary: dict, names: list[str], config: dict, spec_name: str) -> str:
    arrows = {m: "↑" if summary["metrics"][m]["higher_is_better"] else "↓" for m in names}
    head = ["id", "status", *(f"{m} {arrows[m]}" for m in names), "seconds"]
    lines = [f"# Evaluation of `{spec_name}`: protocol {config['protocol']}, x{config['scale']}"
             + (f" (inputs by `{config['downsampler']}`)" if config["protocol"] == "mfisrf" else ""), "",
             f"{summary['ok']} of {summary['items']} items scored"
             + (f"; failed: {', '.join(summary['failed'])}" if summary["failed"] else "") + ".", "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(names) + 1)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join([r["id"], r["status"], *(_fmt(r["metrics"].get(m)) for m in names),
                                        f"{r.get('seconds', 0):.1f}"]) + " |")
    for stat in ("mean", "std"):
        lines.append("| " + " | ".join([f"**{stat}**", "", *(_fmt(summary["metrics"][m][stat]) for m in names),
                                        ""]) + " |")
    errors = [r for r in rows if r["status"] != "ok"]
    if errors:
        lines += ["", "## Failures", ""] + [f"- `{r['id']}`: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"

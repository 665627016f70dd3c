"""The unit of work of a study: one variant on one dataset item.

:func:`run_task` is a top-level function of plain, picklable arguments so that any executor can ship it: a local
worker process (spawned), or a Dask worker on another machine. A worker needs fusionkit (and the plugins the
study uses) installed, read access to the dataset at the same path, and write access to the run folder; it
returns a plain record and never writes the study's result files (the client does).
"""
from __future__ import annotations

import csv
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunTask:
    """Everything one run needs, as plain data (paths are absolute)."""

    index: int                   # position in the study (variant-major), for ordering records
    variant: str
    slug: str
    item: str
    sources: tuple[str, ...]
    gt: str | None
    spec: dict                   # the variant's resolved spec
    protocol: str
    scale: int
    downsampler: str
    metrics: tuple[str, ...]
    run_dir: str
    study_dir: str
    threads: int | None = None   # torch threads for this run; None leaves the process setting alone


def failed_record(task: RunTask, error: str, seconds: float = 0.0) -> dict:
    """The record of a run that did not produce a result (also used when an executor loses a run)."""
    return {"variant": task.variant, "slug": task.slug, "item": task.item, "index": task.index,
            "status": "failed", "error": error, "metrics": {m: None for m in task.metrics}, "metric_errors": {},
            "seconds": round(seconds, 3), "run_dir": None, "loss": [], "host": socket.gethostname()}


def run_task(task: RunTask, progress=None) -> dict:
    """Run one variant on one item, score it and return its record; never raises for a failing run."""
    from ..dataset import DatasetItem
    from ..evaluation import _one_line, evaluate_item
    from ..registry import default_catalog
    from ..validation import load_spec

    t0 = time.perf_counter()
    try:
        if task.threads:
            import torch

            torch.set_num_threads(task.threads)
        catalog = default_catalog()
        resolved = load_spec(task.spec, catalog=catalog, require_inputs=False)
        resampler = catalog.get("resampler", task.downsampler).cls()
        scorers = {m: catalog.get("metric", m).cls() for m in task.metrics}
        item = DatasetItem(task.item, tuple(Path(p) for p in task.sources), Path(task.gt) if task.gt else None)
        row = evaluate_item(item, resolved, task.protocol, task.scale, resampler, scorers, catalog,
                            Path(task.run_dir), progress, relative_to=Path(task.study_dir))
    except Exception as exc:  # a worker without a plugin, an unreadable spec: recorded like any failure
        return failed_record(task, _one_line(exc), time.perf_counter() - t0)
    record = failed_record(task, row["error"], row["seconds"])
    record.update(status=row["status"], metrics=row["metrics"], metric_errors=row["metric_errors"],
                  run_dir=row["run_dir"])
    if row["run_dir"]:
        record["loss"] = read_loss_curve(Path(task.study_dir) / row["run_dir"] / "loss.csv")
    return record


def read_loss_curve(path: Path) -> list[list[float]]:
    """``[[iteration, total loss], ...]`` from a run's ``loss.csv`` (empty when there is none: composite runs)."""
    if not path.is_file():
        return []
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                out.append([float(row["iteration"]), float(row["total"])])
            except (KeyError, TypeError, ValueError):
                continue
    return out


def init_worker(threads: int | None) -> None:
    """Process-pool initializer: one torch thread budget per worker so N workers share the cores."""
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        import torch

        torch.set_num_threads(threads)

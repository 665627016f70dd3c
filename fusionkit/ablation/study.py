"""Running a study: the study folder, resuming, the executor loop, and the result files.

Study folder layout (all files written atomically, by the client only)::

    study.json              the resolved ablation spec, its fingerprint, every variant (overrides, resolved spec)
    results.jsonl           one record per finished run, rewritten after every run: what resuming reads
    runs/<slug>/<item>/     each run's folder (fused image, maps, loss.csv, spec.resolved.yaml, manifest.json)
    runs.csv, runs.json     per-run metrics
    summary.csv/.json/.md   per variant: mean ± std per metric, ranks, ARank
    plots/                  metrics.png, loss.png, contact_<item>.png

Resuming is automatic: the same study into the same folder skips the runs already ``ok`` in ``results.jsonl``
and reruns failed and missing ones. A folder that holds a different study (another fingerprint: other variants,
specs, dataset, protocol, scale, downsampler or metrics) is refused; a non-empty folder that is not a study too.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import InputError
from ..evaluation import metric_info
from ..io import write_json, write_text
from ..provenance import environment, utc_now
from . import plots as _plots
from .executors import run_dask, run_local
from .results import aggregate, runs_csv, summary_csv, summary_markdown
from .spec import StudyPlan
from .worker import RunTask


@dataclass
class StudyProgress:
    """A study-level progress report: runs ``done`` of ``total``; ``record`` is the run that just finished."""

    done: int
    total: int
    record: dict | None = None


@dataclass
class StudyResult:
    out_dir: Path
    plan: StudyPlan
    records: list[dict]
    table: dict
    ran: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pending: int = 0            # runs not attempted (max_runs reached)
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] != "ok"]


def default_out_dir(plan: StudyPlan) -> Path:
    return Path("runs") / f"ablation-{plan.spec.name}"


def _key(variant: str, item: str) -> str:
    return f"{variant}\x00{item}"


def run_study(plan: StudyPlan, out_dir: str | Path | None = None, *, executor: str | None = None,
              workers: int | None = None, scheduler: str | None = None, threads: int | None = None,
              client=None, max_runs: int | None = None,
              progress: Callable[[StudyProgress], None] | None = None, run_progress=None) -> StudyResult:
    """Run every variant × item of ``plan`` not already done in ``out_dir``; write the result files and plots.

    ``executor``/``workers``/``scheduler``/``threads`` default to the ablation file's ``executor`` settings;
    ``client`` is an existing ``distributed.Client`` (dask). ``max_runs`` stops after that many runs (resume
    later). ``progress`` gets a :class:`StudyProgress` after every run; an exception it raises stops the study
    (the runs recorded so far are kept). ``run_progress`` gets the engine's events (sequential local only).
    """
    settings = plan.spec.executor
    scheduler = scheduler or settings.scheduler
    executor = executor or ("dask" if client is not None or scheduler else settings.name)
    workers = workers or settings.workers
    threads = threads or settings.threads
    if executor not in ("local", "dask"):
        raise InputError(f"unknown executor {executor!r}", "use --executor local or --executor dask")
    out = Path(out_dir or default_out_dir(plan)).resolve()
    fingerprint = plan.fingerprint()
    _check_folder(out, plan, fingerprint)
    out.mkdir(parents=True, exist_ok=True)
    from ..registry import default_catalog

    catalog = default_catalog()
    scorers = {m: catalog.get("metric", m).cls for m in plan.metrics}
    info = metric_info(scorers, catalog)
    higher = {m: info[m]["higher_is_better"] for m in plan.metrics}
    study = {"fusionkit": __version__, "name": plan.spec.name, "fingerprint": fingerprint,
             "ablation_file": str(plan.source) if plan.source else None, "cli_overrides": plan.cli_overrides,
             "ablation": plan.spec.model_dump(mode="json"), "base": str(plan.base), **plan.config(),
             "metric_info": info, "rank_metrics": plan.rank_metrics, "items": [it.id for it in plan.items],
             "variants": [{"name": v.name, "slug": v.slug, "short": v.short, "overrides": v.overrides,
                           "spec_hash": v.spec_hash, "spec": v.resolved.to_dict()} for v in plan.variants],
             "executor": {"name": executor, "workers": workers, "scheduler": scheduler, "threads": threads},
             "status": "running", "started": utc_now(), "versions": environment()["packages"]}
    old = _load_json(out / "study.json")
    if old and old.get("fingerprint") == fingerprint:
        study["first_started"] = old.get("first_started", old.get("started"))
    write_json(out / "study.json", study)

    tasks: list[RunTask] = []
    for vi, v in enumerate(plan.variants):
        spec = v.resolved.to_dict()
        for ii, it in enumerate(plan.items):
            tasks.append(RunTask(vi * len(plan.items) + ii, v.name, v.slug, it.id, tuple(str(p) for p in it.sources),
                                 str(it.gt) if it.gt else None, spec, plan.protocol, plan.scale, plan.downsampler,
                                 tuple(plan.metrics), str(out / "runs" / v.slug / it.id), str(out)))
    wanted = {_key(t.variant, t.item): t for t in tasks}
    rows = {k: r for k, r in _read_records(out / "results.jsonl").items() if k in wanted}
    todo = [t for t in tasks if rows.get(_key(t.variant, t.item), {}).get("status") != "ok"]
    skipped = [(t.variant, t.item) for t in tasks if t not in todo]
    pending = 0
    if max_runs is not None and len(todo) > max_runs:
        pending = len(todo) - max_runs
        todo = todo[:max_runs]
    report = progress or (lambda e: None)
    done = len(skipped)
    report(StudyProgress(done, len(tasks)))
    t0 = time.perf_counter()
    ran: list[tuple[str, str]] = []

    def ordered() -> list[dict]:
        return [rows[_key(t.variant, t.item)] for t in tasks if _key(t.variant, t.item) in rows]

    if todo:
        stream = (run_dask(todo, scheduler, workers, threads, client) if executor == "dask"
                  else run_local(todo, workers, threads, run_progress))
        try:
            for record in stream:
                rows[_key(record["variant"], record["item"])] = record
                ran.append((record["variant"], record["item"]))
                write_text(out / "results.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in ordered()))
                done += 1
                report(StudyProgress(done, len(tasks), record))
        except KeyboardInterrupt:  # SIGINT/SIGTERM: study.json says so (rerunning resumes), then stop as asked
            study.update(status="interrupted", interrupted=utc_now(), runs=len(tasks),
                         n_ok=sum(r["status"] == "ok" for r in ordered()))
            write_json(out / "study.json", study)
            raise
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
    records = ordered()
    table = aggregate(records, [v.name for v in plan.variants], plan.metrics, higher, plan.rank_metrics)
    _write_results(out, plan, records, table)
    made = _write_plots(out, plan, records, table) if plan.spec.plots else []
    missing = len(tasks) - len(records)
    study.update(status="finished" if not missing else "incomplete", finished=utc_now(), runs=len(tasks),
                 n_ok=sum(r["status"] == "ok" for r in records), n_failed=sum(r["status"] != "ok" for r in records),
                 n_missing=missing, best=table["best"])
    write_json(out / "study.json", study)
    return StudyResult(out, plan, records, table, ran, skipped, pending, made, round(time.perf_counter() - t0, 3))


# ------------------------------------------------------------------------------------------------ files

def _load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_records(path: Path) -> dict[str, dict]:
    rows = {}
    for r in _read_jsonl_any(path):
        if "variant" in r and "item" in r:
            rows[_key(r["variant"], str(r["item"]))] = r
    return rows


def _read_jsonl_any(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a damaged line: that run is simply run again
        if isinstance(row, dict):
            out.append(row)
    return out


def check_resume(out: Path, plan: StudyPlan) -> int:
    """How many runs of ``plan`` are already done in ``out`` (0 for a new folder); raises if it is another study."""
    out = Path(out).resolve()
    _check_folder(out, plan, plan.fingerprint())
    wanted = {_key(v.name, it.id) for v in plan.variants for it in plan.items}
    return sum(1 for k, r in _read_records(out / "results.jsonl").items() if k in wanted and r.get("status") == "ok")


def _check_folder(out: Path, plan: StudyPlan, fingerprint: str) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"the study folder {out} is a file", "give another --out folder")
    old = _load_json(out / "study.json")
    if old is None:
        if any(out.iterdir()):
            raise InputError(f"{out} is not empty and holds no study (no readable study.json); a study never "
                             "writes over other files", "give another --out folder, or empty this one")
        return
    if old.get("fingerprint") == fingerprint:
        return
    diffs = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in plan.config().items() if old.get(k) != v]
    before = {v["name"]: v.get("spec_hash") for v in old.get("variants", [])}
    now = {v.name: v.spec_hash for v in plan.variants}
    added = [n for n in now if n not in before]
    removed = [n for n in before if n not in now]
    changed = [n for n in now if n in before and before[n] != now[n]]
    for word, names in (("added", added), ("removed", removed), ("with a changed spec", changed)):
        if names:
            shown = ", ".join(repr(n) for n in names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
            diffs.append(f"variants {word}: {shown}")
    what = "; ".join(diffs) or "a different fingerprint"
    raise InputError(f"{out} holds a different study ({old.get('name')!r}: {what}); resuming would mix results",
                     "use another --out folder for the changed study, or delete this one to start over")


def _write_results(out: Path, plan: StudyPlan, records: list[dict], table: dict) -> None:
    write_text(out / "runs.csv", runs_csv(records, plan.metrics))
    write_json(out / "runs.json", records)
    write_text(out / "summary.csv", summary_csv(table))
    write_json(out / "summary.json", {"name": plan.spec.name, **plan.config(), **table})
    from .spec import yaml_value
    common = [f"{k}={yaml_value(v)}" for k, v in plan.spec.overrides.items()] + list(plan.cli_overrides)
    sub = (f"Protocol {plan.protocol} x{plan.scale}"
           + (f" (inputs by `{plan.downsampler}`)" if plan.protocol == "mfisrf" else "")
           + f"; {len(plan.items)} stack(s) from `{plan.dataset}`; base `{plan.base.name}`"
           + (f"; every variant: {', '.join(f'`{o}`' for o in common)}" if common else "")
           + ". Mean ± std over the stacks.")
    write_text(out / "summary.md", summary_markdown(table, f"Ablation `{plan.spec.name}`", sub))


def _write_plots(out: Path, plan: StudyPlan, records: list[dict], table: dict) -> list[Path]:
    labels = {v.name: v.short for v in plan.variants}
    names = [v.name for v in plan.variants]
    made = [_plots.metric_bars(out / "plots" / "metrics.png", table, labels)]
    made.append(_plots.loss_curves(out / "plots" / "loss.png", records, names, labels))
    for it in plan.items:
        made.append(_plots.contact_sheet(out / "plots" / f"contact_{it.id}.png", it.id, out, records, names,
                                         labels, it.gt))
    return [p for p in made if p is not None]

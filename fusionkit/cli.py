"""The ``fusionkit`` command line. Errors become one paragraph and an exit code (2 for spec/usage errors, 1 for
runtime errors), with the traceback only under ``--debug``. Data goes to stdout, messages and progress to stderr
(:mod:`fusionkit.display`); the module imports nothing heavy until a command needs it, so that ``validate`` and
``plugins list`` start in a fraction of a second."""
from __future__ import annotations

import functools
import inspect
import json
import os
import signal
import sys
import traceback
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from .display import StudyProgress, TrainProgress, data, err, message, out, run_progress, width, wrap
from .errors import FusionkitError, RunInterrupted


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops exactly as on Ctrl-C: a run keeps its last good
    iterate, a run folder being written is finished first, and nothing half-written is left."""


class NothingKept(KeyboardInterrupt):
    """A run interrupted before it had anything worth keeping (no run folder was written)."""


#: the last of SIGINT/SIGTERM this process received (decides the exit code: 128 + the signal number)
_received: list[int] = []


def _on_signal(signum, frame) -> None:
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def handle_signals() -> None:
    """SIGINT and SIGTERM alike: each raises a KeyboardInterrupt where the program is (SIGTERM otherwise kills the
    process on the spot, leaving temporary files behind)."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_signal)


def _interrupt_exit_code(exc: BaseException) -> int:
    if _received:
        return 128 + _received[-1]
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def _debug_enabled(ctx: click.Context | None) -> bool:
    if os.environ.get("FUSIONKIT_DEBUG", "") not in ("", "0"):
        return True
    while ctx is not None:
        if ctx.obj and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


def friendly(fn):
    """Turn exceptions into one clear paragraph on stderr and the right exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context(silent=True)
        try:
            return fn(*args, **kwargs)
        except FusionkitError as exc:
            if _debug_enabled(ctx):
                traceback.print_exc()
            message(Text(f"error: {exc.render()}", style="red"))
            sys.exit(exc.exit_code)
        except RunInterrupted as exc:
            if exc.complete:
                message(f"interrupted while the finished run was being written; it was completed first: "
                        f"{exc.run_dir}", style="yellow")
            else:
                message(f"{exc.reason}: the last good iterate was written to {exc.run_dir} (its manifest.json says "
                        '"status": "interrupted")', style="yellow")
            data(str(exc.run_dir))
            sys.exit(_interrupt_exit_code(exc))
        except KeyboardInterrupt as exc:
            what = (str(exc) if isinstance(exc, NothingKept) else
                    "nothing was left half-written: every file and run folder appears complete or not at all")
            message(f"{'terminated' if _interrupt_exit_code(exc) == 143 else 'interrupted'}: {what}",
                    style="yellow")
            sys.exit(_interrupt_exit_code(exc))
        except OSError as exc:  # a disk problem outside a run's own writing (eval and study files, synth)
            from .io import output_error

            if _debug_enabled(ctx):
                traceback.print_exc()
            message(Text(f"error: {output_error(Path(exc.filename or '.'), exc).render()}", style="red"))
            sys.exit(1)
        except MemoryError:
            err.print("error: out of memory. Fix: use a smaller scale or image, or fewer/smaller generator channels")
            sys.exit(1)
        except Exception as exc:  # a bug or a failing plugin: still no traceback unless asked
            if _debug_enabled(ctx):
                traceback.print_exc()
            msg = str(exc).strip().splitlines()
            first = msg[0] if msg else ""
            if "out of memory" in first.lower():
                err.print(f"error: out of memory on the device ({first}).\nFix: use a smaller scale or image, fewer "
                          "generator channels, or `--set device=cpu`")
            else:
                err.print(Text(f"error: unexpected {type(exc).__name__}: {first}\nFix: rerun with --debug for the "
                               "full traceback and report it (with `fusionkit env`) if it looks like a fusionkit "
                               "bug", style="red"))
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="fusionkit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """fusionkit: multi-focus image fusion and super-resolution fusion (Deep Fusion Prior and friends)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


class _nothing_kept:
    """Around a run: a plain interrupt (not a RunInterrupted) means no run folder was written; say so."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
            raise NothingKept("the run was interrupted before the fusion had a result worth keeping; no run folder "
                              "was written") from exc
        return False


def _print_result(result) -> None:
    """A finished run: the run folder's path on stdout (data, for scripts), what it holds on stderr."""
    m = result.manifest
    message(f"[green]done[/green] in {m['timings'].get('total', 0):.1f} s "
            f"({', '.join(f'{k} {v:.1f} s' for k, v in m['timings'].items() if k != 'total')})")
    if result.run_dir:
        outputs = m.get("outputs", {})
        listed = [v for k, v in outputs.items() if k != "fused" and isinstance(v, str)]
        if outputs.get("maps"):
            listed.append("maps/")
        if outputs.get("stack"):
            listed.append("stack/")
        message(Text(f"fused image: {result.output_path}"))
        message(Text(f"run folder:  {result.run_dir}  ({', '.join(sorted(listed) + ['manifest.json'])})"))
        data(str(result.run_dir))


@cli.command()
@click.argument("spec", type=click.Path())
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec value, e.g. --set iterations=200 --set 'losses[joint_gradient].weight=0' "
                   "(quote values with brackets for the shell)")
@click.option("--preset", type=click.Choice(["fast", "default", "paper"]), default=None,
              help="A named schedule (docs/performance.md); values in the spec or given with --set win.")
@click.option("--dry-run", is_flag=True, help="Validate and print the resolved spec (to stdout); run nothing.")
@friendly
def run(spec: str, overrides: tuple[str, ...], preset: str | None, dry_run: bool) -> None:
    """Run a pipeline spec (YAML). Prints the run folder's path on stdout."""
    from .registry import default_catalog
    from .validation import load_spec

    catalog = default_catalog()
    if preset:
        overrides = (f"preset={preset}", *overrides)
    resolved = load_spec(spec, overrides, catalog=catalog)
    if dry_run:
        _check_output(resolved)
        data(resolved.to_yaml())
        message("[green]spec is valid[/green] (dry run: nothing was run)")
        return
    from .runner import run as run_spec

    with _nothing_kept():
        with run_progress() as progress:
            result = run_spec(resolved, catalog=catalog, progress=progress)
    _print_result(result)


@cli.command()
@click.argument("spec", type=click.Path())
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value.")
@friendly
def validate(spec: str, overrides: tuple[str, ...]) -> None:
    """Check a spec (structure and every component's parameters) without running it."""
    from .registry import default_catalog
    from .validation import load_spec

    _check_output(load_spec(spec, overrides, catalog=default_catalog()))
    message(Text(f"{spec}: valid", style="green"))


def _check_output(resolved) -> None:
    """validate and --dry-run: a run folder that could not be created or written is a problem of the spec's
    ``output.dir`` (found without creating anything)."""
    from .errors import SpecError
    from .rundir import check_location, requested_dir
    from .validation import problem_at

    problem = check_location(requested_dir(resolved.spec))
    if problem:
        raise SpecError([problem_at(resolved, ("output", "dir"), problem,
                                    "choose another `output.dir` (or --set output.dir=...)")],
                        source=resolved.source)


@cli.group(invoke_without_command=True)
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List installed components (default) or show one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(plugins_list)


def _unavailable(info) -> str | None:
    """Why a component that depends on something outside Python (a fuser's program) cannot run here, or None.
    Only fusers have such a check, and only those with one of their own are asked: `plugins list` imports no
    other component."""
    return info.cls.unavailable() if info.kind == "fuser" and info.checks_availability else None


def _status(info) -> str:
    reason = _unavailable(info)
    return f"[yellow]unavailable: {reason}[/yellow]" if reason else "[green]ok[/green]"


@plugins.command("list")
@click.option("--kind", type=str, default=None,
              help="Only this kind (focus_measure, generator, resampler, loss, metric, fuser, light_field, "
                   "model, training_loss).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--wide", "-w", is_flag=True, help="On a terminal, print summaries in full instead of fitting them "
                                                 "to the width (piped output is never cut).")
@friendly
def plugins_list(kind: str | None, as_json: bool, wide: bool) -> None:
    """Every component with its kind, distribution and status; failed plugins too.

    One line per component; names and distributions are never cut (so `fusionkit plugins list | grep NAME`
    works), the reasons behind a status follow the list."""
    from .interfaces import KINDS
    from .registry import default_catalog

    catalog = default_catalog()
    if kind is not None and kind not in KINDS:
        raise click.UsageError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    items = catalog.all(kind)
    if as_json:
        doc = {"components": [{"kind": i.kind, "name": i.name, "summary": i.summary, "dist": i.dist,
                               "version": i.version, "unavailable": _unavailable(i)} for i in items],
               "failed": [{"plugin": f.plugin, "dist": f.dist, "cause": f.cause} for f in catalog.failures],
               "conflicts": [{"kind": k, "name": n, "dists": [i.dist for i in v]}
                             for (k, n), v in catalog.conflicts.items()]}
        data(json.dumps(doc, indent=2))
        return
    rows, notes = [], []
    for i in items:
        reason = _unavailable(i)
        rows.append((i.kind, i.name, f"{i.dist} {i.version}", "unavailable" if reason else "ok", i.summary))
        if reason:
            notes.append(f"{i.name} ({i.kind}) is unavailable: {reason}")
    for (k, n), infos in catalog.conflicts.items():
        if kind in (None, k):
            dists = " + ".join(f"{i.dist} {i.version}" for i in infos)
            rows.append((k, n, dists, "conflict", ""))
            notes.append(f"{n} ({k}) is provided by {dists}: neither is used. Fix: uninstall one, or choose with "
                         "FUSIONKIT_LOAD_PLUGINS=dist1,dist2")
    for f in catalog.failures:
        notes.append(f"plugin {f.plugin!r} from {f.dist} failed to load: {f.cause}")
    header = ("KIND", "NAME", "DISTRIBUTION", "STATUS", "SUMMARY")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
    fit = sys.stdout.isatty() and not wide
    for r in [header, *rows]:
        head = "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  "
        summary = r[4]
        room = width() - len(head)
        if fit and len(summary) > room:
            summary = summary[:max(0, room - 1)].rstrip() + "…" if room > 10 else ""
        data((head + summary).rstrip())
    if notes:
        data("")
        for note in notes:
            data("\n".join(wrap(note, width(), indent="")))
    if not rows:
        message("no components" + (f" of kind {kind}" if kind else "") + " are installed")


@plugins.command("show")
@click.argument("name")
@friendly
def plugins_show(name: str) -> None:
    """Every parameter of a component (type, default, bounds, description), then its documentation."""
    from . import fielddoc
    from .errors import PluginError
    from .interfaces import KINDS
    from .registry import default_catalog

    catalog = default_catalog()
    found = catalog.find(name)
    if not found:
        import difflib

        every = sorted({n for k in KINDS for n in catalog.names(k)})
        guess = difflib.get_close_matches(name, every, n=1)
        raise PluginError(f"no component named {name!r}",
                          (f"did you mean {guess[0]!r}? " if guess else "") + "See `fusionkit plugins list`.")
    columns = width() if sys.stdout.isatty() else 80
    for info in found:
        lines = [f"{info.name}  ({info.kind}, {info.dist} {info.version})", *wrap(info.summary, columns), "",
                 "parameters:"]
        rows = fielddoc.rows(info.params)
        if not rows:
            lines.append("  none")
        for row in rows:
            extra = ", ".join(x for x in (f"default {row.default}", row.bounds) if x)
            lines += wrap(f"{row.name}: {row.type}; {extra}", columns, indent="  ")
            if row.description:
                lines += wrap(row.description, columns, indent="      ")
        lines += ["", *wrap(f"reference: {info.reference}", columns)]
        doc = inspect.getdoc(info.cls) or ""
        if doc:
            lines += ["", "description:", *wrap(doc, columns, indent="  ")]
        data("\n".join(lines))


@cli.command()
@click.option("--kind", type=click.Choice(["run", "ablate", "train"]), default="run", show_default=True,
              help="Which spec: a pipeline (run, eval), an ablation study, or a training spec.")
@friendly
def schema(kind: str) -> None:
    """Print the JSON Schema of a spec (for editors)."""
    if kind == "train":
        from .training import train_json_schema as make
    elif kind == "ablate":
        from .ablation.spec import ablation_json_schema as make
    else:
        from .validation import spec_json_schema as make
    click.echo(json.dumps(make(), indent=2))


@cli.command()
@friendly
def env() -> None:
    """Versions, device and plugin load report (paste this into bug reports)."""
    from .engine import resolve_device
    from .provenance import environment
    from .registry import build_catalog

    info = environment(resolve_device("auto"))
    catalog = build_catalog()
    info["plugins"] = [{"plugin": p, "dist": d, "version": v} for p, d, v in catalog.plugins]
    info["failed_plugins"] = [{"plugin": f.plugin, "dist": f.dist, "cause": f.cause} for f in catalog.failures]
    click.echo(json.dumps(info, indent=2))


@cli.command()
@click.option("--out", "out_dir", default="runs/demo", show_default=True, help="Where inputs and the run go.")
@click.option("--iterations", default=None, type=int, help="Fusion iterations (default: the spec default).")
@click.option("--size", default=192, show_default=True, type=int, help="Ground-truth size (pixels, square).")
@click.option("--scale", default=2, show_default=True, type=int, help="Super-resolution factor.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value.")
@friendly
def demo(out_dir: str, iterations: int | None, size: int, scale: int, overrides: tuple[str, ...]) -> None:
    """Fuse a synthetic multi-focus pair made from a scikit-image sample (DFP, default spec, x2)."""
    from .demo import run_demo

    with _nothing_kept(), run_progress() as progress:
        report = run_demo(Path(out_dir), iterations=iterations, size=size, scale=scale, overrides=overrides,
                          progress=progress)
    _print_result(report.result)
    message(Text(f"inputs (low resolution): {report.inputs_dir}"))
    table = Table(title=f"PSNR against the ground truth (x{scale})")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    for k, v in report.psnr.items():
        table.add_row(k, f"{v:.2f}")
    out.print(table)


@cli.command("eval")
@click.argument("spec", type=click.Path())
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--protocol", type=click.Choice(["fusion", "mfisrf"]), default="fusion", show_default=True,
              help="fusion: inputs as they are; mfisrf: sources downsampled xS, output scored at full resolution.")
@click.option("--scale", type=int, default=None, help="Scale factor (default: 1 for fusion, the spec's for mfisrf).")
@click.option("--downsampler", default="bicubic", show_default=True,
              help="Resampler that makes the mfisrf inputs (recorded in eval.json).")
@click.option("--metrics", default=None, metavar="A,B,C", help="Comma-separated metric names (default: by protocol).")
@click.option("--out", "out_dir", default=None,
              help="Results folder (default: runs/eval-DATASET-PROTOCOL). Rerun with the same folder to resume.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: this machine; dask: a dask.distributed cluster (as fusionkit ablate).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="local: worker processes (1 = sequential); dask without --scheduler: local cluster workers.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask).")
@click.option("--threads", type=int, default=None, help="Torch threads per item (default: cores // workers).")
@friendly
def eval_(spec: str, dataset: str, protocol: str, scale: int | None, downsampler: str, metrics: str | None,
          out_dir: str | None, overrides: tuple[str, ...], executor: str, workers: int, scheduler: str | None,
          threads: int | None) -> None:
    """Run SPEC on every item of the DATASET folder and score it (NN_A/NN_B[/NN_GT] or NN_1..NN_k[/NN_GT])."""
    from .evaluation import evaluate

    for flag, value in (("--workers", workers), ("--threads", threads)):
        if value is not None and value < 1:
            raise click.UsageError(f"{flag} must be 1 or more, got {value}")
    if scheduler:
        executor = "dask"
    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    target = Path(out_dir) if out_dir else Path("runs") / f"eval-{Path(dataset).resolve().name}-{protocol}"
    with run_progress() as progress:
        result = evaluate(spec, dataset, target, protocol=protocol, metrics=names, scale=scale,
                          downsampler=downsampler, overrides=overrides, progress=progress, executor=executor,
                          workers=workers, scheduler=scheduler, threads=threads)
    table = Table(title=f"{protocol} x{result.scale}: "
                        f"{result.summary['ok']}/{result.summary['items']} items scored")
    for col in ("metric", "mean", "std", "n", "better"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in result.summary["metrics"].items():
        fmt = (lambda v: "" if v is None else f"{v:.4f}")
        table.add_row(name, fmt(m["mean"]), fmt(m["std"]), str(m["n"]), "higher" if m["higher_is_better"] else "lower")
    out.print(table)
    if result.skipped:
        message(f"resumed: {len(result.skipped)} item(s) already done were skipped")
    for r in result.failed:
        message(Text(f"item {r['id']} failed: {r['error']}", style="red"))
    message(Text(f"results: {result.out_dir}  (summary.md, summary.json, results.csv, results.jsonl, items/)"))
    if result.failed:
        sys.exit(1)


@cli.command()
@click.argument("src", type=click.Path(file_okay=False))
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False))
@click.option("--n", "n", default=2, show_default=True, type=int, help="Sources per item (2: NN_A/NN_B).")
@click.option("--blur", type=click.Choice(["gaussian", "disk"]), default="gaussian", show_default=True,
              help="Defocus PSF.")
@click.option("--strength", default=2.5, show_default=True, type=float,
              help="Blur strength (Gaussian sigma or disk radius, pixels) per depth-layer step.")
@click.option("--scale", default=1, show_default=True, type=int, help="Also downsample the sources by this factor.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed (image k uses seed + k).")
@click.option("--limit", default=None, type=int, help="Use at most this many images.")
@friendly
def synth(src: str, out_dir: str, n: int, blur: str, strength: float, scale: int, seed: int,
          limit: int | None) -> None:
    """Make a synthetic multi-focus dataset with ground truth from a SRC folder of all-in-focus images."""
    from .synthetic import make_dataset

    written = make_dataset(src, out_dir, n=n, scale=scale, blur=blur, strength=strength, seed=seed, limit=limit)
    items = sum(1 for p in written if p.stem.endswith("_GT"))
    message(Text.assemble((f"{items} item(s)", "green"), f" ({len(written)} images) written to {out_dir}"))



@cli.command()
@click.argument("ablation", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec value in every variant (applied last), e.g. --set iterations=200 "
                   "(quote values with brackets for the shell)")
@click.option("--dry-run", is_flag=True, help="Validate every variant and print the variant table; run nothing.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
              help="local: this machine; dask: a dask.distributed cluster (default: the file's, else local).")
@click.option("--workers", type=int, default=None,
              help="local: worker processes (1 = sequential); dask without --scheduler: local cluster workers.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address, e.g. tcp://host:8786 (implies --executor dask).")
@click.option("--threads", type=int, default=None, help="Torch threads per run (default: cores // workers).")
@click.option("--out", "out_dir", default=None,
              help="Study folder (default: runs/ablation-NAME). Rerun with the same folder to resume.")
@click.option("--limit", type=int, default=None, help="Use only the first N dataset items.")
@click.option("--max-runs", type=int, default=None, help="Stop after N runs (rerun to resume).")
@friendly
def ablate(ablation: str, overrides: tuple[str, ...], dry_run: bool, executor: str | None, workers: int | None,
           scheduler: str | None, threads: int | None, out_dir: str | None, limit: int | None,
           max_runs: int | None) -> None:
    """Run an ablation study: every variant of ABLATION (YAML) on every dataset item, ranked (docs/ablation.md)."""
    from .ablation import check_resume, default_out_dir, load_ablation, run_study
    from .errors import InputError
    from .registry import default_catalog

    for flag, value in (("--workers", workers), ("--threads", threads), ("--limit", limit), ("--max-runs", max_runs)):
        if value is not None and value < 1:
            raise click.UsageError(f"{flag} must be 1 or more, got {value}")
    plan = load_ablation(ablation, overrides, catalog=default_catalog(), limit=limit)
    target = Path(out_dir) if out_dir else default_out_dir(plan)
    if scheduler and executor is None:
        executor = "dask"
    if dry_run:
        from .ablation.spec import label_value

        named = bool(plan.spec.variants)  # the patch says more than the name only for named variants
        table = Table(title=f"ablation {plan.spec.name}: {len(plan.variants)} variant(s)")
        for col in ("#", "variant", "label", "folder") + (("patch",) if named else ()):
            table.add_column(col, overflow="fold")
        for i, v in enumerate(plan.variants, 1):
            patch = (Text(", ".join(f"{k}={label_value(x)}" for k, x in v.patch) or "(the base)"),) if named else ()
            table.add_row(str(i), Text(v.name), Text(v.short), Text(v.slug), *patch)
        out.print(table)
        common = [f"{k}={label_value(x)}" for k, x in plan.spec.overrides.items()] + list(plan.cli_overrides)
        if common:
            message(Text("every variant: " + " ".join(common)))
        message(f"{len(plan.variants)} variant(s) x {len(plan.items)} stack(s) = [bold]{plan.n_runs} run(s)[/bold]; "
                f"protocol {plan.protocol} x{plan.scale}; metrics {', '.join(plan.metrics)}")
        try:
            done = check_resume(target, plan)
            note = f"; {done} already done there (would resume)" if done else ""
        except InputError as exc:
            note = f" — but it would be refused: {exc.message}"
        message(Text(f"study folder: {target.resolve()}{note}"))
        message("[green]every variant is valid[/green] (dry run: nothing was run)")
        return

    shorts = {v.name: v.short for v in plan.variants}
    with StudyProgress(plan.n_runs, lambda r: shorts.get(r["variant"], r["variant"])) as shown:
        result = run_study(plan, target, executor=executor, workers=workers, scheduler=scheduler, threads=threads,
                           max_runs=max_runs, progress=shown.on_study, run_progress=shown.on_run)
    metrics = list(result.table["metrics"])
    message(Text(f"full variant names and tables: {result.out_dir / 'summary.md'}"))
    table = Table(title=f"ablation {plan.spec.name}: protocol {plan.protocol} x{plan.scale}, "
                        f"{len(plan.items)} stack(s), mean ± std")
    table.add_column("variant", overflow="fold")
    for m in metrics:
        table.add_column(f"{m} {'↑' if result.table['metrics'][m]['higher_is_better'] else '↓'}", justify="right")
    table.add_column("ARank ↓", justify="right")
    table.add_column("ok", justify="right")
    for row in result.table["variants"]:
        cells = [("" if row["metrics"][m]["mean"] is None else
                  f"{_num(row['metrics'][m]['mean'])} ± {_num(row['metrics'][m]['std'])}") for m in metrics]
        ar = "" if row["arank"] is None else f"{row['arank']:.2f}"
        style = "bold green" if row["variant"] == result.table["best"] else None
        table.add_row(Text(shorts[row["variant"]]), *cells, ar, f"{row['ok']}/{row['runs']}", style=style)
    out.print(table)
    if result.skipped:
        message(f"resumed: {len(result.skipped)} run(s) already done were skipped")
    if result.pending:
        message(f"stopped after {len(result.ran)} run(s) (--max-runs); {result.pending} left: rerun to resume")
    for r in result.failed:
        message(Text(f"run {r['variant']} / {r['item']} failed: {r['error']}", style="red"))
    message(Text(f"results: {result.out_dir}  (summary.md, summary.csv, summary.json, runs.csv, plots/, runs/)"))
    if result.failed:
        sys.exit(1)

@cli.command()
@click.argument("folder", type=click.Path())
@click.option("--out", "out_file", default=None, metavar="FILE",
              help="Where to write the page (default: FOLDER/report.html).")
@friendly
def report(folder: str, out_file: str | None) -> None:
    """Write one self-contained HTML page for a run, an evaluation or a study FOLDER (prints its path)."""
    from .report import write_report

    path = write_report(folder, out_file)
    message(Text(f"report written: {path}  (self-contained: open it in any browser, or mail it)"))
    data(str(path))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a training-spec value, e.g. --set steps=500 --set optimizer.lr=1e-4")
@click.option("--dry-run", is_flag=True, help="Validate, read the data and print the plan; train nothing.")
@click.option("--resume", "resume", default=None, metavar="DIR", type=click.Path(file_okay=False),
              help="Continue the training in DIR from its newest checkpoint (same spec and --set values).")
@friendly
def train(spec: str, overrides: tuple[str, ...], dry_run: bool, resume: str | None) -> None:
    """Train a learned component from a training spec (YAML); see docs/training.md. Runs under torchrun too."""
    from .registry import default_catalog
    from .training import load_train_spec
    from .training import train as run_training
    from .training.distributed import from_environment

    catalog = default_catalog()
    resolved = load_train_spec(spec, overrides, catalog=catalog)
    main = from_environment().is_main
    if dry_run:
        _train_plan(resolved, catalog, resume)
        return
    if not main:  # the other torchrun processes train silently; rank 0 reports
        run_training(resolved, catalog=catalog, resume=resume)
        return
    with TrainProgress() as progress:
        result = run_training(resolved, catalog=catalog, resume=resume, progress=progress)
    m = result.manifest
    if result.status == "interrupted":
        err.print(f"interrupted at step {result.step} of {result.steps}; a checkpoint was written.\n"
                  f"Resume with: fusionkit train {spec} --resume {result.run_dir}"
                  + "".join(f" --set {o}" for o in overrides))
        sys.exit(130)
    out.print(f"[green]done[/green]: {result.step} steps, {m['progress']['crops_seen']} crops in "
              f"{m['wall_seconds']:.0f} s ({m['throughput']['crops_per_s_overall']} crops/s) on "
              f"{m['environment']['device']['device']}")
    out.print(f"weights:  [bold]{result.weights}[/bold]")
    out.print(f"folder:   {result.run_dir}  (manifest.json, spec.resolved.yaml, curves/, validation/, checkpoints/)")
    if m["final"]["validation"]:
        scores = {k: v for k, v in m["final"]["validation"].items()
                  if k not in ("step", "phase", "seconds_validation")}
        out.print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))


def _train_plan(resolved, catalog, resume: str | None) -> None:
    """``fusionkit train --dry-run``: the resolved spec, the data split, the budget and the model's size."""
    from .training.data import load_data, resolve_budget, resolve_steps
    from .training.distributed import from_environment
    from .training.loop import phases_of

    world = from_environment()
    data = load_data(resolved.spec, world.rank, world.size, catalog)
    steps = resolve_steps(resolved.spec, data)
    spec = resolve_budget(resolved.spec, data)
    out.print(type(resolved)(spec, resolved.source, resolved.base_dir, resolved.overrides).to_yaml(), markup=False,
              highlight=False)
    table = Table(title="data")
    for col in ("source", "kind", "train items", "validation items", "excluded"):
        table.add_column(col)
    for s in data.summary():
        table.add_row(Text(s["path"]), s["kind"], str(s["train_items"]), str(s["validation_items"]),
                      str(len(s["excluded_ids"])))
    out.print(table)
    if spec.phases is not None:
        phases = Table(title="phases")
        for col in ("phase", "steps", "global steps", "trains", "losses", "lr"):
            phases.add_column(col)
        for row, p in zip(phases_of(spec), spec.phases):
            phases.add_row(row["name"], str(row["steps"]), f"{row['first_step']}-{row['last_step']}",
                           ", ".join(row["train"]) if row["train"] else "every parameter", ", ".join(row["losses"]),
                           f"{p.optimizer.lr:g}")
        out.print(phases)
    info = catalog.get("model", spec.model.name)
    model = info.cls(params=info.cls.Params(**spec.model.params), training=info.cls.TrainingParams(**spec.model.training))
    n = sum(p.numel() for p in model.parameters())
    crops = steps * spec.batch
    out.print(f"model {spec.model.name}: {n:,} parameters; budget: {steps} steps x {spec.batch} crops of "
              f"{spec.data.crop}^2 = {crops:,} crops ({crops / max(1, data.n_train_items):.1f} epochs of "
              f"{data.n_train_items} training items); {world.size} process(es)")
    if resume:
        from .training import checkpoint as _ckpt
        from .training.loop import resume_problems

        ckpt = _ckpt.load_latest(Path(resume))
        problems = resume_problems(ckpt.get("spec", {}), spec.model_dump(mode="json"))
        out.print(Text(f"would resume {resume} at step {ckpt['step']}" if not problems else
                       f"--resume {resume} would be refused: " + "; ".join(problems)))
    out.print("[green]training spec is valid[/green] (dry run: nothing was trained)")


def _num(v: float) -> str:
    """Four significant-ish digits with a fixed number of decimals per magnitude (tables stay aligned)."""
    a = abs(v)
    return f"{v:.4f}" if a < 10 else f"{v:.3f}" if a < 100 else f"{v:.2f}" if a < 1000 else f"{v:.0f}"


def main() -> None:
    handle_signals()
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()

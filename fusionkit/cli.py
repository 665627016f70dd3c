"""The ``fusionkit`` command line. The only module that prints; errors become one paragraph and an exit code
(2 for spec/usage errors, 1 for runtime errors), with the traceback only under ``--debug``."""
from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import traceback
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .errors import FusionkitError

out = Console()
err = Console(stderr=True)


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
            err.print(Text(f"error: {exc.render()}", style="red"))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("interrupted; outputs already written are complete (each file is written atomically)")
            sys.exit(130)
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


class _LossColumn(ProgressColumn):
    def render(self, task) -> Text:
        loss = task.fields.get("loss")
        return Text("" if loss is None else f"loss {loss:.5f}", style="cyan")


class RichProgress:
    """Renders engine progress events: one bar per stage with iteration, loss and ETA."""

    LABELS = {"focus": "focus measure", "embedding": "decision embedding", "fusion": "fusion", "write": "writing"}

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description:<19}"), BarColumn(),
                                 TextColumn("{task.completed:>6}/{task.total:<6}"), _LossColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                                 transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, event) -> None:
        if event.stage not in self.tasks:
            self.tasks[event.stage] = self.progress.add_task(self.LABELS.get(event.stage, event.stage),
                                                             total=max(event.total, 1), loss=None)
        self.progress.update(self.tasks[event.stage], completed=event.iteration, loss=event.loss)


def _print_result(result, truth_psnr: dict | None = None) -> None:
    m = result.manifest
    out.print(f"[green]done[/green] in {m['timings'].get('total', 0):.1f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in m['timings'].items() if k != 'total')})")
    if result.run_dir:
        out.print(f"fused image: [bold]{result.output_path}[/bold]")
        out.print(f"run folder:  {result.run_dir}  (maps/, loss.csv, loss.png, manifest.json)")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a spec value, e.g. --set iterations=200 --set losses[joint_gradient].weight=0")
@click.option("--dry-run", is_flag=True, help="Validate and print the resolved spec; run nothing.")
@friendly
def run(spec: str, overrides: tuple[str, ...], dry_run: bool) -> None:
    """Run a pipeline spec (YAML)."""
    from .registry import default_catalog
    from .runner import run as run_spec
    from .validation import load_spec

    catalog = default_catalog()
    resolved = load_spec(spec, overrides, catalog=catalog)
    if dry_run:
        out.print(resolved.to_yaml(), markup=False, highlight=False)
        out.print("[green]spec is valid[/green] (dry run: nothing was run)")
        return
    with RichProgress() as progress:
        result = run_spec(resolved, catalog=catalog, progress=progress)
    _print_result(result)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec value.")
@friendly
def validate(spec: str, overrides: tuple[str, ...]) -> None:
    """Check a spec (structure and every component's parameters) without running it."""
    from .registry import default_catalog
    from .validation import load_spec

    load_spec(spec, overrides, catalog=default_catalog())
    out.print(f"[green]{spec}: valid[/green]")


@cli.group(invoke_without_command=True)
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List installed components (default) or show one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(plugins_list)


@plugins.command("list")
@click.option("--kind", type=str, default=None, help="Only this kind (focus_measure, generator, resampler, loss).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@friendly
def plugins_list(kind: str | None, as_json: bool) -> None:
    """Every component with its kind, distribution and status; failed plugins too."""
    from .interfaces import KINDS
    from .registry import default_catalog

    catalog = default_catalog()
    if kind is not None and kind not in KINDS:
        raise click.UsageError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    items = catalog.all(kind)
    if as_json:
        data = {"components": [{"kind": i.kind, "name": i.name, "summary": i.summary, "dist": i.dist,
                                "version": i.version} for i in items],
                "failed": [{"plugin": f.plugin, "dist": f.dist, "cause": f.cause} for f in catalog.failures],
                "conflicts": [{"kind": k, "name": n, "dists": [i.dist for i in v]}
                              for (k, n), v in catalog.conflicts.items()]}
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title="fusionkit components")
    for col in ("kind", "name", "summary", "distribution", "status"):
        table.add_column(col)
    for i in items:
        table.add_row(i.kind, i.name, i.summary, f"{i.dist} {i.version}", "[green]ok[/green]")
    for (k, n), infos in catalog.conflicts.items():
        table.add_row(k, n, "", " + ".join(f"{i.dist} {i.version}" for i in infos), "[red]conflict[/red]")
    for f in catalog.failures:
        table.add_row("?", f.plugin, f.cause, f.dist, "[red]failed[/red]")
    out.print(table)


@plugins.command("show")
@click.argument("name")
@friendly
def plugins_show(name: str) -> None:
    """Every parameter of a component: type, default, bounds, description."""
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
    for info in found:
        out.print(f"[bold]{info.name}[/bold]  ({info.kind}, {info.dist} {info.version})")
        out.print(info.summary)
        out.print(f"reference: {info.reference}")
        doc = inspect.getdoc(info.cls) or ""
        if doc:
            out.print(doc, markup=False, highlight=False)
        table = Table(title="parameters")
        for col in ("name", "type", "default", "bounds", "description"):
            table.add_column(col)
        for row in fielddoc.rows(info.cls.Params):
            table.add_row(*(Text(cell) for cell in row))  # Text: a "[...]" in a default is not rich markup
        out.print(table)


@cli.command()
@friendly
def schema() -> None:
    """Print the JSON Schema of a pipeline spec (for editors)."""
    from .validation import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2))


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

    with RichProgress() as progress:
        report = run_demo(Path(out_dir), iterations=iterations, size=size, scale=scale, overrides=overrides,
                          progress=progress)
    _print_result(report.result)
    out.print(f"inputs (low resolution): {report.inputs_dir}")
    table = Table(title=f"PSNR against the ground truth (x{scale})")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    for k, v in report.psnr.items():
        table.add_row(k, f"{v:.2f}")
    out.print(table)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()

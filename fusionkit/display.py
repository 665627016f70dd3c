"""How the command line shows things: where output goes, progress, and text that fits the terminal.

Rules (issue 13): *data* (a resolved spec, a run folder's path, a results table, JSON) goes to stdout, exactly as
it should be saved or piped, never wrapped; *messages* (status, progress, warnings, errors) go to stderr. On a
terminal, progress is a live rich bar; anywhere else (a log file, CI, ``nohup``, a cluster job) it is plain lines,
one every ``FUSIONKIT_PROGRESS_SECONDS`` (default 10) plus one at the start and end of each stage, each line
complete on its own: stage, iteration, loss, elapsed time and ETA. Only :mod:`fusionkit.cli` and this module print.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import textwrap
import time
from typing import Callable

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

out = Console()                 # data (tables a user asked for) to stdout
err = Console(stderr=True)      # messages and progress to stderr

LABELS = {"focus": "focus measure", "embedding": "decision embedding", "fusion": "fusion", "refine": "refinement",
          "tile": "tiles", "write": "writing", "items": "items"}
DEFAULT_INTERVAL = 10.0


def data(text: str) -> None:
    """Data to stdout, as it is (no markup, no wrapping, one trailing newline)."""
    click.echo(text if text.endswith("\n") else text + "\n", nl=False)


def message(text: str | Text, style: str | None = None) -> None:
    """A message to stderr (rich markup allowed in ``str``; a :class:`Text` is printed as it is)."""
    err.print(text, style=style, highlight=False, soft_wrap=True)


def width() -> int:
    """Columns to fit prose in: the terminal's, else ``COLUMNS``, else 80."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def wrap(text: str, columns: int, indent: str = "") -> list[str]:
    """``text`` re-wrapped to ``columns``, keeping its own line breaks and each line's indentation; words are never
    broken (a longer word gets a line of its own)."""
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lead = indent + line[:len(line) - len(line.lstrip())]
        body = line.strip()
        if not body:
            lines.append("")
            continue
        lines += textwrap.wrap(body, max(20, columns - len(lead)), initial_indent=lead, subsequent_indent=lead + "  ",
                               break_long_words=False, break_on_hyphens=False) or [lead]
    return lines


def hms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_interval() -> float:
    raw = os.environ.get("FUSIONKIT_PROGRESS_SECONDS", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL


class PlainProgress:
    """Progress as plain lines for logs: the first and last event of every stage, and at most one line per
    ``interval`` seconds in between. A line: ``fusion   120/1000  loss 1.234e-02  elapsed 0:00:31  ETA 0:03:48``
    (elapsed since the display started; ETA of the stage, from its rate so far)."""

    def __init__(self, interval: float | None = None, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.interval = progress_interval() if interval is None else interval
        self.write = write or (lambda line: click.echo(line, err=True))
        self.clock = clock
        self.t0 = clock()
        self.stage: str | None = None
        self.stage_t0 = self.t0
        self.stage_it0 = 0
        self.previous = self.t0       # time of the last event seen
        self.last = -math.inf         # time of the last line printed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, event) -> None:
        now = self.clock()
        new_stage = event.stage != self.stage
        if new_stage:  # the stage began when the previous event came (its iteration 0)
            self.stage, self.stage_t0, self.stage_it0 = event.stage, self.previous, 0
        self.previous = now
        done = event.iteration >= event.total
        if not (new_stage or done or now - self.last >= self.interval):
            return
        self.last = now
        self.write(self.line(event.stage, event.iteration, event.total, event.loss, now))

    def line(self, stage: str, iteration: int, total: int, loss: float | None, now: float) -> str:
        return progress_line(LABELS.get(stage, stage), iteration, total, loss, now - self.t0,
                             eta(self.stage_t0, self.stage_it0, iteration, total, now))


def eta(t0: float, it0: int, iteration: int, total: int, now: float) -> float | None:
    """Seconds left at the rate since ``(t0, it0)``; 0 when done, None before any step."""
    remaining = max(0, total - iteration)
    if remaining == 0:
        return 0.0
    steps = iteration - it0
    return (now - t0) / steps * remaining if steps > 0 else None


def progress_line(label: str, iteration: int, total: int, loss: float | None, elapsed: float,
                  left: float | None) -> str:
    shown = "" if loss is None else f"  loss {loss:.3e}"
    return f"{label:<18} {iteration:>6}/{total:<6}{shown}  elapsed {hms(elapsed)}  ETA {hms(left)}"


class _LossColumn(ProgressColumn):
    def render(self, task) -> Text:
        loss = task.fields.get("loss")
        return Text("" if loss is None else f"loss {loss:.5f}", style="cyan")


class RichProgress:
    """Progress on a terminal: one live bar per stage with iteration, loss, elapsed time and ETA."""

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
            self.tasks[event.stage] = self.progress.add_task(LABELS.get(event.stage, event.stage),
                                                             total=max(event.total, 1), loss=None)
        self.progress.update(self.tasks[event.stage], completed=event.iteration, loss=event.loss)


def on_terminal() -> bool:
    """Whether stderr is an interactive terminal (live bars) rather than a log."""
    return err.is_terminal and sys.stderr.isatty()


def run_progress():
    """The progress display for a run: live bars on a terminal, plain lines elsewhere."""
    return RichProgress() if on_terminal() else PlainProgress()


class StudyProgress:
    """Progress of an ablation study (runs done of total, the last run, the current run's stage): a rich bar on a
    terminal, plain lines (as :class:`PlainProgress`) elsewhere."""

    def __init__(self, total: int, label: Callable[[dict], str]):
        self.total, self.label = total, label
        self.rich = on_terminal()
        self.plain = None if self.rich else PlainProgress()
        self.bar = None
        self.run_task = None
        self.start: tuple[float, int] | None = None   # (time, runs done) when the study began (plain lines)

    def __enter__(self):
        if self.rich:
            self.bar = Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(),
                                TextColumn("{task.completed:>5}/{task.total:<5}"), TimeElapsedColumn(),
                                TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                console=err)
            self.bar.__enter__()
            self.study_task = self.bar.add_task("study", total=max(self.total, 1), note="")
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc) if self.bar is not None else False

    def on_study(self, event) -> None:
        from rich.markup import escape

        note = ""
        if event.record is not None:
            r = event.record
            note = f"last: {self.label(r)} / {r['item']} {r['status']} ({r.get('seconds', 0):.1f} s)"
        if self.bar is not None:
            self.bar.update(self.study_task, completed=event.done, total=max(event.total, 1), note=escape(note))
        else:
            now = self.plain.clock()
            if self.start is None:
                self.start = (now, event.done)
            line = progress_line("runs", event.done, event.total, None, now - self.plain.t0,
                                 eta(*self.start, event.done, event.total, now))
            self.plain.write(line + (f"  {note}" if note else ""))
            self.plain.stage = None          # the next run's stages print their first line again

    def on_run(self, event) -> None:
        if self.bar is not None:
            if self.run_task is None:
                self.run_task = self.bar.add_task("run", total=1, note="")
            self.bar.update(self.run_task, completed=event.iteration, total=max(event.total, 1), note=event.stage)
        else:
            self.plain(event)


class TrainProgress:
    """Progress of ``fusionkit train``: on a terminal a bar with step, loss, crops/s, learning rate and ETA, with
    validation lines above it; in a log, plain lines (at most one per progress interval, and every validation)."""

    def __init__(self) -> None:
        self.rich = on_terminal()
        self.plain = None if self.rich else PlainProgress()
        self.progress = None
        self.task = None
        self.start: tuple[float, int] | None = None

    def __enter__(self):
        if self.rich:
            self.progress = Progress(TextColumn("[bold]training"), BarColumn(),
                                     TextColumn("{task.completed}/{task.total}"), TextColumn("[cyan]{task.fields[loss]}"),
                                     TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[lr]}"),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc) if self.progress is not None else False

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(Text(text))
        else:
            self.plain.write(text)

    def __call__(self, e) -> None:
        if self.start is None:
            self.start = (time.monotonic(), e.step)
            if e.message:
                self._say(f"training folder: {e.message}")
            if self.progress is not None:
                self.task = self.progress.add_task("training", total=max(e.total, 1), completed=e.step, loss="",
                                                   rate="", lr="")
        if e.kind == "step":
            if self.progress is not None:
                self.progress.update(self.task, completed=e.step, loss=f"loss {e.loss:.4g}",
                                     rate=f"{e.crops_per_s:.1f} crops/s", lr=f"lr {e.lr:.2g}")
                return
            now = self.plain.clock()
            if e.step < e.total and now - self.plain.last < self.plain.interval:
                return
            self.plain.last = now
            line = progress_line("training", e.step, e.total, e.loss, now - self.plain.t0,
                                 eta(*self.start, e.step, e.total, now))
            self.plain.write(f"{line}  {e.crops_per_s:.1f} crops/s  lr {e.lr:.2g}")
        elif e.kind == "validation":
            scores = ", ".join(f"{k} {v:.4g}" for k, v in e.scores.items() if not k.startswith("seconds"))
            self._say(f"step {e.step}: validation {scores}")
        elif e.kind == "phase":
            self._say(e.message or f"step {e.step}: a new phase")
        elif e.kind == "stopping":
            self._say(f"step {e.step}: {e.message}")

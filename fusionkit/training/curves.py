"""The learning curves of a training run as CSV and PNG (``curves/``), rewritten atomically at every checkpoint.

With training phases, every row carries its ``phase``, and the plots mark the phase boundaries (dashed lines, the
phase names on top); each phase's loss terms are smoothed within the phase.
"""
from __future__ import annotations

import csv
import io as _io
import math
from collections.abc import Sequence
from pathlib import Path

from ..io import write_bytes, write_text


def to_csv(rows: list[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write(run_dir: Path, train: list[dict], validation: list[dict],
          phases: Sequence[tuple[str, int, int]] = ()) -> dict[str, str]:
    """Write ``curves/train.csv`` (+ ``.png``) and ``curves/validation.csv`` (+ ``.png``); returns what was
    written, relative to ``run_dir``. ``phases``: (name, first step, last step) of each training phase."""
    out: dict[str, str] = {}
    d = Path(run_dir) / "curves"
    if train:
        write_text(d / "train.csv", to_csv(train))
        write_bytes(d / "train.png", _plot_train(train, phases))
        out.update(train_csv="curves/train.csv", train_png="curves/train.png")
    if validation:
        write_text(d / "validation.csv", to_csv(validation))
        write_bytes(d / "validation.png", _plot_validation(validation, phases))
        out.update(validation_csv="curves/validation.csv", validation_png="curves/validation.png")
    return out


def _smooth(values: list[float], width: int) -> list[float]:
    """Trailing mean over ``width`` steps (per-step training losses are noisy)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt) -> bytes:
    buf = _io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _keys(rows: list[dict], keep) -> list[str]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys and keep(k)]
    return keys


def _mark_phases(ax, phases: Sequence[tuple[str, int, int]]) -> None:
    for i, (name, first, _last) in enumerate(phases):
        if i:
            ax.axvline(first - 0.5, color="0.4", ls="--", lw=0.8)
        ax.text(first, 0.98, f" {name}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", ha="left",
                color="0.3", clip_on=True)


def _plot_train(rows: list[dict], phases: Sequence[tuple[str, int, int]] = ()) -> bytes:
    plt = _figure()
    terms = _keys(rows, lambda k: k.startswith("loss/"))
    width = max(1, len(rows) // 50)
    segments = [[r for r in rows if first <= r["step"] <= last] for _, first, last in phases] or [rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    colours: dict[str, str] = {}
    for seg in (s for s in segments if s):
        steps = [r["step"] for r in seg]
        for k in ["total"] + terms:
            if k not in seg[0]:
                continue
            line, = ax.plot(steps, _smooth([r[k] for r in seg], width), color=colours.get(k),
                            label=None if k in colours else k.replace("loss/", ""), lw=2 if k == "total" else 1)
            colours.setdefault(k, line.get_color())
    _mark_phases(ax, phases)
    ax.set(xlabel="step", ylabel=f"weighted loss (mean of {width} steps)", yscale="log",
           title="training loss" + (" by phase" if phases else ""))
    ax.legend(fontsize=8)
    return _png(fig, plt)


def _plot_validation(rows: list[dict], phases: Sequence[tuple[str, int, int]] = ()) -> bytes:
    plt = _figure()
    steps = [r["step"] for r in rows]
    keys = _keys(rows, lambda k: k not in ("step", "phase") and not k.startswith("seconds"))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
    for ax, k in zip(axes[0], keys):
        values = [r.get(k) for r in rows]
        ax.plot(steps, [math.nan if v is None else v for v in values], marker="o", ms=3)
        _mark_phases(ax, phases)
        ax.set(xlabel="step", title=k)
    fig.suptitle("validation")
    return _png(fig, plt)

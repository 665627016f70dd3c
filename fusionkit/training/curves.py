"""The learning curves of a training run as CSV and PNG (``curves/``), rewritten atomically at every checkpoint."""
from __future__ import annotations

import csv
import io as _io
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


def write(run_dir: Path, train: list[dict], validation: list[dict]) -> dict[str, str]:
    """Write ``curves/train.csv`` (+ ``.png``) and ``curves/validation.csv`` (+ ``.png``); returns what was
    written, relative to ``run_dir``."""
    out: dict[str, str] = {}
    d = Path(run_dir) / "curves"
    if train:
        write_text(d / "train.csv", to_csv(train))
        write_bytes(d / "train.png", _plot_train(train))
        out.update(train_csv="curves/train.csv", train_png="curves/train.png")
    if validation:
        write_text(d / "validation.csv", to_csv(validation))
        write_bytes(d / "validation.png", _plot_validation(validation))
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


def _plot_train(rows: list[dict]) -> bytes:
    plt = _figure()
    steps = [r["step"] for r in rows]
    terms = [k for k in rows[0] if k.startswith("loss/")]
    width = max(1, len(rows) // 50)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in ["total"] + terms:
        ax.plot(steps, _smooth([r[k] for r in rows], width), label=k.replace("loss/", ""),
                lw=2 if k == "total" else 1)
    ax.set(xlabel="step", ylabel=f"weighted loss (mean of {width} steps)", yscale="log", title="training loss")
    ax.legend(fontsize=8)
    return _png(fig, plt)


def _plot_validation(rows: list[dict]) -> bytes:
    plt = _figure()
    steps = [r["step"] for r in rows]
    keys = [k for k in rows[0] if k != "step" and not k.startswith("seconds")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(steps, [r.get(k) for r in rows], marker="o", ms=3)
        ax.set(xlabel="step", title=k)
    fig.suptitle("validation")
    return _png(fig, plt)

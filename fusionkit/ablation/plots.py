"""The study's PNG plots (matplotlib, Agg): metric bars per variant, overlaid loss curves, contact sheets.

Every figure is rendered to memory and written atomically. Plots only read the records and, for the contact
sheets, the fused images in the run folders (skipped for runs whose folder this machine cannot see).
"""
from __future__ import annotations

import io as _io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import read_image, write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    return path


def metric_bars(path: Path, table: dict, labels: dict[str, str]) -> Path:
    """One panel per metric: each variant's mean with its std as an error bar; the best bar is highlighted."""
    plt = _plt()
    metrics = list(table["metrics"])
    rows = table["variants"]
    cols = min(3, len(metrics))
    nrows = (len(metrics) + cols - 1) // cols
    width = max(4.0, 0.45 * len(rows) + 1.5)
    fig, axes = plt.subplots(nrows, cols, figsize=(width * cols, 3.6 * nrows), squeeze=False)
    x = np.arange(len(rows))
    for k, m in enumerate(metrics):
        ax = axes[k // cols, k % cols]
        means = np.array([np.nan if r["metrics"][m]["mean"] is None else r["metrics"][m]["mean"] for r in rows])
        stds = np.array([0.0 if r["metrics"][m]["std"] is None else r["metrics"][m]["std"] for r in rows])
        hib = table["metrics"][m]["higher_is_better"]
        colours = ["tab:blue"] * len(rows)
        if np.isfinite(means).any():
            colours[int(np.nanargmax(means) if hib else np.nanargmin(means))] = "tab:orange"
        ax.bar(x, np.nan_to_num(means), yerr=stds, color=colours, capsize=3)
        ax.set_title(f"{m} ({'higher' if hib else 'lower'} is better)", fontsize=10)
        ax.set_xticks(x)
        ax.set_xticklabels([labels.get(r["variant"], r["variant"]) for r in rows], rotation=60, ha="right",
                           fontsize=7)
    for k in range(len(metrics), nrows * cols):
        axes[k // cols, k % cols].axis("off")
    fig.tight_layout()
    return _save(fig, path)


def loss_curves(path: Path, records: list[dict], variants: Sequence[str], labels: dict[str, str]) -> Path | None:
    """The total fusion loss against the iteration, the mean over each variant's stacks, one line per variant."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = 0
    for name in variants:
        curves = [r["loss"] for r in records if r["variant"] == name and r["status"] == "ok" and r.get("loss")]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        its = np.array([pt[0] for pt in curves[0][:n]])
        mean = np.mean([[c[i][1] for i in range(n)] for c in curves], axis=0)
        ax.plot(its, mean, label=f"{labels.get(name, name)} (n={len(curves)})", lw=1.2)
        drawn += 1
    if not drawn:
        _plt().close(fig)
        return None
    ax.set(xlabel="iteration", ylabel="total loss (mean over stacks)", yscale="log", title="fusion loss per variant")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def contact_sheet(path: Path, item: str, study_dir: Path, records: list[dict], variants: Sequence[str],
                  labels: dict[str, str], gt: Path | None, tile: int = 256) -> Path | None:
    """One stack's outputs side by side (the ground truth first when there is one), each at most ``tile`` px."""
    plt = _plt()
    panels: list[tuple[str, np.ndarray | None]] = []
    if gt is not None and gt.is_file():
        panels.append(("ground truth", read_image(gt)[0]))
    by_variant = {r["variant"]: r for r in records if r["item"] == item}
    for name in variants:
        r = by_variant.get(name)
        img = None
        if r and r["status"] == "ok" and r.get("run_dir"):
            fused = sorted((study_dir / r["run_dir"]).glob("fused.*"))
            if fused:
                img = read_image(fused[0])[0]
        panels.append((labels.get(name, name), img))
    if not any(img is not None for _, img in panels):
        return None
    cols = min(4, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.4 * nrows), squeeze=False)
    for k, (title, img) in enumerate(panels):
        ax = axes[k // cols, k % cols]
        ax.axis("off")
        ax.set_title(title, fontsize=7)
        if img is None:
            ax.text(0.5, 0.5, "failed", ha="center", va="center", color="red", transform=ax.transAxes)
            continue
        step = max(1, int(np.ceil(max(img.shape[:2]) / tile)))
        img = img[::step, ::step]
        ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
    for k in range(len(panels), nrows * cols):
        axes[k // cols, k % cols].axis("off")
    fig.suptitle(f"item {item}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)

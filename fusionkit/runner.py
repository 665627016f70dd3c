"""The Python API: run a spec end to end and write a self-describing run folder.

``fusionkit.run("spec.yaml")`` or ``fusionkit.run({...}, inputs=[a, b])`` returns a :class:`RunResult`.
Run folder contents: ``fused.png|tif``, ``maps/map_NN.png`` (and the focus measure's own maps), ``loss.csv``,
``loss.png``, ``spec.resolved.yaml`` and ``manifest.json`` (resolved spec, versions, seed, device, timings, and
how the run ended: ``status`` and ``complete``). The folder is checked and created (hidden) before any work and
published whole at the end (:mod:`fusionkit.rundir`); docs/runs.md lists what it holds in each outcome.
"""
from __future__ import annotations

import csv
import io as _io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from .engine import FusionOutcome, ProgressCallback, ProgressEvent, fuse, resolve_device
from .errors import RunError, RunInterrupted
from .io import Stack, output_error, write_bytes, read_stack, stack_from_arrays, write_image, write_json, write_text
from .planning import MemoryPlan, Planner, read_headers
from .provenance import environment, utc_now
from .resources import available_memory
from .rundir import Staging, requested_dir, signals_deferred
from .registry import Catalog, default_catalog
from .validation import ResolvedSpec, load_spec


@dataclass
class RunResult:
    """The fused image (``[sH, sW, C]`` float32 in [0, 1]), where it was written, and what produced it."""

    fused: np.ndarray
    outcome: FusionOutcome
    run_dir: Path | None
    manifest: dict

    @property
    def output_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / self.manifest["outputs"]["fused"]


def run(spec: str | os.PathLike | dict | ResolvedSpec, overrides: Sequence[str] = (), *,
        inputs: Sequence[np.ndarray] | None = None, progress: ProgressCallback | None = None,
        catalog: Catalog | None = None, write: bool = True) -> RunResult:
    """Validate ``spec`` (a YAML path, a dict or a :class:`ResolvedSpec`), fuse and write the run folder.

    ``inputs`` gives the images as arrays instead of the spec's ``inputs`` paths (see
    :func:`fusionkit.io.stack_from_arrays` for the rule: uint8, uint16, or floats in [0, 1]). ``write=False``
    returns the result without touching the disk.

    The output location is checked, and a hidden staging folder created, before anything is read or computed; the
    outputs' size is checked against the free space before computing. A ``KeyboardInterrupt`` (SIGINT, or SIGTERM
    where the program turns it into one, as the CLI does) after the engine has a good iterate publishes a run folder
    with that iterate and ``"status": "interrupted"``, then raises :class:`~fusionkit.errors.RunInterrupted`;
    earlier, it leaves no folder at all.
    """
    catalog = catalog or default_catalog()
    resolved = spec if isinstance(spec, ResolvedSpec) else load_spec(
        spec, overrides, catalog=catalog, require_inputs=inputs is None)
    started = utc_now()
    staging = Staging.create(_output_dir(resolved)) if write else None
    try:
        device = resolve_device(resolved.spec.device)
        plan = _plan_from_headers(resolved, catalog, device) if inputs is None else None
        t0 = time.perf_counter()
        stack, focal = _read_stack(resolved, inputs, catalog)
        t_read = time.perf_counter() - t0
        _check_size(resolved, stack)
        if staging is not None:
            staging.check_space(_output_bytes(resolved, stack, focal is not None))
        outcome = fuse(resolved.spec, catalog, stack, progress=progress, device=device, plan=plan)
        outcome.timings = {("refocus" if focal is not None else "read_inputs"): round(t_read, 4), **outcome.timings}
        outcome.timings["total"] = round(outcome.timings["total"] + t_read, 4)
        manifest = _manifest(resolved, stack, outcome, catalog, device, started)
        if focal is not None:
            manifest["light_field"] = focal.info
        run_dir = None
        if staging is not None:
            run_dir = _write_run_folder(staging, resolved, stack, focal, outcome, manifest, progress,
                                        _output_bytes(resolved, stack, focal is not None))
    except BaseException:
        if staging is not None:
            staging.discard()
        raise
    result = RunResult(outcome.fused, outcome, run_dir, manifest)
    if outcome.interrupted:
        raise RunInterrupted(outcome.interrupted, run_dir, result)
    if outcome.stopped_early:
        where = f"; the last good output is in {run_dir}" if run_dir else ""
        raise RunError(f"the fusion stopped early: {outcome.stopped_early}{where}",
                       "lower optimizer.lr (e.g. --set optimizer.lr=1e-4) or reduce the loss weights")
    return result


def _read_stack(resolved: ResolvedSpec, inputs, catalog: Catalog):
    """The stack to fuse (from arrays, the spec's files, or a light field) and the focal stack info, if any."""
    if inputs is not None:
        return stack_from_arrays(inputs), None
    if resolved.spec.light_field is not None:
        return _light_field_stack(resolved, catalog)
    return read_stack(resolved.spec.inputs, resolved.input_origins), None


def _write_run_folder(staging: Staging, resolved: ResolvedSpec, stack: Stack, focal, outcome: FusionOutcome,
                      manifest: dict, progress: ProgressCallback | None, need: int) -> Path:
    """Write every output into the staging folder and publish it; SIGINT/SIGTERM wait until it is done.

    A signal that came while writing is delivered once the folder is complete: it then surfaces as
    :class:`RunInterrupted` with ``complete=True``. A write failure (no space, permissions) leaves nothing.
    """
    report = progress or (lambda e: None)
    t1 = time.perf_counter()
    run_dir = None
    try:
        with signals_deferred():
            report(ProgressEvent("write", 0, 1))
            try:
                if focal is not None:
                    _write_slices(staging.path, stack, manifest)
                _write_outputs(staging.path, resolved, stack, outcome, manifest)
                manifest["timings"]["write_outputs"] = round(time.perf_counter() - t1, 4)
                manifest["timings"]["total"] = round(manifest["timings"]["total"]
                                                     + manifest["timings"]["write_outputs"], 4)

                def finish(final: Path) -> None:
                    manifest["run_dir"] = str(final)
                    write_json(staging.path / "manifest.json", manifest)

                run_dir = staging.publish(finish)
            except OSError as exc:
                raise output_error(staging.path.parent, exc, need) from exc
            report(ProgressEvent("write", 1, 1))
    except KeyboardInterrupt as exc:
        if run_dir is None or isinstance(exc, RunInterrupted):
            raise
        result = RunResult(outcome.fused, outcome, run_dir, manifest)
        reason = outcome.interrupted or "interrupted while the finished run was being written"
        raise RunInterrupted(reason, run_dir, result, complete=outcome.interrupted is None) from exc
    return run_dir


def _output_bytes(resolved: ResolvedSpec, stack: Stack, light_field: bool) -> int:
    """Roughly what the outputs take on disk: the images uncompressed (PNG and TIFF rarely take more), the loss
    plot and the text files."""
    spec = resolved.spec
    n, h, w, c = stack.images.shape
    depth = stack.bit_depth if spec.output.bit_depth == "auto" else int(spec.output.bit_depth)
    size = h * w * spec.scale ** 2 * c * depth // 8
    if spec.output.save_maps:
        size += 2 * n * h * w
    if light_field:
        size += n * h * w * c * stack.bit_depth // 8
    return size + 2**20

def _plan_from_headers(resolved: ResolvedSpec, catalog: Catalog, device) -> MemoryPlan | None:
    """The memory plan made from the input files' headers, before any pixel is decoded (None when the headers
    cannot tell: the engine then plans after decoding). Refuses a run that cannot fit, with the numbers."""
    spec = resolved.spec
    if spec.light_field is not None or spec.method == "fuser":
        return None
    shape = read_headers(spec.inputs)
    if shape is None:
        return None
    return Planner(spec, catalog, device).plan(shape, available_memory(device))


def _slice_name(i: int, d: float) -> str:
    return f"stack/slice_{i:02d}_d{d:+.2f}.png"


def _light_field_stack(resolved: ResolvedSpec, catalog: Catalog):
    """Refocus the spec's light field into the stack to fuse; the slices are named as they will be saved."""
    ref = resolved.spec.light_field
    source = catalog.get("light_field", ref.name).cls(params=ref.params)
    focal = source(ref.path)
    images = focal.images.detach().cpu().permute(0, 2, 3, 1).numpy()
    if images.shape[0] < 2:
        raise RunError(f"the light-field source {ref.name!r} made {images.shape[0]} refocused image(s)",
                       "give at least two disparities (light_field.params)")
    names = [_slice_name(i, d) for i, d in enumerate(focal.disparities)]
    stack = stack_from_arrays(list(images), names)
    stack.bit_depth = focal.bit_depth
    return stack, focal


def _write_slices(run_dir: Path, stack: Stack, manifest: dict) -> None:
    for name, image in zip(stack.paths, stack.images):
        write_image(run_dir / name, image, stack.bit_depth)
    manifest["outputs"]["stack"] = list(stack.paths)


def _check_size(resolved: ResolvedSpec, stack: Stack) -> None:
    n, h, w, _ = stack.images.shape
    if min(h, w) < 8:
        raise RunError(f"the inputs are only {w}x{h} pixels", "use images of at least 8x8 pixels")


def _output_dir(resolved: ResolvedSpec) -> Path:
    return requested_dir(resolved.spec)


def _manifest(resolved: ResolvedSpec, stack: Stack, outcome: FusionOutcome, catalog: Catalog, device,
              started: str) -> dict:
    spec = resolved.spec
    used = {("focus_measure", spec.focus_measure.name), ("resampler", spec.downsampler.name),
            ("resampler", spec.upsampler.name)}
    if spec.method == "fuser":
        used = {("fuser", spec.fuser.name), ("resampler", spec.upsampler.name)}
    if spec.light_field is not None:
        used.add(("light_field", spec.light_field.name))
    if spec.method == "dfp":
        used |= {("generator", spec.generator.name)} | {("loss", t.name) for t in spec.losses}
        if spec.generator.warm_start is not None:
            used.add(("fuser", spec.generator.warm_start.name))
    if spec.decision_embedding.applies_to(stack.images.shape[0]) and spec.method != "fuser":
        used |= {("generator", spec.decision_embedding.generator.name), ("loss", spec.decision_embedding.loss.name)}
    components = {f"{k}:{n}": {"dist": catalog.get(k, n).dist, "version": catalog.get(k, n).version}
                  for k, n in sorted(used)}
    n, h, w, c = stack.images.shape
    last = outcome.loss_history[-1] if outcome.loss_history else None
    status = "stopped_early" if outcome.stopped_early else "interrupted" if outcome.interrupted else "ok"
    manifest = {
        "fusionkit": __version__,
        "status": status,                 # ok | stopped_early (NaN/inf loss) | interrupted (SIGINT/SIGTERM)
        "complete": status == "ok",       # the run went as the spec asked (a stopping rule counts as ok)
        "stopped_early": outcome.stopped_early,
        "interrupted": outcome.interrupted,
        "stops": outcome.stops,
        "started": started,
        "finished": utc_now(),
        "spec_file": resolved.source,
        "overrides": list(resolved.overrides),
        "preset": {"name": spec.preset, "filled": resolved.preset_values} if spec.preset else None,
        "spec": resolved.to_dict(),
        "seed": spec.seed,
        "decision_embedding_applied": spec.method != "fuser" and spec.decision_embedding.applies_to(n),
        "inputs": {"paths": stack.paths, "count": n, "size": [w, h], "channels": c, "bit_depth": stack.bit_depth},
        "output_size": [w * spec.scale, h * spec.scale],
        "components": components,
        "environment": environment(device),
        "timings": dict(outcome.timings),
        "threads": outcome.threads,
        "memory": outcome.memory,
        "final_loss": last,
        "outputs": {},
    }
    if outcome.fuser is not None:   # method fuser: did it super-resolve, or was it upsampled (and by what)
        manifest["fuser"] = outcome.fuser
    if outcome.warm_start is not None:   # DFP's first guess: the fuser, how it became x s, its seconds
        manifest["warm_start"] = outcome.warm_start
    if outcome.downsampler is not None:   # an estimated downsampler (e.g. learned_kernel): what it learnt
        manifest["downsampler"] = {"name": spec.downsampler.name, **(outcome.downsampler["report"] or {})}
    return manifest


def _write_outputs(run_dir: Path, resolved: ResolvedSpec, stack: Stack, outcome: FusionOutcome,
                   manifest: dict) -> None:
    spec = resolved.spec
    ext = ".png" if spec.output.format == "png" else ".tif"
    depth = stack.bit_depth if spec.output.bit_depth == "auto" else int(spec.output.bit_depth)
    outputs = manifest["outputs"]
    outputs["fused"] = f"fused{ext}"
    write_image(run_dir / outputs["fused"], outcome.fused, depth)
    if spec.output.save_maps:
        outputs["maps"] = []
        for i, (m, m0) in enumerate(zip(outcome.maps, outcome.initial_maps)):
            write_image(run_dir / "maps" / f"map_{i:02d}.png", m[:, :, None], 8)
            write_image(run_dir / "maps" / f"focus_measure_{i:02d}.png", m0[:, :, None], 8)
            outputs["maps"] += [f"maps/map_{i:02d}.png", f"maps/focus_measure_{i:02d}.png"]
    if outcome.loss_history:
        outputs["loss_csv"] = "loss.csv"
        write_text(run_dir / "loss.csv", _csv(outcome.loss_history))
        outputs["loss_plot"] = "loss.png"
        _plot_losses(run_dir / "loss.png", outcome.loss_history, outcome.embedding_history)
    if outcome.embedding_history:
        outputs["embedding_loss_csv"] = "embedding_loss.csv"
        write_text(run_dir / "embedding_loss.csv", _csv(outcome.embedding_history))
    if outcome.downsampler is not None and outcome.downsampler["artifacts"]:
        outputs["downsampler"] = _write_artifacts(run_dir, outcome.downsampler["artifacts"])
    outputs["spec"] = "spec.resolved.yaml"
    write_text(run_dir / "spec.resolved.yaml", resolved.to_yaml())


def _write_artifacts(run_dir: Path, artifacts: dict[str, np.ndarray]) -> list[str]:
    """An estimated downsampler's arrays: ``downsampler/NAME.npy`` each, and ``downsampler/NAME.png`` for a 2-D one
    (min to max as black to white, each value a 16x16 block, so a small kernel can be seen)."""
    names = []
    for name, array in artifacts.items():
        buf = _io.BytesIO()
        np.save(buf, array)
        write_bytes(run_dir / "downsampler" / f"{name}.npy", buf.getvalue())
        names.append(f"downsampler/{name}.npy")
        if array.ndim == 2 and array.size:
            lo, hi = float(array.min()), float(array.max())
            view = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
            view = np.kron(view, np.ones((16, 16))).astype(np.float32)
            write_image(run_dir / "downsampler" / f"{name}.png", view[:, :, None], 8)
            names.append(f"downsampler/{name}.png")
    return names


def _csv(rows: list[dict]) -> str:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _plot_losses(path: Path, history: list[dict], embedding: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if embedding else 1, figsize=(10 if embedding else 6, 4), squeeze=False)
    ax = axes[0, 0]
    its = [r["iteration"] for r in history]
    for key in history[0]:
        if key not in ("iteration", "seconds"):
            ax.plot(its, [r[key] for r in history], label=key, lw=2 if key == "total" else 1)
    ax.set(xlabel="iteration", ylabel="weighted loss", title="fusion", yscale="log")
    ax.legend()
    if embedding:
        ax2 = axes[0, 1]
        ax2.plot([r["iteration"] for r in embedding], [r["loss"] for r in embedding])
        ax2.set(xlabel="iteration", ylabel="decision loss", title="decision embedding")
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buf.getvalue())

"""Training checkpoints: everything ``--resume`` needs to continue bit for bit, written atomically.

A checkpoint is ``checkpoints/step-NNNNNNNN.pt`` in the training folder: the model's and the optimiser's state, the
schedule's position, the step, the curves so far, the wall time and the fingerprint of the resolved spec it belongs
to. Batches are a function of (seed, step, rank) and nothing else is random, so these are all the state there is.
Only the newest ``keep`` checkpoints are kept; a file is written to a temporary name and renamed, so an interrupted
write never replaces a good checkpoint.
"""
from __future__ import annotations

import io as _io
import re
from pathlib import Path

import torch

from ..errors import InputError
from ..io import write_bytes

FORMAT = "fusionkit-checkpoint/1"
_NAME = re.compile(r"^step-(\d{8})\.pt$")


def folder(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def path_for(run_dir: Path, step: int) -> Path:
    return folder(run_dir) / f"step-{step:08d}.pt"


def save(run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write the checkpoint of ``step`` and delete all but the newest ``keep``."""
    payload = {"format": FORMAT, "step": step, **state}
    buf = _io.BytesIO()
    torch.save(payload, buf)
    path = path_for(run_dir, step)
    write_bytes(path, buf.getvalue())
    for old in existing(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def existing(run_dir: Path) -> list[Path]:
    """The checkpoints in ``run_dir``, oldest first."""
    d = folder(run_dir)
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if _NAME.match(p.name)), key=lambda p: int(_NAME.match(p.name).group(1)))


def load_latest(run_dir: Path) -> dict:
    """The newest readable checkpoint of ``run_dir`` (an unreadable newest one falls back to the one before)."""
    found = existing(run_dir)
    if not found:
        raise InputError(f"{run_dir} holds no checkpoint to resume from",
                         "give the folder of an earlier `fusionkit train` run (it has checkpoints/), or start a new "
                         "training without --resume")
    errors = []
    for path in reversed(found):
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            errors.append(f"{path.name}: {type(exc).__name__}")
            continue
        if isinstance(payload, dict) and payload.get("format") == FORMAT:
            payload["path"] = str(path)
            return payload
        errors.append(f"{path.name}: not a fusionkit checkpoint")
    raise InputError(f"no readable checkpoint in {run_dir} ({'; '.join(errors)})",
                     "start a new training without --resume")

"""Trained weights as data: one file holding a model's state, the architecture it belongs to, and how it was trained.

A weights file is a ``torch.save`` of plain data (read back with ``weights_only=True``: no code runs on load)::

    {"format": "fusionkit-weights/1", "model": "udpnet", "dist": ..., "version": ...,
     "architecture": {...the model's Params...}, "state_dict": {...}, "training": {...summary...}}

A weights reference (a component's ``weights`` parameter) is either

- a file path (absolute, or relative to the current folder; it contains a ``/`` or ends in ``.pt``), or
- ``PACKAGE:NAME``: the file ``weights/NAME.pt`` shipped as package data of the importable ``PACKAGE``
  (fusionkit's built-ins: ``fusionkit_plugins.udpnet:udpnet-mfiwhu``; a plugin distribution ships its own the
  same way).

Loading checks the model name and every architecture parameter against what the component was configured with, and
says which differ and how to fix it. Nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
import io as _io
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .errors import FusionkitError
from .io import write_bytes

FORMAT = "fusionkit-weights/1"
SUFFIX = ".pt"
_PACKAGE_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z0-9_.\-]+)$")


class WeightsError(FusionkitError):
    """A weights file is missing, unreadable, or does not fit the component that should load it."""


def is_package_ref(ref: str) -> bool:
    """Whether ``ref`` names package data (``PACKAGE:NAME``) rather than a file path."""
    return "/" not in ref and "\\" not in ref and not ref.endswith(SUFFIX) and bool(_PACKAGE_REF.match(ref))


def normalise_ref(ref: str) -> str:
    """A reference as a spec records it: package references unchanged, file paths absolute (against the current
    folder), so a resolved spec names the same file wherever it is run from. Raises ``ValueError`` for a string
    that is neither (pydantic turns it into a located spec problem)."""
    ref = ref.strip()
    if not ref:
        raise ValueError("the weights reference is empty; give a file path or PACKAGE:NAME")
    if is_package_ref(ref):
        return ref
    if ":" in ref and "/" not in ref and not ref.endswith(SUFFIX):
        raise ValueError(f"{ref!r} is neither a weights file (a path ending in {SUFFIX}) nor PACKAGE:NAME "
                         "(e.g. fusionkit_plugins.udpnet:udpnet-mfiwhu)")
    return os.path.abspath(os.path.expanduser(ref))


def resolve(ref: str) -> Path:
    """The file a reference names; a :class:`WeightsError` with the fix when there is none."""
    m = _PACKAGE_REF.match(ref) if is_package_ref(ref) else None
    if m is None:
        path = Path(os.path.expanduser(ref))
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}",
                               "check the path (relative paths are relative to the current folder), or train the "
                               "weights first with `fusionkit train`; omit `weights` to use the built-in ones")
        return path
    package, name = m.groups()
    try:
        folder = resources.files(package) / "weights"
    except ModuleNotFoundError:
        raise WeightsError(f"weights {ref!r}: no installed package {package!r}",
                           "install the plugin distribution that ships these weights, or give a file path") from None
    path = Path(str(folder / f"{name}{SUFFIX}"))
    if not path.is_file():
        shipped = sorted(p.name[:-len(SUFFIX)] for p in Path(str(folder)).glob(f"*{SUFFIX}")) \
            if Path(str(folder)).is_dir() else []
        raise WeightsError(f"weights {ref!r}: the package {package!r} ships no weights named {name!r}",
                           f"use one of: {', '.join(f'{package}:{s}' for s in shipped)}" if shipped else
                           f"{package} ships no weights; give a file path")
    return path


def save(path: str | os.PathLike, *, model: str, architecture: dict, state_dict: dict, training: dict | None = None,
         dist: str = "unknown", version: str = "?") -> str:
    """Write a weights file atomically; returns its sha256 (what manifests record)."""
    payload = {"format": FORMAT, "model": model, "dist": dist, "version": version,
               "architecture": dict(architecture),
               "state_dict": {k: v.detach().to("cpu").clone() for k, v in state_dict.items()},
               "training": dict(training or {})}
    buf = _io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    write_bytes(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read(ref: str) -> dict:
    """The whole weights file a reference names (cached per file version: components and validation share it)."""
    path = resolve(ref)
    st = path.stat()
    return _read_cached(str(path.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise WeightsError(f"cannot read the weights file {path}: {type(exc).__name__}: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable'}",
                           "the file is damaged or not a fusionkit weights file; train it again or give another "
                           "file") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a fusionkit weights file (format {FORMAT!r})",
                           "give a file written by `fusionkit train` (its weights.pt)")
    return payload


def mismatches(recorded: dict, expected: dict) -> list[str]:
    """Architecture parameters that differ, in words: ``"channels: the weights have [8, 16], configured [16, 32]"``."""
    out = []
    for key in sorted(set(recorded) | set(expected)):
        if key not in expected:
            out.append(f"{key}: recorded with the weights ({recorded[key]!r}) but unknown to this fusionkit")
        elif key not in recorded:
            out.append(f"{key}: configured {expected[key]!r}, not recorded with the weights (an older file?)")
        elif _plain(recorded[key]) != _plain(expected[key]):
            out.append(f"{key}: the weights have {recorded[key]!r}, configured {expected[key]!r}")
    return out


def check(payload: dict, *, model: str, architecture: dict, where: str) -> None:
    """Refuse weights of another model or another architecture, naming each difference and the fix."""
    if payload.get("model") != model:
        raise WeightsError(f"{where} holds weights of the model {payload.get('model')!r}, not {model!r}",
                           f"give weights trained for {model!r} (fusionkit train with `model: {{name: {model}}}`)")
    diff = mismatches(payload.get("architecture", {}), architecture)
    if diff:
        sets = ", ".join(f"{d.split(':')[0]}={_yaml(payload['architecture'][d.split(':')[0]])}" for d in diff
                         if d.split(':')[0] in payload.get("architecture", {}))
        raise WeightsError(f"{where} does not fit the configured {model} architecture: " + "; ".join(diff),
                           (f"set the component's params to the recorded architecture ({sets}), " if sets else "")
                           + "or give weights trained with the configured architecture")


def load_into(module: torch.nn.Module, ref: str, *, model: str, architecture: dict) -> dict:
    """Check and load the weights ``ref`` names into ``module``; returns the file's payload (for its metadata)."""
    payload = read(ref)
    check(payload, model=model, architecture=architecture, where=f"the weights {ref}")
    state = payload["state_dict"]
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or shapes:
        parts = ([f"missing {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else "")] if missing else []) + \
                ([f"unexpected {', '.join(extra[:4])}" + (" ..." if len(extra) > 4 else "")] if extra else []) + \
                ([f"shapes differ: {', '.join(shapes[:3])}"] if shapes else [])
        raise WeightsError(f"the weights {ref} do not match the {model} network's tensors: " + "; ".join(parts),
                           "the file was written by a different version of the model; train it again with this "
                           "fusionkit")
    module.load_state_dict(state, strict=True)
    return payload


def count_parameters(state_dict: dict[str, Any]) -> int:
    return int(sum(v.numel() for v in state_dict.values()))


def _plain(v: Any) -> Any:
    """Compare lists and tuples alike (JSON round trips turn tuples into lists)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _yaml(v: Any) -> str:
    import json
    return json.dumps(_plain(v)).replace(" ", "")

"""Reading input stacks and writing outputs atomically.

Inputs: 8- or 16-bit PNG/TIFF/JPEG/BMP, grayscale or colour (alpha dropped), converted to float32 in [0, 1]; float
TIFFs are read as they are and must already lie in [0, 1] (anything else is refused, never clipped silently).
Outputs are written to a temporary file in the destination folder and moved into place with ``os.replace``, so a
crash never leaves a half-written file and never clobbers an earlier result. Files get the usual mode for new
files (0666 less the umask, e.g. 0644), as any other program writing images would.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import InputError, RunError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

# NumPy and OpenCV are imported by the functions that decode or encode pixels: the atomic writers are used by
# light commands (the catalog cache) that must not pay for them.

IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}


@dataclass
class Stack:
    """N co-registered images as float32 ``[N, H, W, C]`` in [0, 1] (C = 1 or 3, RGB order)."""

    images: np.ndarray
    bit_depth: int          # 8 or 16: what outputs are written with when ``bit_depth: auto``
    paths: list[str]

    @property
    def is_colour(self) -> bool:
        return self.images.shape[-1] == 3


def read_image(path: str | os.PathLike, origin: str | None = None) -> tuple[np.ndarray, int]:
    """One image as float32 ``[H, W, C]`` RGB/gray in [0, 1] and its bit depth (8 or 16).

    ``origin`` says how the path was resolved (e.g. "'near.png', given with --set, is relative to the current
    folder /x"); a missing file's message repeats it, so the user sees where fusionkit looked and why.
    """
    import numpy as np
    import cv2

    p = Path(path)
    if p.is_dir():
        raise InputError(f"input {p} is a folder, not an image",
                         "list the image files in it one by one under `inputs:` (a light field's folder of views "
                         "goes under `light_field:` instead, see docs/light-fields.md)")
    if not p.is_file():
        raise InputError(f"input image not found: {p}",
                         f"check the path ({origin})" if origin else "check the path")
    try:
        raw = np.fromfile(p, dtype=np.uint8)
        img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    except (OSError, cv2.error) as exc:
        raise InputError(f"cannot read input image {p}: {exc}", "check that the file is a readable image") from exc
    if img is None:
        raise InputError(f"input image {p} is empty, corrupt or not an image format OpenCV can decode",
                         "re-export it as PNG or TIFF (8 or 16 bit)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]  # BGR -> RGB
    elif img.ndim == 2:
        img = img[:, :, None]
    else:
        raise InputError(f"input image {p} has an unsupported layout {img.shape}", "use gray or RGB images")
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0, 8
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0, 16
    if img.dtype in (np.float32, np.float64):
        arr = img.astype(np.float32)
        if not np.isfinite(arr).all():
            raise InputError(f"input image {p} contains NaN or infinite values", "fix or re-export the image")
        return _unit_range(arr, f"input image {p}", "rescale it to [0, 1], or save it as an 8- or 16-bit "
                                                    "integer image"), 16
    raise InputError(f"input image {p} has unsupported sample type {img.dtype}", "use 8- or 16-bit images")


#: how far outside [0, 1] a float image may stray (rounding in a resampler) before it is refused, not clipped
RANGE_TOLERANCE = 1e-3


def _unit_range(a: np.ndarray, what: str, fix: str) -> np.ndarray:
    """``a`` clipped to [0, 1] if it strays at most :data:`RANGE_TOLERANCE`; otherwise an :class:`InputError`
    (float data in 0-255 or 0-65535 would otherwise be clipped to a white image without a word)."""
    import numpy as np

    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < -RANGE_TOLERANCE or hi > 1.0 + RANGE_TOLERANCE:
        raise InputError(f"{what} holds floating-point values from {lo:g} to {hi:g}; fusionkit reads float "
                         "images as [0, 1] and will not clip them silently", fix)
    return np.clip(a, 0.0, 1.0)


def stack_from_arrays(arrays: Sequence[np.ndarray], names: Sequence[str] | None = None) -> Stack:
    """Validate in-memory images into a :class:`Stack`.

    The rule: ``uint8`` is read as 0-255 and ``uint16`` as 0-65535 (both scaled to [0, 1]); float arrays must
    already lie in [0, 1] (a rounding overshoot of up to 0.001 is clipped); anything else (floats in 0-255, other
    integer types, booleans) is refused with an :class:`InputError` saying how to convert it. Nothing is rescaled
    by guessing.
    """
    import numpy as np

    imgs, depth = [], 8
    names = list(names or [f"<array {i}>" for i in range(len(arrays))])
    for name, a in zip(names, arrays):
        a = np.asarray(a)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.dtype == np.uint8:
            a = a.astype(np.float32) / 255.0
        elif a.dtype == np.uint16:
            a, depth = a.astype(np.float32) / 65535.0, 16
        elif np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
            if np.isfinite(a).all():
                a = _unit_range(a, f"input {name} ({a.dtype})", "divide by 255 (8-bit data) or 65535 (16-bit "
                                "data), or pass the uint8/uint16 array itself")
        else:
            raise InputError(f"input {name} has sample type {a.dtype}",
                             "pass uint8 (0-255) or uint16 (0-65535) arrays, or floats in [0, 1]")
        imgs.append(a)
    return _combine(imgs, depth, names)


def read_stack(paths: Sequence[str | os.PathLike], origins: Sequence[str] = ()) -> Stack:
    """Read and validate 2 or more co-registered images (``origins``: how each path was resolved, see
    :func:`read_image`)."""
    if len(paths) < 2:
        raise InputError(f"fusion needs at least 2 input images, got {len(paths)}",
                         "list two or more images under `inputs:` in the spec")
    imgs, depths = [], []
    for i, p in enumerate(paths):
        img, d = read_image(p, origins[i] if i < len(origins) else None)
        imgs.append(img)
        depths.append(d)
    return _combine(imgs, max(depths), [str(p) for p in paths])


def _combine(imgs: list[np.ndarray], depth: int, names: list[str]) -> Stack:
    import numpy as np

    if len(imgs) < 2:
        raise InputError(f"fusion needs at least 2 input images, got {len(imgs)}", "give two or more images")
    sizes = {im.shape[:2] for im in imgs}
    if len(sizes) > 1:
        listing = ", ".join(f"{n} {im.shape[1]}x{im.shape[0]}" for n, im in zip(names, imgs))
        raise InputError(f"input images differ in size: {listing}",
                         "all inputs must be co-registered images of the same width and height; crop or "
                         "register them first")
    if any(im.shape[2] == 3 for im in imgs):
        imgs = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in imgs]
    for n, im in zip(names, imgs):
        if not np.isfinite(im).all():
            raise InputError(f"input {n} contains NaN or infinite values", "fix the input data")
    return Stack(np.stack(imgs).clip(0.0, 1.0), depth, names)


def umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe for the instant in between)
    os.umask(mask)
    return mask


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (its own function so that tests can make the disk fail here)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes atomically: a temporary file in the same folder, fsync, then os.replace.

    The file gets mode 0666 less the umask (``mkstemp`` would leave 0600, unreadable for other users and web
    servers). On any failure the temporary file is removed and nothing at ``path`` changes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        try:
            os.fchmod(fd, 0o666 & ~umask())
            _write_fd(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    write_bytes(Path(path), text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_image(path: str | os.PathLike, image: np.ndarray, bit_depth: int = 8) -> None:
    """Write float ``[H, W, C]`` in [0, 1] (RGB or gray) as an 8- or 16-bit PNG/TIFF, atomically."""
    import numpy as np
    import cv2

    path = Path(path)
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = img[:, :, ::-1]  # RGB -> BGR
    if bit_depth == 16:
        data = np.round(img * 65535.0).astype(np.uint16)
    else:
        data = np.round(img * 255.0).astype(np.uint8)
    ok, buf = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(data))
    if not ok:
        raise RunError(f"could not encode {path.name}", "use a .png or .tif output format")
    write_bytes(path, buf.tobytes())


def new_run_dir(requested: str | os.PathLike) -> Path:
    """Create a new, empty run folder: ``NAME``, or ``NAME-2``, ``NAME-3``, ... when it exists (a run never writes
    into another's folder).

    Allocation is exclusive: the folder is created with one ``mkdir`` that fails if anything already has the name,
    so two runs started together never get the same folder, and an existing folder, even an empty one, is never
    reused.
    """
    base = Path(requested)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(base.parent, exc) from exc
    k = 1
    while True:
        candidate = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            k += 1
        except OSError as exc:
            raise output_error(candidate, exc) from exc


def output_error(path: Path, exc: OSError, need: int | None = None) -> RunError:
    """A :class:`RunError` that says what went wrong writing under ``path``, in words, with the fix."""
    fix = "choose another `output.dir` (or --set output.dir=...)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        need_text = f"; the outputs need about {need / 2**20:.1f} MiB" if need else ""
        free = _free_bytes(path)
        free_text = f" ({free / 2**20:.1f} MiB free)" if free is not None else ""
        return RunError(f"no space left on the device holding {path}{free_text}{need_text}; nothing was kept",
                        f"free some space there, or {fix}")
    if exc.errno == errno.EROFS:
        return RunError(f"cannot write under {path}: the file system is read-only", fix)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return RunError(f"cannot write under {path}: {exc.strerror or 'Permission denied'}",
                        f"{fix}, or a folder you may write into")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return RunError(f"cannot create the run folder under {path}: a file is in the way", fix)
    return RunError(f"cannot write under {path}: {exc.strerror or exc}", fix)


def _free_bytes(path: Path) -> int | None:
    import shutil

    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None

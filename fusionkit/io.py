"""Reading input stacks and writing outputs atomically.

Inputs: 8- or 16-bit PNG/TIFF/JPEG/BMP, grayscale or colour (alpha dropped), converted to float32 in [0, 1].
Outputs are written to a temporary file in the destination folder and moved into place with ``os.replace``, so a
crash never leaves a half-written file and never clobbers an earlier result.
"""
from __future__ import annotations

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
        return np.clip(arr, 0.0, 1.0), 16
    raise InputError(f"input image {p} has unsupported sample type {img.dtype}", "use 8- or 16-bit images")


def stack_from_arrays(arrays: Sequence[np.ndarray], names: Sequence[str] | None = None) -> Stack:
    """Validate in-memory images (float in [0,1] or uint8/uint16) into a :class:`Stack`."""
    import numpy as np

    imgs, depth = [], 8
    for a in arrays:
        a = np.asarray(a)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.dtype == np.uint8:
            a = a.astype(np.float32) / 255.0
        elif a.dtype == np.uint16:
            a, depth = a.astype(np.float32) / 65535.0, 16
        imgs.append(a.astype(np.float32))
    return _combine(imgs, depth, list(names or [f"<array {i}>" for i in range(len(imgs))]))


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


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes atomically: a temporary file in the same folder, fsync, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
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
    """Create the run folder; if it already exists and is not empty, create ``NAME-2``, ``NAME-3``, ... instead
    (a run never silently overwrites another)."""
    base = Path(requested)
    candidate, k = base, 1
    while True:
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            if candidate.is_dir() and not any(candidate.iterdir()):
                return candidate
            k += 1
            candidate = base.with_name(f"{base.name}-{k}")
        except OSError as exc:
            raise RunError(f"cannot create the output folder {candidate}: {exc}",
                           "choose a writable `output.dir` (or --set output.dir=...)") from exc

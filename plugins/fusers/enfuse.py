"""enfuse's focus-stacking mode as a complete fuser: the classical multi-resolution baseline beside DFP.

enfuse (Enblend-Enfuse, Debian package ``enfuse``) blends the stack in a Laplacian pyramid with per-pixel weights
from local contrast. Focus stacking, as its manual recommends, turns off the exposure and saturation criteria,
weights by contrast alone and uses hard masks (each pixel from the single sharpest input, no averaging at the
finest level): ``--exposure-weight=0 --saturation-weight=0 --contrast-weight=1 --hard-mask``.

The stack travels to the program as 16-bit TIFFs in a private temporary folder (no 8-bit rounding on the way in)
and comes back as a 16-bit TIFF; the folder is removed afterwards, whatever happens.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fusionkit.errors import RunError
from fusionkit.interfaces import Fuser

from ..params.fusers import EnfuseParams

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import Tensor

PROGRAM = "enfuse"


class Enfuse(Fuser):
    """enfuse in focus-stacking mode (contrast weight only, hard masks), at the inputs' resolution.

    Colour: the inputs go to enfuse as they are (gray or RGB); enfuse measures contrast on the gray projection
    chosen by ``gray_projector`` and blends every channel with the same masks.
    """

    name = "enfuse"
    summary = "enfuse (Enblend-Enfuse) focus stacking: contrast weights, hard masks, Laplacian-pyramid blending"
    reference = ("A. Mertens, J. Kautz, F. Van Reeth, 'Exposure Fusion', Pacific Graphics 2007; Enblend-Enfuse 4.2 "
                 "manual, 'Focus stacks' (--exposure-weight=0 --saturation-weight=0 --contrast-weight=1 --hard-mask)")
    program: ClassVar[str] = PROGRAM

    Params = EnfuseParams

    @classmethod
    def unavailable(cls) -> str | None:
        if shutil.which(cls.program) is None:
            return (f"the program {cls.program!r} is not on the PATH (Debian/Ubuntu: `apt install enfuse`; "
                    "macOS: `brew install enblend-enfuse`)")
        return None

    def command(self, inputs: list[Path], output: Path) -> list[str]:
        """The enfuse command line for these files (also recorded by tests and docs)."""
        p = self.params
        cmd = [self.program, f"--output={output}", "--depth=16", "--exposure-weight=0", "--saturation-weight=0",
               "--contrast-weight=1", f"--contrast-window-size={p.contrast_window_size}",
               f"--gray-projector={p.gray_projector}"]
        if p.hard_mask:
            cmd.append("--hard-mask")
        if p.levels is not None:
            cmd.append(f"--levels={p.levels}")
        return cmd + [str(f) for f in inputs]

    def __call__(self, images: Tensor) -> Tensor:
        # imported here: `fusionkit plugins list` loads this class for `unavailable()` and must stay light
        import cv2
        import numpy as np
        import torch

        reason = self.unavailable()
        if reason:
            raise RunError(f"enfuse cannot run: {reason}", "install enfuse, or use another baseline")
        n, c, h, w = images.shape
        arrays = images.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy()
        with tempfile.TemporaryDirectory(prefix="fusionkit-enfuse-") as tmp:
            folder = Path(tmp)
            files = []
            for i, img in enumerate(arrays):
                data = np.round(img * 65535.0).astype(np.uint16)
                data = data[:, :, 0] if c == 1 else np.ascontiguousarray(data[:, :, ::-1])  # RGB -> BGR
                files.append(folder / f"input_{i:03d}.tif")
                if not cv2.imwrite(str(files[-1]), data):
                    raise RunError(f"could not write a temporary TIFF in {folder}", "check free space in $TMPDIR")
            output = folder / "fused.tif"
            try:
                done = subprocess.run(self.command(files, output), capture_output=True, text=True,
                                      timeout=self.params.timeout_s)
            except subprocess.TimeoutExpired:
                raise RunError(f"enfuse did not finish within {self.params.timeout_s:g} s",
                               "raise the fuser's timeout_s, or fuse smaller images") from None
            if done.returncode != 0 or not output.exists():
                tail = " ".join((done.stderr or done.stdout or "").split())[-400:]
                raise RunError(f"enfuse failed (exit {done.returncode}): {tail or 'no message'}",
                               "check that the inputs are valid images of one size; run the printed command by "
                               "hand to see enfuse's full message")
            fused = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
        if fused is None:
            raise RunError("enfuse wrote an output that OpenCV cannot read", "check the enfuse installation")
        return torch.from_numpy(_to_float(fused, c)).permute(2, 0, 1).unsqueeze(0)


def _to_float(data: np.ndarray, channels: int) -> np.ndarray:
    """enfuse's TIFF (8/16-bit, gray or BGR, often with an alpha mask) -> float RGB/gray ``[H, W, C]``."""
    import numpy as np

    scale = 65535.0 if data.dtype == np.uint16 else 255.0
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape[2] in (2, 4):  # drop the alpha mask enfuse adds
        data = data[:, :, :-1]
    img = data.astype(np.float32) / scale
    if img.shape[2] == 3:
        img = img[:, :, ::-1]  # BGR -> RGB
        if channels == 1:
            img = img.mean(axis=2, keepdims=True)
    return np.ascontiguousarray(img)

"""FAP-SR's training losses (§III-D, Eqs. 17-20) as swappable ``training_loss`` components.

The paper writes L1 norms, i.e. sums over pixels (and over the two inputs). Each loss here is that sum divided by
``B·H·W`` of the image it measures (LR for Eq. 17, HR for Eqs. 19-20), so the values do not grow with the crop or
the batch size, and Eq. 18's weights (λ1, λ2, λ3) = (0.8, 0.1, 0.1) are the training spec's weights of the three
Eq. 17 terms: ``fapsr_mask``, ``fapsr_gradient``, ``fapsr_ssim``. Eq. 19 is ``fapsr_reconstruction`` and Eq. 20
``fapsr_fusion``. Each needs supervision from the batch (synthetic stacks, Eq. 21) and refuses a batch without it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from fusionkit.interfaces import Params, TrainingBatch, TrainingLoss, UnsupportedInput

_SYNTHETIC = ("train on synthetic stacks (a `synthetic` data source, Eq. 21), which carry the all-in-focus truth, "
              "the decision masks and each input at HR; real stacks without ground truth cannot train FAP-SR")


def _per_pixel(total: Tensor, like: Tensor) -> Tensor:
    """A sum over a batch divided by ``B·H·W`` of ``like`` (``[B, ..., H, W]``)."""
    return total / (like.shape[0] * like.shape[-2] * like.shape[-1])


def _required(batch: TrainingBatch, field: str, loss: str, what: str) -> Tensor:
    value = getattr(batch, field, None)
    if value is None:
        raise UnsupportedInput(f"the training loss {loss} needs {what} (batch.{field}), and this batch has none",
                               _SYNTHETIC)
    return value


def _output(outputs: dict[str, Tensor], name: str, loss: str, phase_hint: str) -> Tensor:
    if name not in outputs:
        raise UnsupportedInput(f"the training loss {loss} needs the model output {name!r}, which this phase did not "
                               "compute", f"use {loss} in the {phase_hint} phase")
    return outputs[name]


def forward_gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(∂x/∂x, ∂x/∂y)`` as forward differences of ``[..., H, W]``: ``[..., H, W-1]`` and ``[..., H-1, W]``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> Tensor:
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM (Wang et al. 2004) of ``[B, 1, H, W]`` images in [0, 1], per sample ``[B]``: the Gaussian window
    (11, σ = 1.5), C1 = 0.01², C2 = 0.03², population (co)variances, averaged over the positions where the window
    fits (as ``skimage.metrics.structural_similarity(gaussian_weights=True, use_sample_covariance=False)``). An
    image smaller than the window uses a window of its smaller side."""
    size = min(window, x.shape[-2], x.shape[-1])
    w = gaussian_window(size, sigma, x.device, x.dtype)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    vx = F.conv2d(x * x, w) - mx * mx
    vy = F.conv2d(y * y, w) - my * my
    cxy = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


class MaskLoss(TrainingLoss):
    """Eq. 17, ``L_m^LR = Σ_i ‖M_i − M_i^GT‖₁``: the FAPN's decision maps against the ground-truth masks, summed over
    the K inputs, per LR pixel and sample. λ1 = 0.8 in Eq. 18 (the spec's weight)."""

    name = "fapsr_mask"
    summary = "FAP-SR Eq. 17 L_m: L1 between the FAPN decision maps and the ground-truth masks (LR)"
    reference = "FAP-SR §III-D1, Eq. (17) L_m^LR, weighted λ1 = 0.8 in Eq. (18)"
    needs = ("maps",)

    class Params(Params):
        pass

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        maps = _output(outputs, "maps", self.name, "fapn")
        gt = _required(batch, "masks", self.name, "the ground-truth decision masks")
        return _per_pixel((maps - gt.to(maps)).abs().sum(), maps)


class GradientLoss(TrainingLoss):
    """Eq. 17, ``L_gd^LR = ‖∇I_fus^LR − ∇I_GT^LR‖₁`` with ``I_fus^LR = Σ_i M_i ⊙ I_i^LR``: forward differences
    along x and y (both summed), per LR pixel and sample. λ2 = 0.1 in Eq. 18."""

    name = "fapsr_gradient"
    summary = "FAP-SR Eq. 17 L_gd: L1 between the gradients of the map-composed LR image and of the LR truth"
    reference = "FAP-SR §III-D1, Eq. (17) L_gd^LR, weighted λ2 = 0.1 in Eq. (18)"
    needs = ("fused_lr",)

    class Params(Params):
        pass

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        fused = _output(outputs, "fused_lr", self.name, "fapn")
        truth = _required(batch, "truth", self.name, "the LR all-in-focus truth").to(fused)
        fx, fy = forward_gradients(fused)
        tx, ty = forward_gradients(truth)
        return _per_pixel((fx - tx).abs().sum() + (fy - ty).abs().sum(), fused)


class SSIMLoss(TrainingLoss):
    """Eq. 17, ``L_ssim^LR = 1 − SSIM(I_fus^LR, I_GT^LR)`` (:func:`ssim`, averaged over the batch). λ3 = 0.1 in
    Eq. 18."""

    name = "fapsr_ssim"
    summary = "FAP-SR Eq. 17 L_ssim: 1 - SSIM of the map-composed LR image against the LR truth"
    reference = "FAP-SR §III-D1, Eq. (17) L_ssim^LR (SSIM of Wang et al. 2004), weighted λ3 = 0.1 in Eq. (18)"
    needs = ("fused_lr",)

    class Params(Params):
        window: int = Field(11, ge=3, le=31, description="side of the Gaussian SSIM window")
        sigma: float = Field(1.5, gt=0.0, le=10.0, description="σ of the Gaussian SSIM window")

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        fused = _output(outputs, "fused_lr", self.name, "fapn")
        truth = _required(batch, "truth", self.name, "the LR all-in-focus truth").to(fused)
        return 1.0 - ssim(fused, truth, self.params.window, self.params.sigma).mean()


class ReconstructionLoss(TrainingLoss):
    """Eq. 19, ``L^HR = Σ_i ‖I_i^HR − I_GTi^HR‖₁``: each input super-resolved by the SRN against that input at HR
    (``batch.hr_sources``), summed over the K inputs, per HR pixel and sample."""

    name = "fapsr_reconstruction"
    summary = "FAP-SR Eq. 19 L^HR: L1 between each input super-resolved by the SRN and that input at HR"
    reference = "FAP-SR §III-D2, Eq. (19)"
    needs = ("sr",)

    class Params(Params):
        pass

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        sr = _output(outputs, "sr", self.name, "srn")
        hr = _required(batch, "hr_sources", self.name, "each input at high resolution").to(sr)
        if hr.shape != sr.shape:
            raise UnsupportedInput(f"{self.name}: the HR inputs are {tuple(hr.shape)}, the SRN gave "
                                   f"{tuple(sr.shape)}", "make the data's scale the model's scale")
        return _per_pixel((sr - hr).abs().sum(), sr)


class FusionLoss(TrainingLoss):
    """Eq. 20, ``L_fus^HR = ‖I_fus^HR − I_GT^HR‖₁ + Σ_i ‖Resize(M_i^pred) ⊙ (I_fus^HR − I_GTi^HR)‖₁``: the fused HR
    image against the HR truth, plus, where each input is predicted in focus, against that input at HR (the
    last terms weighted ``focus_weight``, 1 in the paper); per HR pixel and sample. The maps are resized
    bilinearly, as in Eq. 15."""

    name = "fapsr_fusion"
    summary = "FAP-SR Eq. 20 L_fus: L1 of the fused HR image to the HR truth + to each input where it is in focus"
    reference = "FAP-SR §III-D2, Eq. (20)"
    needs = ("fused_hr", "pred_masks")

    class Params(Params):
        focus_weight: float = Field(1.0, ge=0.0, le=100.0, description="weight of the two masked terms (the "
                                    "paper: 1)")

    def __call__(self, outputs: dict[str, Tensor], batch: TrainingBatch) -> Tensor:
        fused = _output(outputs, "fused_hr", self.name, "joint")
        pred = _output(outputs, "pred_masks", self.name, "joint")
        truth = _required(batch, "hr_truth", self.name, "the HR all-in-focus truth").to(fused)
        hr = _required(batch, "hr_sources", self.name, "each input at high resolution").to(fused)
        b, k, _, h, w = pred.shape
        sh, sw = fused.shape[-2:]
        if truth.shape != fused.shape or hr.shape != (b, k, 1, sh, sw):
            raise UnsupportedInput(f"{self.name}: the HR truth {tuple(truth.shape)} and inputs {tuple(hr.shape)} do "
                                   f"not fit the fused image {tuple(fused.shape)}", "make the data's scale the "
                                   "model's scale")
        up = pred.reshape(b * k, 1, h, w)
        if (sh, sw) != (h, w):
            up = F.interpolate(up, size=(sh, sw), mode="bilinear", align_corners=False)
        up = up.view(b, k, 1, sh, sw)
        total = (fused - truth).abs().sum() + self.params.focus_weight * (up * (fused.unsqueeze(1) - hr)).abs().sum()
        return _per_pixel(total, fused)

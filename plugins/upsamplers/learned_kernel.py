"""A downsampler whose blur kernel is estimated during the fusion, jointly with the generator (blind SR).

See docs/degradation.md for why this form was chosen (a small, explicitly parameterised kernel fitted with the
image, as in Double-DIP / SelfDeblur and KernelGAN's kernel priors) and how to use it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fusionkit.interfaces import Resampler, TrainableGroup

from . import kernels
from .bicubic import BicubicResampler
from .checks import check_divisible, check_factor, check_image
from ..params.upsamplers import LearnedKernelResamplerParams

_INIT = {"lanczos2": lambda x: kernels.lanczos(x, 2), "bicubic": lambda x: kernels.keys_cubic(x, -0.5)}
#: the smallest initial tap a softmax parameterisation starts from (log of 0 is -inf)
_FLOOR = 1e-4


def gaussian_width(k: Tensor, t: Tensor) -> float:
    """The effective width of a ``[K, K]`` kernel on the tap offsets ``t``: the sigma (high-res pixels) of the
    isotropic Gaussian, sampled on the same taps and normalised, nearest to it in the least-squares sense (searched
    on a 0.01-pixel grid). Unlike the second moment it means something for signed kernels (a Lanczos kernel's second
    moment is near 0)."""
    k = k.to(torch.float64)
    t = t.to(torch.float64)
    sigmas = torch.arange(0.05, float(t.abs().max()) + 0.005, 0.01, dtype=torch.float64)
    g = torch.exp(-0.5 * (t[None, :] / sigmas[:, None]) ** 2)              # [S, K]
    g2 = g[:, :, None] * g[:, None, :]
    g2 = g2 / g2.sum(dim=(1, 2), keepdim=True)
    err = (g2 - k[None]).square().sum(dim=(1, 2))
    return float(sigmas[int(err.argmin())])


class LearnedKernelResampler(Resampler):
    """``down``: a learnable 2-D ``K x K`` kernel applied as a stride-``s`` convolution with reflected borders;
    ``up``: Keys bicubic (a = -0.5).

    Geometry (as the other resamplers, :mod:`.kernels`): tap ``(i, j)`` weighs the high-res pixel at offset
    ``(t_i, t_j)`` from the low-res pixel centre, ``t`` the :func:`~.kernels.down_offsets` within
    ``support * s`` (half-integers for even ``s``), so a centred kernel keeps the pixel-centre convention.

    The kernel is kept physical by construction and by priors:

    - it sums to 1 by construction: ``signed``: ``k = r/K^2 + (1 - sum(r/K^2))/K^2`` (a projection, negative lobes
      allowed); ``softmax``: ``k = softmax(r)`` (non-negative);
    - ``prior_loss() = w_c |mu|^2 + w_s S + w_b B``: ``mu = sum k_ij (t_j, t_i)`` the centre of mass in high-res
      pixels (0 for a centred kernel); ``S = sum (k_{i+1,j} - k_ij)^2 + (k_{i,j+1} - k_ij)^2`` the smoothness;
      ``B = sum |k_ij| max(0, rho_ij - r_0)^2`` the support penalty, ``rho_ij = |(t_i, t_j)| / s`` the tap's distance
      in low-res pixels and ``r_0`` = ``free_radius``.

    Without ``trainable_parameters`` being called (a plain use: contract checks, ``up``), ``down`` applies the
    initial kernel as a constant. The engine calls it, optimises the kernel with the generator (frozen for the
    first ``frozen_for`` of the iterations), adds ``prior_loss`` and keeps ``report()`` and ``artifacts()``.
    """

    name = "learned_kernel"
    summary = "Downsampler with a small normalised 2-D kernel estimated jointly with the generator; bicubic up"
    reference = ("Blind SR with an explicit kernel fitted jointly with a deep image prior: Ren et al., "
                 "'Neural Blind Deconvolution Using Deep Priors' (SelfDeblur), CVPR 2020, and Gandelsman et al., "
                 "'Double-DIP', CVPR 2019; kernel priors (sum to one, centre of mass, boundary) after Bell-Kligler "
                 "et al., 'Blind Super-Resolution Kernel Estimation using an Internal-GAN' (KernelGAN), NeurIPS 2019")

    Params = LearnedKernelResamplerParams

    def __init__(self, params: Any = None, **overrides: Any):
        super().__init__(params, **overrides)
        self._raw: dict[int, Tensor] = {}      # factor -> the trainable leaf tensor
        self._up = BicubicResampler()

    # -- geometry and parameterisation ------------------------------------------------------------------------------

    def offsets(self, factor: int) -> Tensor:
        """The 1-D tap offsets (float64, high-res pixels from the low-res pixel centre)."""
        return kernels.down_offsets(self.params.support, check_factor(factor))

    def initial_kernel(self, factor: int) -> Tensor:
        """The ``[K, K]`` float64 kernel it starts from: the separable ``init`` kernel at the tap offsets, summing
        to 1 (for ``softmax``, its positive part, floored, renormalised)."""
        f = check_factor(factor)
        t = self.offsets(f)
        w = _INIT[self.params.init](t / f)
        k = torch.outer(w, w)
        k = k / k.sum()
        if self.params.parameterisation == "softmax":
            k = k.clamp_min(_FLOOR)
            k = k / k.sum()
        return k

    def _raw_from_kernel(self, k: Tensor) -> Tensor:
        if self.params.parameterisation == "softmax":
            return k.log()
        return k * k.numel()

    def _kernel_from_raw(self, raw: Tensor) -> Tensor:
        if self.params.parameterisation == "softmax":
            return torch.softmax(raw.reshape(-1), 0).reshape(raw.shape)
        k = raw / raw.numel()
        return k + (1 - k.sum()) / k.numel()

    def kernel(self, factor: int, device: Any = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """The current ``[K, K]`` kernel at ``factor`` (differentiable in the trainable parameters once made)."""
        f = check_factor(factor)
        raw = self._raw.get(f)
        if raw is None:
            raw = self._raw_from_kernel(self.initial_kernel(f))
        k = self._kernel_from_raw(raw)
        return k.to(device=device if device is not None else k.device, dtype=dtype)

    # -- the extension point ---------------------------------------------------------------------------------------

    def trainable_parameters(self, factor: int, device: Any) -> list[TrainableGroup]:
        f = check_factor(factor)
        if f == 1:
            return []
        raw = self._raw_from_kernel(self.initial_kernel(f)).to(device=device, dtype=torch.float32)
        self._raw[f] = raw.requires_grad_(True)
        return [TrainableGroup([self._raw[f]], lr=self.params.lr, frozen_for=self.params.frozen_for)]

    def load_kernel(self, factor: int, kernel: Any) -> None:
        """Start the trainable kernel at ``factor`` from a given ``[K, K]`` kernel (e.g. a previous run's
        ``downsampler/kernel_xS.npy``); it is normalised to sum 1 (floored at 1e-4 for ``softmax``). Call it after
        ``trainable_parameters`` to start the fusion from it."""
        f = check_factor(factor)
        k = torch.as_tensor(np.asarray(kernel), dtype=torch.float64)
        size = self.offsets(f).numel()
        if k.shape != (size, size):
            raise ValueError(f"a kernel for x{f} with support {self.params.support} is {size}x{size}; got "
                             f"{tuple(k.shape)}")
        k = k / k.sum()
        if self.params.parameterisation == "softmax":
            k = k.clamp_min(_FLOOR)
            k = k / k.sum()
        raw = self._raw_from_kernel(k).to(torch.float32)
        if f in self._raw:
            with torch.no_grad():
                self._raw[f].copy_(raw.to(self._raw[f].device))
        else:
            self._raw[f] = raw.requires_grad_(True)

    def priors(self, factor: int) -> dict[str, Tensor]:
        """The three prior terms (unweighted) of the current kernel at ``factor``."""
        f = check_factor(factor)
        raw = self._raw.get(f)
        k = self.kernel(f, device=raw.device if raw is not None else None)
        t = self.offsets(f).to(device=k.device, dtype=k.dtype)
        mu_x, mu_y = (k.sum(0) * t).sum(), (k.sum(1) * t).sum()
        smooth = (k[1:] - k[:-1]).square().sum() + (k[:, 1:] - k[:, :-1]).square().sum()
        rho = torch.sqrt(t[:, None] ** 2 + t[None, :] ** 2) / f
        mask = (rho - self.params.free_radius).clamp_min(0).square()
        return {"centre": mu_x ** 2 + mu_y ** 2, "smoothness": smooth, "boundary": (k.abs() * mask).sum()}

    def prior_loss(self) -> Tensor | None:
        if not self._raw:
            return None
        p = self.params
        total = None
        for f in self._raw:
            terms = self.priors(f)
            value = (p.centre_weight * terms["centre"] + p.smoothness_weight * terms["smoothness"]
                     + p.boundary_weight * terms["boundary"])
            total = value if total is None else total + value
        return total

    @torch.no_grad()
    def describe(self, factor: int) -> dict:
        """Facts about the kernel at ``factor`` (and, for comparison, the initial one)."""
        f = check_factor(factor)
        k = self.kernel(f, device="cpu", dtype=torch.float64)
        t = self.offsets(f)

        def moments(kk: Tensor) -> tuple[list[float], list[float]]:
            px, py = kk.sum(0), kk.sum(1)
            mx, my = float((px * t).sum()), float((py * t).sum())
            vx, vy = float((px * (t - mx) ** 2).sum()), float((py * (t - my) ** 2).sum())
            return [mx, my], [math.sqrt(max(vx, 0.0)), math.sqrt(max(vy, 0.0))]

        mu, sigma = moments(k)
        k0 = self.initial_kernel(f)
        priors = {name: float(v) for name, v in self.priors(f).items()}
        return {
            "factor": f,
            "size": list(k.shape),
            "parameterisation": self.params.parameterisation,
            "init": self.params.init,
            "estimated": f in self._raw,
            "sum": float(k.sum()),
            "centre_of_mass_hr": [round(v, 5) for v in mu],
            "gaussian_sigma_hr": round(gaussian_width(k, t), 4),
            "initial_gaussian_sigma_hr": round(gaussian_width(k0, t), 4),
            "second_moment_sigma_hr": [round(v, 4) for v in sigma],
            "negative_mass": float(k.clamp_max(0).sum().neg()),
            "priors": priors,
            "offsets_hr": [float(v) for v in t],
            "values": [[round(float(v), 6) for v in row] for row in k],
        }

    def report(self) -> dict | None:
        if not self._raw:
            return None
        return {"kernels": [self.describe(f) for f in sorted(self._raw)]}

    def artifacts(self) -> dict[str, np.ndarray]:
        return {f"kernel_x{f}": self.kernel(f, device="cpu").detach().numpy().astype(np.float32)
                for f in sorted(self._raw)}

    # -- the contract --------------------------------------------------------------------------------------------

    def down(self, x: Tensor, factor: int) -> Tensor:
        """``[B,C,sH,sW] -> [B,C,H,W]``: the kernel as a stride-``s`` convolution, reflected borders (replicated
        where the image is smaller than the padding)."""
        f = check_factor(factor)
        check_image(x, f"{self.name}.down")
        check_divisible(x, f)
        if f == 1:
            return x
        k = self.kernel(f, device=x.device, dtype=x.dtype)
        n = k.shape[-1]
        pad = kernels.down_pad(n, f)
        b, c, h, w = x.shape
        y = x.reshape(b * c, 1, h, w)
        if pad:
            y = F.pad(y, (pad, pad, pad, pad), mode="reflect" if pad < min(h, w) else "replicate")
        y = F.conv2d(y, k.view(1, 1, n, n), stride=f)
        return y.reshape(b, c, h // f, w // f)

    def up(self, x: Tensor, factor: int) -> Tensor:
        """Keys bicubic (a = -0.5), as the ``bicubic`` resampler."""
        return self._up.up(x, factor)

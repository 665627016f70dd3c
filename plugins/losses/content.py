"""Content loss (DFP Eq. 22), generalised to N inputs."""
from __future__ import annotations

import torch
from torch import Tensor

from fusionkit.chunking import nbytes_per_slice, slice_chunks, weighted_sum
from fusionkit.interfaces import Loss, LossContext, UnsupportedInput

from ._common import cached_from_inputs_and_maps, check_stack
from ..params.losses import ContentLossParams


class ContentLoss(Loss):
    """Map-weighted L1 between the downsampled output and each input.

    ``L = 1/(H*W) * sum_pixels sum_i lambda_i * m_i * |x_down - I_i|``, with the mean also taken over colour
    channels. ``x_down`` is ``ctx.output_low`` (the output downsampled by the spec's downsampler), ``I_i`` the
    low-resolution inputs and ``m_i`` their decision maps (summing to 1 per pixel). Where ``m_i == 1`` only input
    ``i`` pulls on the pixel, so the loss is 0 when the output reproduces each focused region exactly.

    Deviations from the paper:

    - Eq. 22 is written for two inputs as ``lambda_1 m |x - I_fore| + lambda_2 (1 - m) |x - I_fore|``; the second
      ``I_fore`` is a typo for ``I_back`` (the surrounding text and the released code compare the background
      region with ``I_back``). This class uses one term per input, which for ``N = 2``, ``m_1 = m``,
      ``m_2 = 1 - m`` is the corrected Eq. 22.
    - Eq. 22 writes the full-resolution ``I_MFISRF``; it is compared after downsampling, as in Algorithm 1 and the
      released code (which computes it in RGB at low resolution).
    - Normalisation: the released code sums ``nn.L1Loss(m*x, m*I_i)`` means over all ``C*H*W`` elements, which is
      exactly this loss (masked-out pixels count in the denominator); for ``C = 1`` it is also the paper's
      ``1/(H*W)``.

    Cost in N: with one-hot maps (every hard focus measure, and the decision embedding's output) the loss is
    computed exactly as ``mean(lambda_k |x_down - sum_i m_i I_i|)``, one image per iteration whatever N; soft maps
    cost one ``[N,C,H,W]`` expression, split into slice chunks by :mod:`fusionkit.chunking` (forward and backward,
    nothing N-sized kept for autograd) when the stack exceeds the chunk budget.
    """

    name = "content"
    summary = "Map-weighted L1 between the downsampled output and each input (N-input DFP content loss)"
    reference = "Deep Fusion Prior (DFP), Eq. (22), with the I_fore/I_back typo corrected"

    Params = ContentLossParams

    def _weights(self, ctx: LossContext, n: int, like: Tensor) -> Tensor | None:
        lambdas = self.params.lambdas
        if lambdas is None:
            return None
        if len(lambdas) != n:
            raise UnsupportedInput(
                f"loss 'content' has {len(lambdas)} lambdas but the stack has {n} inputs",
                f"give exactly {n} lambdas (one per input, in input order), or omit `lambdas` to weight all by 1")
        key = ("content.lambdas", tuple(lambdas), like.device, like.dtype)
        w = ctx.cache.get(key)
        if w is None:  # one small host->device copy per run, not per iteration
            w = like.new_tensor(lambdas).view(n, 1, 1, 1)
            ctx.cache[key] = w
        return w

    def __call__(self, ctx: LossContext) -> Tensor:
        x = ctx.output_low
        check_stack(ctx, x, self.name)
        n = ctx.inputs.shape[0]
        w = self._weights(ctx, n, x)
        hard = cached_from_inputs_and_maps(ctx, ("content.hard",), _hard_target)
        if hard is not None:
            # one-hot maps: sum_i lambda_i m_i |x - I_i| = lambda_k |x - I_k| with k the pixel's slice, exactly
            # (the other terms are exact zeros), so one [1,C,H,W] difference replaces N of them per iteration
            target, _ = hard
            diff = (x - target).abs()
            if w is not None:
                diff = _weight_map(ctx, w, tuple(self.params.lambdas)) * diff
            return diff.mean()
        chunks = slice_chunks(n, nbytes_per_slice(ctx.inputs))
        maps = ctx.maps if w is None else ctx.maps * w          # [N,1,H,W]
        if len(chunks) == 1:
            per_input = maps * (x - ctx.inputs).abs()           # [N,C,H,W]
            return per_input.sum(dim=0).mean()                  # sum over inputs, mean over C, H, W
        return _ChunkedSoftL1.apply(x, ctx.inputs, maps, chunks)


def _hard_target(inputs: Tensor, maps: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(sum_i m_i I_i, maps)`` when the maps are one-hot (binary, one 1 per pixel), else None. Checked once per
    run (one host sync)."""
    binary = bool(((maps == 0) | (maps == 1)).all()) and bool((maps.sum(0) == 1).all())
    return (weighted_sum(maps, inputs), maps) if binary else None


def _weight_map(ctx: LossContext, w: Tensor, lambdas: tuple[float, ...]) -> Tensor:
    """``sum_i lambda_i m_i`` ``[1,1,H,W]`` (with one-hot maps: the lambda of the pixel's slice), cached per run
    (keyed by the lambdas as given, so no device->host read of ``w`` per iteration)."""
    return cached_from_inputs_and_maps(ctx, ("content.weight_map", lambdas),
                                       lambda inputs, maps: weighted_sum(maps, w.expand_as(maps)))


class _ChunkedSoftL1(torch.autograd.Function):
    """``sum_i m_i |x - I_i|`` averaged over C, H, W, for soft maps and a stack too big for one expression: the
    forward and the backward (``grad_x = sum_i m_i sign(x - I_i) / (C H W)``) both loop over slice chunks and
    keep no ``[N,C,H,W]`` intermediate for autograd."""

    @staticmethod
    def forward(ctx, x: Tensor, inputs: Tensor, maps: Tensor, chunks: list[slice]) -> Tensor:
        ctx.save_for_backward(x, inputs, maps)
        ctx.chunks = chunks
        total = None
        for c in chunks:
            part = (maps[c] * (x - inputs[c]).abs()).sum(dim=0)
            total = part if total is None else total + part
        return total.mean()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, inputs, maps = ctx.saved_tensors
        g = torch.zeros_like(x)
        for c in ctx.chunks:
            g += (maps[c] * torch.sign(x - inputs[c])).sum(dim=0, keepdim=True)
        return g * (grad / x[0].numel()), None, None, None

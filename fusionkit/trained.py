"""Roles of a trained network: the bases that make a :class:`~fusionkit.interfaces.TrainableModel` a component of
an existing kind, so pipelines, ``fusionkit eval`` and ``fusionkit ablate`` use it with no engine change.

- :class:`TrainedFuser` (kind ``fuser``): a complete method, ``method: fuser``; the model's maps compose the luma
  (its Eq. 1) and the chroma, as the rest of fusionkit fuses colour; the spec's upsampler then gives ×s;
- :class:`TrainedSuperResolvingFuser` (kind ``fuser``): a model that fuses *and* super-resolves (its ``fuse``
  returns the fused luma at ×s and the maps at the inputs' resolution); ``fuse(images, scale)`` gives the ×s result
  itself, the chroma composed by the maps at low resolution and upsampled bicubically;
- :class:`TrainedFocusMeasure` (kind ``focus_measure``): the model's maps as decision maps, e.g. for DFP instead
  of DoubleReblur's.

A role's ``Params`` are the model's architecture ``Params`` plus ``weights`` (see :mod:`fusionkit.weights`).
Validating a spec already checks that the weights exist and fit the architecture, so ``fusionkit validate`` and
``ablate --dry-run`` catch a wrong file before anything runs.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from . import weights as _weights
from .imaging import rgb_to_ycbcr, ycbcr_to_rgb
from .interfaces import FocusMeasure, Fuser, Params, TrainableModel, UnsupportedInput


class WeightsParams(Params):
    """Mixin for a role's Params: ``weights`` is checked (exists, same model, same architecture) on validation.

    A subclass sets ``model_cls`` and inherits the model's own ``Params`` too, e.g.
    ``class Params(UDPNet.Params, WeightsParams): model_cls = UDPNet``.
    """

    model_cls: ClassVar[type[TrainableModel] | None] = None
    weights: str = Field(..., description="trained weights: a weights.pt path (relative to the current folder) "
                                          "or PACKAGE:NAME (shipped package data)")

    @field_validator("weights")
    @classmethod
    def _exists(cls, v: str) -> str:
        ref = _weights.normalise_ref(v)
        try:
            _weights.resolve(ref)
        except _weights.WeightsError as exc:
            raise ValueError(f"{exc.message} (fix: {exc.hint})") from None
        return ref

    @model_validator(mode="after")
    def _fits(self) -> "WeightsParams":
        if self.model_cls is not None:
            try:
                _weights.check(_weights.read(self.weights), model=self.model_cls.name,
                               architecture=architecture_of(self, self.model_cls), where=f"the weights {self.weights}")
            except _weights.WeightsError as exc:
                raise ValueError(f"{exc.message} (fix: {exc.hint})") from None
        return self

    def architecture(self) -> dict:
        return architecture_of(self, self.model_cls)


def architecture_of(params: Params, model_cls: type[TrainableModel]) -> dict:
    """The model's architecture fields of a role's params, as JSON (what weights files record)."""
    fields = model_cls.Params.model_fields
    return {k: v for k, v in params.model_dump(mode="json").items() if k in fields}


def load_trained(model_cls: type[TrainableModel], params: WeightsParams) -> TrainableModel:
    """The model with its weights loaded, in eval mode, on the CPU (moved to the inputs' device on use)."""
    arch = architecture_of(params, model_cls)
    net = model_cls(params=model_cls.Params(**arch))
    _weights.load_into(net, params.weights, model=model_cls.name, architecture=arch)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class _Role:
    """What both roles share: the loaded network (the model class its ``Params.model_cls`` names), kept on the
    device of the last input."""

    def _network(self, device: torch.device) -> TrainableModel:
        net = getattr(self, "_net", None)
        if net is None:
            net = self._net = load_trained(self.params.model_cls, self.params)
        if next(net.parameters()).device != device:
            net.to(device)
        return net

    def run_model(self, net: TrainableModel, stack: Tensor) -> tuple[Tensor, Tensor]:
        """``(fused, maps)`` of a luma stack ``[1, K, 1, H, W]``; a role overrides it to pass its own options."""
        return net.fuse(stack)


class TrainedFuser(_Role, Fuser):
    """A trained model as a complete fuser: luma by the model's Eq. 1 composition, chroma by the same maps."""

    def __call__(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[0] < 2 or images.shape[1] not in (1, 3):
            raise UnsupportedInput(f"{self.name} needs a stack [N,C,H,W] with N >= 2 and C = 1 or 3; got "
                                   f"{tuple(images.shape)}", "give two or more gray or RGB images")
        x = images.float()
        net = self._network(x.device)
        with torch.no_grad():
            if x.shape[1] == 3:
                ycc = rgb_to_ycbcr(x)
                y, _maps = self.run_model(net, ycc[:, :1].unsqueeze(0))
                cbcr = (_maps[0] * ycc[:, 1:]).sum(0, keepdim=True)
                return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
            y, _maps = self.run_model(net, x.unsqueeze(0))
            return y.clamp(0, 1)


class TrainedSuperResolvingFuser(TrainedFuser):
    """A trained model that fuses and super-resolves in one pass (its ``Params`` have ``scale``; its
    ``fuse(stack[1,K,1,h,w])`` returns ``(fused[1,1,sh,sw], maps[1,K,1,h,w])``).

    ``fuse(images[N,C,H,W], scale) -> [1,C,sH,sW]`` in [0, 1]: the luma through the network; the chroma (Cb, Cr)
    composed by the low-resolution maps and upsampled bicubically (the usual practice of luma-only SR networks).
    ``scale`` must be the weights' scale (:class:`UnsupportedInput` naming the fix otherwise), except 1:
    ``fuse(images, 1)`` and ``__call__(images)`` are the ×1 fallback, the network's ×s result downsampled to the
    inputs' size (antialiased bicubic), so a ×1 pipeline still gets the learned fusion.
    """

    def _scale_mismatch(self, scale: int) -> UnsupportedInput:
        have = self.params.scale
        return UnsupportedInput(f"{self.name}: the weights {self.params.weights} super-resolve x{have}, the run asks "
                                f"for x{scale}", f"give {self.name} weights trained at x{scale} and set its "
                                f"params.scale: {scale} (fusionkit train with data.scale: {scale}), or run at "
                                f"scale {have}")

    def _check_images(self, images: Tensor) -> None:
        if images.dim() != 4 or images.shape[0] < 2 or images.shape[1] not in (1, 3):
            raise UnsupportedInput(f"{self.name} needs a stack [N,C,H,W] with N >= 2 and C = 1 or 3; got "
                                   f"{tuple(images.shape)}", "give two or more gray or RGB images")

    def fuse(self, images: Tensor, scale: int) -> Tensor:
        scale = int(scale)
        if scale == 1 and self.params.scale != 1:
            return self(images)
        if scale != self.params.scale:
            raise self._scale_mismatch(scale)
        return self._super_resolve(images)

    def __call__(self, images: Tensor) -> Tensor:
        out = self._super_resolve(images)
        if out.shape[-2:] == images.shape[-2:]:
            return out
        return F.interpolate(out, size=tuple(images.shape[-2:]), mode="bicubic", align_corners=False,
                             antialias=True).clamp(0, 1)

    def _super_resolve(self, images: Tensor) -> Tensor:
        self._check_images(images)
        x = images.float()
        net = self._network(x.device)
        s = self.params.scale
        with torch.no_grad():
            if x.shape[1] == 3:
                ycc = rgb_to_ycbcr(x)
                y, maps = self.run_model(net, ycc[:, :1].unsqueeze(0))
                cbcr = (maps[0] * ycc[:, 1:]).sum(0, keepdim=True)
                if s != 1:
                    cbcr = F.interpolate(cbcr, scale_factor=float(s), mode="bicubic", align_corners=False)
                return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 1)
            y, _maps = self.run_model(net, x.unsqueeze(0))
            return y.clamp(0, 1)


class TrainedFocusMeasure(_Role, FocusMeasure):
    """A trained model's per-input maps as decision maps (soft, summing to 1)."""

    def __call__(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 1 or images.shape[0] < 2:
            raise UnsupportedInput(f"{self.name} needs a luma stack [N,1,H,W] with N >= 2; got "
                                   f"{tuple(images.shape)}", "convert the inputs to luma first")
        net = self._network(images.device)
        with torch.no_grad():
            _, maps = self.run_model(net, images.float().unsqueeze(0))
        return maps[0].float()

"""FAP-SR's building blocks (§III-A, III-B): the focus-affinity perception network's per-input enhancement (AEM,
SAM, CAM; Eqs. 1-6) and its focus prediction module (FPM with FR blocks; Eqs. 7-9), and the super-resolution
network (SRB + GEB + D1; Eqs. 10-13). The equations are the specification; where the paper leaves a choice open,
the choice is named here and in docs/fapsr.md.

Shapes: features ``[B, C, h, w]`` at the low resolution (LR), ``[B, C, sh, sw]`` at the high one (HR).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    """A ``k×k`` convolution keeping the size (zero padding: any size works, even smaller than the kernel)."""
    return nn.Conv2d(cin, cout, k, padding=k // 2)


def sobel_magnitude(x: Tensor) -> Tensor:
    """``|∇x| = sqrt(gx² + gy²)`` of the 3×3 Sobel derivatives of ``[B, 1, H, W]``, replicated border: the
    gradient map ``∇I`` of Eq. 12 (the inputs carry no gradient, so the square root's kink at 0 is harmless)."""
    k = x.new_tensor(((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))).view(1, 1, 3, 3)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(p, k)
    gy = F.conv2d(p, k.transpose(2, 3))
    return torch.sqrt(gx * gx + gy * gy)


# ------------------------------------------------------------------------------------------------- FAPN

class PooledSelfAttention(nn.Module):
    """SAM (Eqs. 4-5) with pooled keys and values.

    The paper's ``W = (F^SAM)ᵀ F^SAM2`` is an ``(hw × hw)`` matrix: 4.3·10⁹ entries for one 256² input, infeasible.
    Here the queries are every position of ``F^SAM`` and the keys/values are ``F^SAM2`` and ``F^SAM``
    adaptive-average-pooled to at most ``pool × pool`` positions; the product is scaled by ``1/sqrt(C)`` and
    normalised by a softmax over the keys (the paper shows neither: an unnormalised product of two feature maps
    grows with hw and explodes). Eq. 4 then concatenates ``W F^SAM`` and ``W F^SAM2``; 3×3 conv + ReLU + 3×3 conv +
    sigmoid give ``W̄^SAM`` and Eq. 5 ``F̄^SAM = W̄^SAM ⊙ F̄^AEM + F̄^AEM``.
    """

    def __init__(self, channels: int, pool: int):
        super().__init__()
        self.q = conv(channels, channels)       # -> F^SAM
        self.k = conv(channels, channels)       # -> F^SAM2
        self.mix = nn.Sequential(conv(2 * channels, channels), nn.ReLU(inplace=True), conv(channels, channels))
        self.pool = pool
        self.scale = channels ** -0.5

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        f1, f2 = self.q(x), self.k(x)
        size = (min(h, self.pool), min(w, self.pool))
        p1, p2 = F.adaptive_avg_pool2d(f1, size).flatten(2), F.adaptive_avg_pool2d(f2, size).flatten(2)  # [B,C,P]
        attn = torch.softmax(torch.bmm(f1.flatten(2).transpose(1, 2), p2) * self.scale, dim=-1)   # [B, hw, P]
        values = torch.cat([p1, p2], dim=1).transpose(1, 2)                                      # [B, P, 2C]
        y = torch.bmm(attn, values).transpose(1, 2).reshape(b, 2 * c, h, w)                     # Eq. 4
        return torch.sigmoid(self.mix(y)) * x + x                                               # Eq. 5


class ChannelAttention(nn.Module):
    """CAM (Eq. 6): ``F^CAM = F̄^SAM ⊙ FC(AP(F̄^SAM)) ⊙ W^AEM + F̄^SAM``; the FC is one linear layer followed by a
    sigmoid (the paper's figure shows AP and FC; the sigmoid keeps the channel weights in (0, 1))."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor, w_aem: Tensor) -> Tensor:
        wc = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))[:, :, None, None]
        return x * wc * w_aem + x


class FocusEnhancement(nn.Module):
    """One input's enhanced features (Eqs. 1-6): ``(F^CAM_3, F^CAM_5)``, each ``[B, C, h, w]``.

    - AEM (Eqs. 1-3): ``F_3 = conv3(I)``, ``F_5 = conv5(I)``, the affinity
      ``W^AEM = sigmoid(conv3(ReLU(conv3(F_3 ⊙ F_5))))``, ``F̄_k = F_k + F_k ⊙ W^AEM``;
    - SAM (Eqs. 4-5) on each of ``F̄_3``, ``F̄_5`` (separate weights), :class:`PooledSelfAttention`;
    - CAM (Eq. 6) on each, :class:`ChannelAttention`, with ``W^AEM``.

    Weights are shared over the inputs (the paper applies the same modules to I_1 and I_2).
    """

    def __init__(self, channels: int, pool: int):
        super().__init__()
        self.f3 = conv(1, channels, 3)
        self.f5 = conv(1, channels, 5)
        self.affinity = nn.Sequential(conv(channels, channels), nn.ReLU(inplace=True), conv(channels, channels))
        self.sam3, self.sam5 = PooledSelfAttention(channels, pool), PooledSelfAttention(channels, pool)
        self.cam3, self.cam5 = ChannelAttention(channels), ChannelAttention(channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f3, f5 = self.f3(x), self.f5(x)                                     # Eq. 1
        w = torch.sigmoid(self.affinity(f3 * f5))                           # Eq. 2
        f3, f5 = f3 + f3 * w, f5 + f5 * w                                   # Eq. 3
        return self.cam3(self.sam3(f3), w), self.cam5(self.sam5(f5), w)     # Eqs. 4-6


class FeatureRefine(nn.Module):
    """FR block (§III-A2): 3×3 conv, ReLU, sigmoid, batch norm, in the paper's order; its output ``F^FR`` enters
    Eq. 9 as ``concat(F^FR + F_3^FPM, F_5^FPM)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv(2 * channels, channels)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(torch.sigmoid(F.relu(self.conv(x))))


class FocusPrediction(nn.Module):
    """FPM (Eqs. 7-9 and Fig. 3) for one ordered pair ``(a, b)``: ``F^EN = concat(F^CAM_{a,3}, F^CAM_{b,3},
    F^CAM_{a,5}, F^CAM_{b,5})`` (Eq. 7); ``F_3^FPM = ReLU(conv3(F^EN))``, ``F_5^FPM = ReLU(conv5(F^EN))`` (Eq. 8);
    ``fr_blocks`` FR blocks, each fed ``concat(F^FR + F_3^FPM, F_5^FPM)`` (Eq. 9; the first is fed
    ``concat(F_3^FPM, F_5^FPM)``); then ``head_convs`` 3×3 convolutions (ReLU between) and a sigmoid give the two
    decision maps ``[B, 2, h, w]`` (``M_a``, ``M_b``)."""

    def __init__(self, channels: int, fr_blocks: int, head_convs: int):
        super().__init__()
        self.c3 = conv(4 * channels, channels, 3)
        self.c5 = conv(4 * channels, channels, 5)
        self.fr = nn.ModuleList(FeatureRefine(channels) for _ in range(fr_blocks))
        layers: list[nn.Module] = []
        for i in range(head_convs - 1):
            layers += [conv(2 * channels if i == 0 else channels, channels), nn.ReLU(inplace=True)]
        layers.append(conv(2 * channels if head_convs == 1 else channels, 2))
        self.head = nn.Sequential(*layers)

    def forward(self, a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> Tensor:
        en = torch.cat([a[0], b[0], a[1], b[1]], dim=1)                     # Eq. 7
        f3, f5 = F.relu(self.c3(en)), F.relu(self.c5(en))                   # Eq. 8
        x = torch.cat([f3, f5], dim=1)
        for fr in self.fr:
            x = torch.cat([fr(x) + f3, f5], dim=1)                          # Eq. 9
        return torch.sigmoid(self.head(x))


# ------------------------------------------------------------------------------------------------- SRN

class DenseResidualBlock(nn.Module):
    """A residual dense block (RDB-style): ``layers`` 3×3 convs, each fed the concatenation of the block input and
    every earlier layer's ``growth`` channels (ReLU), a 1×1 fusion back to ``channels`` and a residual addition —
    the paper's "dense residual block" (it gives no sizes; ``layers`` and ``growth`` are fusionkit's)."""

    def __init__(self, channels: int, growth: int, layers: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(conv(channels + i * growth, growth) for i in range(layers))
        self.fuse = nn.Conv2d(channels + layers * growth, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for c in self.convs:
            feats.append(F.relu(c(torch.cat(feats, dim=1))))
        return x + self.fuse(torch.cat(feats, dim=1))


def upsampling_deconv(cin: int, cout: int, scale: int) -> nn.Module:
    """Eq. 11's ``deconv``: one transposed convolution ×``scale`` with overlapping ``(s + 2⌈s/2⌉)``-wide kernels
    (4×4 at ×2, 7×7 at ×3, 8×8 at ×4), so ``h -> s·h`` exactly; at ×1 a 3×3 convolution."""
    if scale == 1:
        return conv(cin, cout)
    p = math.ceil(scale / 2)
    return nn.ConvTranspose2d(cin, cout, scale + 2 * p, stride=scale, padding=p)


class SuperResolution(nn.Module):
    """SRN (Fig. 4, Eqs. 10-13) for one input ``I^LR`` ``[B, 1, h, w]``, weights shared over the inputs.

    - GEB: the gradient features ``∇F = conv3(ReLU(conv3(∇I^LR)))`` of the Sobel gradient map;
    - SRB: shallow ``F^l = conv3(I^LR)``; the gradient features are embedded by addition into the SRB's stem
      (``F^l + ∇F``), then ``dense_blocks`` dense residual blocks give ``F^h``;
    - Eq. 10: ``W = sigmoid(conv3(concat(F^l, F^h)))`` with 2C channels (one per channel of Eq. 11's concat);
    - Eq. 11: ``F^SRN = deconv(W ⊙ concat(F^h, ∇F) + concat(F^l, F^l))`` (F^l added to both halves: the printed
      sum adds C channels to 2C), a ReLU after the transposed convolution;
    - Eq. 12: ``F̄^SRN = concat(F^SRN, Resize(∇I^LR))`` (bicubic), C + 1 channels at HR;
    - Eq. 13: ``I^HR = D1(F̄^SRN)``, D1 = conv3 + ReLU + conv3 predicting a residual over the bicubic ×s input
      (a global skip, standard SR practice, that the paper does not show).

    ``features`` returns ``(F̄^SRN, ∇I^LR)`` (the fusion needs only ``F̄^SRN``); ``reconstruct`` is D1.
    """

    def __init__(self, channels: int, growth: int, dense_blocks: int, scale: int):
        super().__init__()
        self.scale = scale
        self.shallow = conv(1, channels)
        self.geb = nn.Sequential(conv(1, channels), nn.ReLU(inplace=True), conv(channels, channels))
        self.dense = nn.Sequential(*[DenseResidualBlock(channels, growth) for _ in range(dense_blocks)])
        self.attention = conv(2 * channels, 2 * channels)
        self.up = upsampling_deconv(2 * channels, channels, scale)
        self.d1 = nn.Sequential(conv(channels + 1, channels), nn.ReLU(inplace=True), conv(channels, 1))

    def features(self, x: Tensor) -> Tensor:
        g = sobel_magnitude(x)
        fl = self.shallow(x)
        gf = self.geb(g)
        fh = self.dense(fl + gf)
        w = torch.sigmoid(self.attention(torch.cat([fl, fh], dim=1)))                     # Eq. 10
        z = w * torch.cat([fh, gf], dim=1) + torch.cat([fl, fl], dim=1)
        f = F.relu(self.up(z))                                                              # Eq. 11
        return torch.cat([f, resize(g, self.scale, "bicubic")], dim=1)                      # Eq. 12

    def reconstruct(self, fbar: Tensor, x: Tensor) -> Tensor:
        return resize(x, self.scale, "bicubic") + self.d1(fbar)                             # Eq. 13


class FusionDecoder(nn.Module):
    """D2 (Eq. 16): ``I_fus^HR = D2(F_fus)``, conv3 + ReLU + conv3 on the C + 1 fused feature channels, predicting a
    residual over ``Σ_i Resize(M_i^pred) ⊙ Bicubic(I_i^LR)`` (the two-step composite; a skip the paper does not
    show)."""

    def __init__(self, channels: int):
        super().__init__()
        self.d2 = nn.Sequential(conv(channels + 1, channels), nn.ReLU(inplace=True), conv(channels, 1))

    def forward(self, f_fus: Tensor, skip: Tensor) -> Tensor:
        return skip + self.d2(f_fus)


def resize(x: Tensor, scale: int, mode: str) -> Tensor:
    """``x`` ×``scale`` (``bicubic`` or ``bilinear``, align_corners=False); the identity at ×1."""
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=float(scale), mode=mode, align_corners=False)

"""Tests a plugin author would keep next to the plugin: the equation on small inputs and a strict registration.

Run from the plugin's folder after `pip install -e .`:  python -m pytest tests
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import fusionkit_sharpness
from fusionkit.interfaces import UnsupportedInput
from fusionkit.registry import build_catalog
from fusionkit.testing import check_plugin
from fusionkit_sharpness import LocalVariance


def test_fusionkit_contract():
    """fusionkit's own contract checks (shipped in the installed package as fusionkit.testing)."""
    check_plugin(fusionkit_sharpness, "fusionkit-sharpness")


def test_registers_cleanly_in_strict_mode():
    catalog = build_catalog(load_entry_points=False, strict=True,
                            extra_plugins=[(fusionkit_sharpness, "fusionkit-sharpness")])
    assert catalog.get("focus_measure", "local_variance").cls is LocalVariance


def test_variance_matches_hand_computation():
    # 3x3 window at the centre of a 3x3 image: the plain variance of its nine values
    y = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.0]])
    e = LocalVariance(window=3).energy(torch.stack([y, torch.zeros(3, 3)])[:, None])
    assert e[0, 0, 1, 1].item() == pytest.approx(torch.var(y, unbiased=False).item(), rel=1e-5)
    assert e[1].abs().max().item() == 0.0


@pytest.mark.parametrize("n", [2, 3, 5])
def test_picks_the_sharp_input(n):
    g = torch.Generator().manual_seed(n)
    sharp = torch.rand(1, 1, 32, 32, generator=g)
    blurred = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    for k in range(n):
        stack = torch.cat([sharp if i == k else blurred for i in range(n)])
        maps = LocalVariance()(stack)
        assert maps.shape == (n, 1, 32, 32) and maps.dtype == torch.float32
        assert torch.equal(maps.sum(0), torch.ones(1, 32, 32))
        assert maps[k].mean().item() > 0.99


def test_ties_go_to_the_lowest_index():
    maps = LocalVariance()(torch.full((3, 1, 8, 8), 0.5))
    assert torch.equal(maps[0], torch.ones(1, 8, 8)) and maps[1:].sum().item() == 0.0


def test_params_are_validated():
    with pytest.raises(ValidationError, match="window must be odd"):
        LocalVariance(window=8)
    with pytest.raises(ValidationError):
        LocalVariance(windw=9)
    with pytest.raises(UnsupportedInput, match="at least 2 inputs"):
        LocalVariance()(torch.rand(1, 1, 8, 8))

"""``view_grid`` and the shift-and-sum math: a synthetic fronto-parallel plane refocused at its own disparity is
reproduced sharply, off it blurred; sub-pixel disparities; borders; the component's downsampling and aperture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fusionkit.errors import InputError
from fusionkit_plugins.light_fields import ViewGrid, refocus, spread
from test_light_field import plane_views, psnr, refocused, texture, write_views

torch.set_num_threads(1)


@pytest.mark.parametrize("d", [1.0, 0.5, -1.5])
def test_refocus_at_the_true_disparity_is_sharp_and_off_it_blurs(d):
    views, centre = plane_views(d)
    at, near_off, far_off = refocused(views, [d, d + 0.5, d + 1.5])
    assert psnr(at, centre) > 38, "the plane's own disparity must line every view up"
    assert psnr(near_off, centre) < psnr(at, centre) - 10
    assert psnr(far_off, centre) < psnr(near_off, centre)


def test_refocus_of_identical_views_is_the_view_and_borders_are_not_darkened():
    img = texture(32, seed=3)
    views = np.broadcast_to(img, (3, 3, 32, 32)).copy()
    out = refocused(views, [0.0, 2.0])
    np.testing.assert_allclose(out[0], img, atol=1e-6)
    # at d = 2 the outer views sample outside the image at the borders; the normalised average must keep a
    # constant image constant there (a zero-padded shift would darken the edge rows)
    const = np.full((3, 3, 16, 16), 0.6, np.float32)
    np.testing.assert_allclose(refocused(const, [2.0, -1.25])[:, :, :], 0.6, atol=1e-5)
    t = torch.from_numpy(const)[:, :, None]
    np.testing.assert_allclose(refocus(t, [2.0], border="replicate").numpy(), 0.6, atol=1e-5)


def test_spread_includes_both_ends():
    assert spread(-3.0, 2.6, 8) == [-3.0, -2.2, -1.4, -0.6, 0.2, 1.0, 1.8, 2.6]


def test_view_grid_source_refocuses_downsampled_views(tmp_path):
    views, centre = plane_views(1.0, grid=5, size=48)
    write_views(tmp_path / "lf", views, lambda r, c: f"input_Cam{r * 5 + c:03d}.png")
    src = ViewGrid(grid=[5, 5], disparities=[1.0, -1.0], downsample=2)
    focal = src(tmp_path / "lf")
    assert focal.images.shape == (2, 1, 24, 24) and focal.disparities == [1.0, -1.0]
    assert focal.info["centre_view"] == "input_Cam012.png" and focal.info["grid"] == [5, 5]
    assert focal.info["refocused_size"] == [24, 24] and focal.info["downsample"] == 2
    low = centre.reshape(24, 2, 24, 2).mean(axis=(1, 3))   # disparities are in original-resolution pixels
    sharp, blurred = focal.images[:, 0].numpy()
    assert psnr(sharp, low, crop=4) > psnr(blurred, low, crop=4) + 8
    ap = ViewGrid(grid=[5, 5], disparity_range=[-1, 1], slices=3, aperture=3)(tmp_path / "lf")
    assert ap.disparities == [-1.0, 0.0, 1.0] and ap.info["views_used"] == [3, 3]
    with pytest.raises(InputError, match="aperture 2 does not fit"):
        ViewGrid(grid=[5, 5], aperture=2)(tmp_path / "lf")


def test_view_grid_params():
    p = ViewGrid.Params(disparities=[0.5, -0.5])
    assert p.disparity_range is None and ViewGrid(p).planned_disparities() == [0.5, -0.5]
    assert ViewGrid.Params.model_validate(p.model_dump()) == p   # the resolved spec loads again
    assert ViewGrid().planned_disparities() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    for bad, match in [({"disparities": [0, 1], "disparity_range": [0, 1]}, "either"),
                       ({"disparity_range": [1, 0]}, "lo < hi"), ({"disparity_range": None}, "give"),
                       ({"disparities": [1, 1]}, "distinct")]:
        with pytest.raises(ValueError, match=match):
            ViewGrid.Params(**bad)

"""Reading and writing images: bit depths, colour layouts, bad input, atomic writes, run folders."""
from __future__ import annotations

import numpy as np
import pytest

from fusionkit.errors import InputError
from fusionkit.io import new_run_dir, read_image, read_stack, stack_from_arrays, write_image, write_text


def test_roundtrip_8_and_16_bit(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.random((12, 10, 3)).astype(np.float32)
    for depth, tol in ((8, 0.5 / 255 + 1e-6), (16, 0.5 / 65535 + 1e-6)):
        p = tmp_path / f"x{depth}.png"
        write_image(p, img, depth)
        back, d = read_image(p)
        assert d == depth and back.shape == img.shape
        assert np.abs(back - img).max() <= tol


def test_gray_and_tiff(tmp_path):
    g = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    write_image(tmp_path / "g.tif", g[:, :, None], 16)
    back, d = read_image(tmp_path / "g.tif")
    assert back.shape == (6, 8, 1) and d == 16
    assert np.allclose(back[:, :, 0], g, atol=1e-4)


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(InputError, match="corrupt") as e:
        read_image(bad)
    assert "Fix:" in e.value.render()


def test_stack_checks(tmp_path):
    a = np.zeros((8, 8, 3), np.float32)
    b = np.zeros((8, 9, 3), np.float32)
    with pytest.raises(InputError, match="differ in size"):
        stack_from_arrays([a, b])
    with pytest.raises(InputError, match="at least 2"):
        read_stack([tmp_path / "a.png"])
    s = stack_from_arrays([a, np.zeros((8, 8), np.uint8)])  # gray is promoted to colour
    assert s.images.shape == (2, 8, 8, 3) and s.bit_depth == 8


def test_atomic_write_leaves_no_partial_files(tmp_path):
    write_text(tmp_path / "a.txt", "one")
    write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_run_dir_never_overwrites(tmp_path):
    first = new_run_dir(tmp_path / "run")
    (first / "fused.png").write_bytes(b"x")
    second = new_run_dir(tmp_path / "run")
    assert second.name == "run-2" and (first / "fused.png").exists()

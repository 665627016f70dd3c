"""Synthetic multi-focus stacks: deterministic, the right sizes, and each input sharp on its own layer."""
from __future__ import annotations

import numpy as np

from fusionkit.synthetic import make_stack, sample_image


def test_stack_shapes_and_determinism():
    truth = sample_image("astronaut", 64)
    s1 = make_stack(truth, n=3, scale=2, seed=4)
    s2 = make_stack(truth, n=3, scale=2, seed=4)
    assert len(s1.inputs) == 3 and s1.inputs[0].shape == (32, 32, 3) and s1.truth.shape == (64, 64, 3)
    for a, b in zip(s1.inputs, s2.inputs):
        assert np.array_equal(a, b)
    assert set(np.unique(s1.layers)) == {0, 1, 2}


def test_each_input_is_sharp_on_its_layer():
    truth = sample_image("camera", 64)
    s = make_stack(truth, n=2, scale=1, seed=0)
    for i in range(2):
        on, off = s.layers == i, s.layers != i
        err = np.abs(s.inputs[i] - s.truth)[..., 0]
        assert err[on].max() < 1e-6 and err[off].mean() > 0.01

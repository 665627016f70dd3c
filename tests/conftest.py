"""Shared fixtures: a small synthetic multi-focus pair with ground truth, and quick spec overrides."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fusionkit.io import write_image
from fusionkit.synthetic import make_stack, sample_image

# The catalog cache (fusionkit.registry.snapshot) of this test session: never the user's own.
_CACHE = tempfile.mkdtemp(prefix="fusionkit-test-cache-")
os.environ["FUSIONKIT_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: a DFP run small enough for CPU unit tests (seconds)
QUICK = ["iterations=60", "decision_embedding.iterations=20", "device=cpu",
         "generator.params.channels=[8,16,32]", "decision_embedding.generator.params.channels=[8,16,32]",
         "decision_embedding.generator.params.skip=[0,4,4]"]


@pytest.fixture(scope="session")
def pair():
    """A 2-input synthetic stack: LR inputs 32x32 RGB, ground truth 64x64."""
    return make_stack(sample_image("astronaut", 64), n=2, scale=2, blur_sigma=2.5, seed=1)


@pytest.fixture
def pair_files(tmp_path, pair):
    paths = []
    for name, img in (("A", pair.inputs[0]), ("B", pair.inputs[1])):
        write_image(tmp_path / f"{name}.png", img, 8)
        paths.append(tmp_path / f"{name}.png")
    return paths


def shared_data(name: str) -> Path:
    d = SHARED_DATA / name
    if not d.is_dir():
        pytest.skip(f"real data not available: {d} (clone with ../shared beside the checkout)")
    return d


def texture(seed: int, size: int = 32, smooth: int = 2) -> np.ndarray:
    """A smooth random grey texture in [0, 1] (no flat windows), for metric tests."""
    rng = np.random.default_rng(seed)
    x = rng.random((size + 2 * smooth, size + 2 * smooth))
    k = 2 * smooth + 1
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), 0), 1)
    box = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)
    return (box - box.min()) / (box.max() - box.min())


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny tensors gain nothing from intra-op threads, and on a loaded machine
    OpenMP's waiting threads make each call take far longer); a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""N-image fusion (issue 5): every built-in component at N = 3 and 5, N = 2 DoubleReblur unchanged, the chunked
(big-stack) paths equal to the one-expression ones, and whole runs at N = 3 and 5 beating every input."""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

import fusionkit
from fusionkit import chunking, engine
from fusionkit.errors import RunError
from fusionkit.imaging import to_luma
from fusionkit.interfaces import LossContext
from fusionkit.registry import build_catalog
from fusionkit.synthetic import make_stack, sample_image
from fusionkit.validation import load_spec
from fusionkit_plugins.focus_measures import DoubleReblur, MaxGradient
from fusionkit_plugins.focus_measures import double_reblur as dr
from fusionkit_plugins.losses import ContentLoss, DecisionLoss, GradientLimitLoss, JointGradientLoss

from conftest import QUICK


def luma_stack(st) -> torch.Tensor:
    return to_luma(torch.from_numpy(np.stack(st.inputs)).permute(0, 3, 1, 2).contiguous())


@pytest.fixture(scope="module")
def stacks():
    """Synthetic depth-layered stacks at 96x96 (x1): N -> (luma [N,1,H,W], true layer per pixel)."""
    out = {}
    for n in (3, 5):
        st = make_stack(sample_image("astronaut", 96), n=n, scale=1, blur_sigma=2.5, seed=0)
        out[n] = (luma_stack(st), st.layers)
    return out


def label_accuracy(maps: torch.Tensor, layers: np.ndarray) -> float:
    return float((maps[:, 0].argmax(0).numpy() == layers).mean())


# -- N = 2 DoubleReblur: unchanged ------------------------------------------------------------------------------------

VARIANTS = [{}, {"variant": "code"}, {"decision": "absolute"}, {"variant": "code", "decision": "absolute"},
            {"largest_region": False, "contrast_window": 3}]


def pair_cases():
    for name, seed in (("astronaut", 1), ("camera", 3), ("coffee", 2)):
        yield luma_stack(make_stack(sample_image(name, 64), n=2, scale=2, blur_sigma=2.5, seed=seed))
    yield torch.from_numpy(np.random.default_rng(7).random((2, 1, 24, 40)).astype(np.float32))


def reference_pair_maps(x: torch.Tensor, p) -> np.ndarray:
    """The pairwise pipeline as it was before N-image support (verbatim logic, on the module's step functions)."""
    a = x.double().numpy()[:, 0]
    paper = p.variant == "paper"
    if paper:
        psf = dr.estimate_psf(a[1], a[0], p.psf_radius, p.eps, p.spectral_lowpass, normalise=True)
        s = [dr.sharpness_paper(dr.reblur(xi, psf), p.gaussian_kernel, p.gaussian_sigma) for xi in a]
    else:
        psf = dr.estimate_psf(a[0], a[1], p.psf_radius, p.eps, p.spectral_lowpass, normalise=False)
        s = [dr.sharpness_code(xi, dr.reblur(xi, psf, convolve=False), p.gaussian_kernel, p.gaussian_sigma)
             for xi in a]
    if p.decision == "contrast":
        owner, score = 0, dr.local_contrast(s[0], s[1], p.contrast_window)
    else:
        owner = 1 if paper else 0
        score = s[owner]
    closed = dr.close(dr.threshold(score, p.threshold), p.dilate, p.erode)
    m = (dr.largest_region_fill(closed) if p.largest_region else closed).astype(np.float32)
    return np.stack([m, 1 - m]) if owner == 0 else np.stack([1 - m, m])


def test_pair_maps_equal_the_pre_n_reference_implementation():
    for x in pair_cases():
        for v in VARIANTS:
            m = DoubleReblur(**v)
            np.testing.assert_array_equal(m(x)[:, 0].numpy(), reference_pair_maps(x, m.params))


def test_pair_maps_checksum_recorded_before_the_change():
    # sha256 of the packed binary maps[0..1] for every case x variant, computed with the N = 2-only code
    h = hashlib.sha256()
    for x in pair_cases():
        for v in VARIANTS:
            h.update(np.packbits(DoubleReblur(**v)(x).numpy() > 0.5).tobytes())
    assert h.hexdigest() == "81249808a9a063b7dc86cddd870e8b7319a57cb8b7847075d81e28fc176a9007"


# -- focus measures at N = 3, 5 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 5])
def test_every_registered_focus_measure_partitions_n_slices(n, stacks):
    x = stacks[n][0][:, :, :48, :48]
    catalog = build_catalog()
    names = catalog.names("focus_measure")
    assert {"double_reblur", "max_gradient", "uniform"} <= set(names)
    for name in names:
        maps = catalog.get("focus_measure", name).cls()(x)
        assert maps.shape == x.shape, name
        assert (maps >= 0).all(), name
        torch.testing.assert_close(maps.sum(0), torch.ones_like(maps[0]), rtol=0, atol=1e-6, msg=name)
    split = MaxGradient(ties="split")(torch.rand(1, 1, 8, 8).repeat(n, 1, 1, 1))
    torch.testing.assert_close(split, torch.full_like(split, 1 / n))


@pytest.mark.parametrize("n, variant, floor", [(3, "paper", 0.85), (3, "code", 0.9), (5, "paper", 0.78),
                                               (5, "code", 0.82)])
def test_double_reblur_labels_a_stack(n, variant, floor, stacks):
    x, layers = stacks[n]
    maps = DoubleReblur(variant=variant)(x)
    assert torch.equal(maps.sum(0), torch.ones_like(maps[0]))
    assert bool(((maps == 0) | (maps == 1)).all())
    acc = label_accuracy(maps, layers)
    # measured (astronaut 96^2, seed 0), fraction of pixels given their true layer: paper 0.895 / 0.822 (N=3 / 5),
    # code 0.943 / 0.856; max_gradient 0.642 / 0.602 pixelwise, 0.846 / 0.784 with window 7
    assert acc >= floor
    assert acc > label_accuracy(MaxGradient(window=7)(x), layers)
    for k in range(n):                                       # every slice wins its own layer
        assert (maps[:, 0].argmax(0).numpy() == k)[layers == k].mean() > 0.5


def test_double_reblur_stack_is_equivariant_to_reordering_middle_slices(stacks):
    x = stacks[5][0]
    order = [0, 3, 1, 2, 4]                                  # the extremes fix the kernel; the rest is symmetric
    m = DoubleReblur()
    assert torch.equal(m(x[order]), m(x)[order])


def test_double_reblur_stack_stages(stacks):
    x = stacks[3][0]
    st = DoubleReblur().stages(x)
    assert st["owner"] == -1 and st["label"].shape == (96, 96) and st["psf"].shape == (9, 9)
    for key in ("reblurred", "sharpness", "score", "decision", "closed", "region"):
        assert st[key].shape == (3, 96, 96), key
    d = st["decision"]
    assert d.sum(0).max() <= 1                               # Eq. (17): only the winner can claim a pixel
    claimed = st["region"].any(0)
    label = st["label"]
    assert (st["region"][label, np.arange(96)[:, None], np.arange(96)] | ~claimed).all()   # claims are honoured
    np.testing.assert_array_equal(DoubleReblur()(x)[:, 0].argmax(0).numpy(), label)
    absolute = DoubleReblur(decision="absolute")(x)
    assert torch.equal(absolute.sum(0), torch.ones_like(absolute[0]))


# -- losses over N maps ------------------------------------------------------------------------------------------------

def one_hot(labels: torch.Tensor, n: int) -> torch.Tensor:
    return (torch.arange(n).view(n, 1, 1, 1) == labels).float()


def content_reference(x, inputs, maps, lambdas=None):
    m = maps if lambdas is None else maps * torch.tensor(lambdas).view(-1, 1, 1, 1)
    return (m * (x - inputs).abs()).sum(0).mean()


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("lambdas", [False, True])
def test_content_with_one_hot_maps_is_bit_exact(n, lambdas):
    g = torch.Generator().manual_seed(n)
    inputs = torch.rand(n, 2, 12, 10, generator=g)
    maps = one_hot(torch.randint(0, n, (1, 1, 12, 10), generator=g), n)
    lam = [0.5 + k for k in range(n)] if lambdas else None
    x1 = torch.rand(1, 2, 12, 10, generator=g, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    ctx = LossContext(output=x1, output_low=x1, inputs=inputs, maps=maps, scale=1)
    got = ContentLoss(lambdas=lam)(ctx)
    want = content_reference(x2, inputs, maps, lam)
    got.backward()
    want.backward()
    assert torch.equal(got, want) and torch.equal(x1.grad, x2.grad)
    assert ("content.hard",) in ctx.cache


@pytest.mark.parametrize("n", [3, 5])
def test_content_soft_maps_chunked_equals_one_expression(n, monkeypatch):
    g = torch.Generator().manual_seed(10 + n)
    inputs = torch.rand(n, 1, 16, 16, generator=g)
    maps = torch.rand(n, 1, 16, 16, generator=g)
    maps = maps / maps.sum(0, keepdim=True)
    x1 = torch.rand(1, 1, 16, 16, generator=g, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    want = content_reference(x2, inputs, maps)
    want.backward()
    monkeypatch.setenv("FUSIONKIT_CHUNK_MIB", str(2 * 16 * 16 * 4 / 2**20))    # two slices per chunk
    assert len(chunking.slice_chunks(n, 16 * 16 * 4)) == -(-n // 2)
    ctx = LossContext(output=x1, output_low=x1, inputs=inputs, maps=maps, scale=1)
    got = ContentLoss()(ctx)
    got.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("n", [3, 5])
def test_joint_gradient_decision_and_gradient_limit_take_n_maps(n, monkeypatch):
    g = torch.Generator().manual_seed(n)
    inputs = torch.rand(n, 3, 12, 12, generator=g)
    maps = one_hot(torch.randint(0, n, (1, 1, 12, 12), generator=g), n)
    x = torch.rand(1, 3, 12, 12, generator=g, requires_grad=True)
    ctx = LossContext(output=x, output_low=x, inputs=inputs, maps=maps, scale=1)
    jg = JointGradientLoss()
    whole = jg.target(ctx)
    monkeypatch.setenv("FUSIONKIT_CHUNK_MIB", str(12 * 12 * 3 * 4 / 2**20))     # one slice per chunk
    chunked = jg.target(LossContext(output=x, output_low=x, inputs=inputs, maps=maps, scale=1))
    assert torch.equal(whole, chunked) and whole.shape == (1, 1, 12, 12)
    for y in inputs:                                          # it is the maximum over all N slices
        assert (whole >= jg._lap(to_luma(y[None]))).all()
    for loss in (jg(ctx), GradientLimitLoss()(ctx), ContentLoss()(ctx)):
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
    m_hat = torch.full((n, 1, 12, 12), 1.0 / n, requires_grad=True)
    dctx = LossContext(output=m_hat, output_low=m_hat, inputs=inputs[:, :1], maps=maps, scale=1)
    value = DecisionLoss()(dctx)
    value.backward()
    exact = DecisionLoss()(LossContext(output=maps, output_low=maps, inputs=inputs[:, :1], maps=maps, scale=1))
    assert float(exact) < float(value.detach())


# -- engine: chunked stages, memory check, decision embedding, whole runs -----------------------------------------------

def test_engine_chunked_sums_match(monkeypatch):
    catalog = build_catalog()
    spec = load_spec({"name": "t"}, ["device=cpu"], catalog=catalog, require_inputs=False).spec
    up = catalog.get("resampler", "bicubic").cls()
    work = torch.rand(5, 1, 16, 16)
    maps = torch.rand(5, 1, 16, 16)
    whole_z = engine.generator_input(spec, work, up)
    whole_c = chunking.weighted_sum(maps, work)
    monkeypatch.setenv("FUSIONKIT_CHUNK_MIB", str(2 * 32 * 32 * 4 / 2**20))
    assert len(chunking.slice_chunks(5, chunking.nbytes_per_slice(work, 2))) == 3
    torch.testing.assert_close(engine.generator_input(spec, work, up), whole_z)
    torch.testing.assert_close(chunking.weighted_sum(maps, work), whole_c)
    monkeypatch.setenv("FUSIONKIT_CHUNK_MIB", "lots")
    with pytest.raises(RunError, match="FUSIONKIT_CHUNK_MIB"):
        chunking.slice_chunks(5, 10)


def test_a_stack_too_big_for_memory_fails_early_with_a_fix(monkeypatch, tmp_path):
    st = make_stack(sample_image("astronaut", 32), n=3, scale=1, seed=0)
    from fusionkit.planning import USABLE_SHARE, Planner, StackShape
    from fusionkit.validation import load_spec

    spec = load_spec({"name": "t", "scale": 1, "method": "composite", "decision_embedding": {"enabled": False}},
                     require_inputs=False).spec
    two = Planner(spec, None, torch.device("cpu")).whole(StackShape(2, 32, 32, 3))[0]
    monkeypatch.setattr(engine, "available_memory", lambda device: int(two / USABLE_SHARE) + 1)
    with pytest.raises(RunError) as e:
        fusionkit.run({"name": "t", "scale": 1, "method": "composite", "decision_embedding": {"enabled": False}},
                      ["device=cpu"], inputs=st.inputs, write=False)
    text = e.value.render()
    assert "3 slices" in text and "at most about 2 slices" in text and "one slice in every 2" in text


def psnr(truth, img):
    return peak_signal_noise_ratio(truth, img.reshape(truth.shape), data_range=1.0)


def best_input_psnr(st) -> float:
    size = st.truth.shape[1], st.truth.shape[0]
    return max(psnr(st.truth, np.clip(cv2.resize(i, size, interpolation=cv2.INTER_CUBIC), 0, 1)) for i in st.inputs)


@pytest.mark.parametrize("n, scale", [(3, 2), (5, 1)])
def test_n_stacks_fuse_closer_to_the_truth_than_any_input(n, scale):
    st = make_stack(sample_image("astronaut", 64), n=n, scale=scale, blur_sigma=2.5, seed=1)
    best = best_input_psnr(st)
    dfp = fusionkit.run({"name": "t", "scale": scale}, [*QUICK, "iterations=150"], inputs=st.inputs, write=False)
    assert dfp.outcome.maps.shape == (n, 64 // scale, 64 // scale)
    assert np.array_equal(dfp.outcome.maps.sum(0), np.ones((64 // scale, 64 // scale), np.float32))
    assert set(np.unique(dfp.outcome.maps)) <= {0.0, 1.0}    # the embedding's one-hot result for N > 2
    comp = fusionkit.run({"name": "t", "scale": scale, "method": "composite",
                          "decision_embedding": {"enabled": False}}, ["device=cpu"], inputs=st.inputs, write=False)
    # measured (N=3 x2 / N=5 x1): best input 17.9 / 16.0 dB, DFP 19.6 / 19.5, composite 20.1 / 23.0
    assert psnr(st.truth, dfp.fused) > best + 0.5
    assert psnr(st.truth, comp.fused) > best + 0.5


def test_chroma_is_composed_from_n_maps():
    st = make_stack(sample_image("coffee", 32), n=3, scale=1, seed=4)
    r = fusionkit.run({"name": "t", "scale": 1, "method": "composite", "decision_embedding": {"enabled": False}},
                      ["device=cpu"], inputs=st.inputs, write=False)
    maps = r.outcome.maps[..., None]                           # one-hot: every pixel is one slice's RGB
    expected = (maps * np.stack(st.inputs)).sum(0)
    np.testing.assert_allclose(r.fused, np.clip(expected, 0, 1), atol=2e-5)


@pytest.mark.parametrize("n, enabled, applied", [(2, "auto", True), (3, "auto", False), (3, True, True),
                                                 (3, False, False)])
def test_decision_embedding_auto_runs_for_pairs_only(n, enabled, applied):
    """`auto` (the default) embeds a pair as the paper does and leaves N > 2 stacks to the focus measure's maps."""
    st = make_stack(sample_image("astronaut", 48), n=n, scale=1, seed=0)
    r = fusionkit.run({"name": "t", "scale": 1, "iterations": 2, "decision_embedding": {"enabled": enabled}},
                      QUICK + ["iterations=2", "decision_embedding.iterations=2"], inputs=list(st.inputs),
                      write=False)
    assert r.manifest["decision_embedding_applied"] is applied
    assert bool(r.outcome.embedding_history) is applied

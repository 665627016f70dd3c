"""The component contracts (fusionkit.interfaces), checked on every component the registry knows.

The tests are parametrised over ``default_catalog()`` at collection time, not over a hand-written list: a new
built-in, or any installed third-party plugin, gets all of them without editing this file. Inputs are tiny (24x24)
so the whole file runs in a few seconds on a CPU. The last section guards the built-ins: each has a test file that
names it and an entry in docs/components.md, which must match ``scripts/gen_component_docs.py``'s output.
"""
from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest
import torch

from fusionkit import testing
from fusionkit.registry import default_catalog

ROOT = Path(__file__).resolve().parents[1]
CATALOG = default_catalog()
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a loaded machine OpenMP's waiting threads make each
    generator call take seconds instead of milliseconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def each(kind: str | None = None) -> list:
    return [pytest.param(info, id=f"{info.kind}:{info.name}") for info in CATALOG.all(kind)]


# -------------------------------------------------------------------------------------------------- every kind
#
# The checks themselves live in fusionkit.testing (shipped in the package, so that a plugin's own test suite can
# run them without this checkout); here they are parametrised over everything installed.


@pytest.mark.parametrize("info", each())
def test_identity_and_documentation(info):
    assert info.cls.name == info.name and info.cls.kind == info.kind
    testing.check_identity(info.cls)


@pytest.mark.parametrize("info", each())
def test_params_defaults_and_unknown_keys(info):
    testing.check_params(info.cls)


def skip_if(reason: str | None) -> None:
    if reason:
        pytest.skip(reason)


# -------------------------------------------------------------------------------------------- focus measures


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("info", each("focus_measure"))
def test_focus_measure_two_inputs(info, device):
    assert testing.check_focus_measure(info.cls, 2, device) is None


@pytest.mark.parametrize("info", each("focus_measure"))
def test_focus_measure_three_inputs(info):
    skip_if(testing.check_focus_measure(info.cls, 3))


# ------------------------------------------------------------------------------------------------ resamplers


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
@pytest.mark.parametrize("info", each("resampler"))
def test_resampler_shapes_and_gradients(info, factor):
    testing.check_resampler(info.cls, factor)


# ------------------------------------------------------------------------------------------------ generators


@pytest.mark.parametrize("channels", [(3, 3), (1, 1)], ids=["3to3", "1to1"])
@pytest.mark.parametrize("info", each("generator"))
def test_generator_shape_range_and_gradients(info, channels):
    testing.check_generator(info.cls, channels)


# ---------------------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("info", each("loss"))
def test_loss_is_a_finite_differentiable_scalar(info, c):
    skip_if(testing.check_loss(info.cls, c))


# --------------------------------------------------------------------------------------------------- metrics
#
# Metrics take numpy float images in [0, 1], grey [H, W] or RGB [H, W, 3]. Convention: a metric class declares
# ``ideal: ClassVar[float | None]``, the value it gives when the fused image, every source and the reference are the
# same image (0 for DFP's relative metrics, 1 for SSIM, inf for PSNR, ...); None (or no attribute) means no such
# value (e.g. MG, MI) and the identity check is skipped.


@pytest.mark.parametrize("color", ["gray", "rgb"])
@pytest.mark.parametrize("info", each("metric"))
def test_metric_is_a_finite_float(info, color):
    testing.check_metric(info.cls, color)


@pytest.mark.parametrize("color", ["gray", "rgb"])
@pytest.mark.parametrize("info", each("metric"))
def test_metric_identical_inputs_give_the_ideal(info, color):
    skip_if(testing.check_metric_ideal(info.cls, color))


# --------------------------------------------------------------------------------------------- light fields


@pytest.mark.parametrize("info", each("light_field"))
def test_light_field_source_reports_a_bad_folder_clearly(info):
    """Whatever its file layout, a source given an empty or missing folder raises InputError with a fix."""
    testing.check_light_field(info.cls)


# ---------------------------------------------------------------------------------------------------- fusers


@pytest.mark.parametrize("info", each("fuser"))
def test_fuser_reports_why_it_cannot_run_or_fuses(info):
    skip_if(testing.check_fuser(info.cls))


# ------------------------------------------------------------------------------------- models and their losses


@pytest.mark.parametrize("info", each("model"))
def test_model_provides_what_it_declares_and_fuses_any_k(info):
    testing.check_model(info.cls)


@pytest.mark.parametrize("info", each("training_loss"))
def test_training_loss_is_a_finite_differentiable_scalar(info):
    feeding = [m for m in CATALOG.all("model") if set(info.cls.needs) <= set(m.cls.provides)]
    assert feeding, f"no installed model provides what {info.name} needs ({info.cls.needs})"
    testing.check_training_loss(info.cls, feeding[0].cls)


# ---------------------------------------------------------------------------------------------------- guards


BUILTINS = [info for info in CATALOG.all() if info.dist == "fusionkit"]


def load_docs_generator():
    spec = importlib.util.spec_from_file_location("gen_component_docs", ROOT / "scripts" / "gen_component_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("info", [pytest.param(i, id=f"{i.kind}:{i.name}") for i in BUILTINS])
def test_builtin_has_a_component_test(info):
    pattern = re.compile(rf"\b{re.escape(info.name)}\b")
    files = sorted((ROOT / "tests" / "components").glob("test_*.py"))
    assert any(pattern.search(f.read_text()) for f in files), (
        f"no tests/components/test_*.py mentions the built-in {info.kind} {info.name!r} "
        f"({inspect.getsourcefile(info.cls)}): add tests of its equation on small inputs")


@pytest.mark.parametrize("info", [pytest.param(i, id=f"{i.kind}:{i.name}") for i in BUILTINS])
def test_builtin_is_documented(info):
    text = (ROOT / "docs" / "components.md").read_text()
    assert f"`{info.name}`" in text, f"docs/components.md lacks {info.name!r}: run scripts/gen_component_docs.py"


def test_component_docs_are_up_to_date():
    gen = load_docs_generator()
    assert (ROOT / "docs" / "components.md").read_text() == gen.render(gen.builtin_catalog()), (
        "docs/components.md is stale: run `.venv/bin/python scripts/gen_component_docs.py`")

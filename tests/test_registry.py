"""Plugin discovery end to end: fake distributions on a temporary ``sys.path``, found by ``importlib.metadata``.

Each test writes ``<name>-<version>.dist-info/{METADATA,entry_points.txt}`` and the plugin modules into its own
temporary site directory (no pip), builds a fresh catalog with :func:`build_catalog`, and leaves ``sys.path``,
``sys.modules`` and the import caches as it found them.
"""
from __future__ import annotations

import importlib
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fusionkit.errors import PluginError
from fusionkit.interfaces import FocusMeasure, Loss
from fusionkit.registry import build_catalog, hookimpl

ROOT = Path(__file__).resolve().parents[1]
SHARPNESS_SRC = ROOT / "examples" / "plugin-sharpness" / "src"


# ------------------------------------------------------------------------------------------------- fixtures


class Site:
    """A temporary site directory on ``sys.path`` holding fake distributions and their modules."""

    def __init__(self, path: Path):
        self.path = path
        self.modules: list[str] = []
        self.dists: list[str] = []

    def module(self, name: str, source: str) -> None:
        """Write the top-level module ``name`` (dedented ``source``)."""
        (self.path / f"{name}.py").write_text(textwrap.dedent(source))
        self.modules.append(name)
        importlib.invalidate_caches()

    def dist(self, name: str, entry_points: dict[str, str], version: str = "0.1.0") -> None:
        """Write an installed-distribution record whose ``fusionkit`` group holds ``entry_points``."""
        info = self.path / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[fusionkit]\n{lines}")
        self.dists.append(name)
        importlib.invalidate_caches()

    def catalog(self, **kwargs):
        """``build_catalog`` by real discovery, limited (unless ``allow`` is given) to fusionkit's built-ins and this
        site's distributions, so that plugins installed in the environment cannot change the outcome."""
        kwargs.setdefault("allow", self.dists)
        return build_catalog(**kwargs)

    def plugin(self, dist: str, module: str, source: str, ep: str | None = None, version: str = "0.1.0") -> None:
        """A one-module distribution ``dist`` whose entry point ``ep`` (default: the module name) loads it."""
        self.module(module, source)
        self.dist(dist, {ep or module: module}, version)


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    """The environment switches are off unless a test sets them."""
    monkeypatch.delenv("FUSIONKIT_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("FUSIONKIT_LOAD_PLUGINS", raising=False)


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))       # restored (and import caches invalidated) by monkeypatch
    s = Site(root)
    yield s
    for name in list(sys.modules):
        if name.split(".")[0] in s.modules or name.split(".")[0] == "fusionkit_sharpness":
            del sys.modules[name]
    importlib.invalidate_caches()


def measure_source(name: str, cls: str = "Measure") -> str:
    """A plugin module registering one valid focus measure (uniform maps) called ``name``."""
    return f'''
        import torch
        from fusionkit.interfaces import FocusMeasure
        from fusionkit.registry import hookimpl


        class {cls}(FocusMeasure):
            """A test double: uniform maps."""

            name = "{name}"
            summary = "uniform maps"
            reference = "none (test double)"

            def __call__(self, images):
                return torch.full_like(images[:, :1], 1.0 / images.shape[0])


        @hookimpl
        def register_focus_measures(register):
            register({cls})
        '''


def builtin_entry_points() -> set[str]:
    def dist_name(ep):  # once importlib_metadata (a dask dependency) is imported, a broken dist-info raises here
        try:
            return ep.dist.name if ep.dist else None
        except Exception:
            return None
    return {ep.name for ep in metadata.entry_points(group="fusionkit") if dist_name(ep) == "fusionkit"}


def loaded(catalog, dist: str) -> list[str]:
    return [p for p, d, _ in catalog.plugins if d == dist]


def failure(catalog, plugin: str):
    found = [f for f in catalog.failures if f.plugin == plugin]
    assert len(found) == 1, catalog.failures
    return found[0]


def assert_builtins_loaded(catalog) -> None:
    assert builtin_entry_points() <= set(loaded(catalog, "fusionkit"))
    assert not [f for f in catalog.failures if f.dist == "fusionkit"]
    assert any(i.dist == "fusionkit" for i in catalog.all())


class Provider:
    """An in-process plugin (``extra_plugins``) registering the given classes under their own kind's hook."""

    def __init__(self, *classes):
        self.classes = classes

    def _register(self, register, kind):
        for cls in self.classes:
            if cls.kind == kind:
                register(cls)

    @hookimpl
    def register_focus_measures(self, register):
        self._register(register, "focus_measure")

    @hookimpl
    def register_losses(self, register):
        self._register(register, "loss")


class Uniform(FocusMeasure):
    """Uniform maps."""

    name = "local_variance"
    summary = "uniform maps"
    reference = "none (test double)"

    def __call__(self, images):
        return torch.full_like(images[:, :1], 1.0 / images.shape[0])


# ----------------------------------------------------------------------------------- (a) the example plugin


def banded_stack(n: int = 2, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` luma images of one textured scene, image ``i`` sharp on the ``i``-th vertical band only."""
    g = torch.Generator().manual_seed(seed)
    sharp = torch.rand(1, 1, size, size, generator=g)
    blurred = F.avg_pool2d(F.pad(sharp, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
    band = torch.arange(size) * n // size                                          # owner of each column
    owner = band.view(1, 1, 1, size).expand(1, 1, size, size)
    stack = torch.cat([torch.where(owner == i, sharp, blurred) for i in range(n)])
    return stack, owner


def test_example_plugin_is_discovered_with_its_distribution(site, monkeypatch):
    monkeypatch.syspath_prepend(str(SHARPNESS_SRC))
    site.dist("fusionkit-sharpness", {"sharpness": "fusionkit_sharpness"})
    catalog = site.catalog(strict=True)                # a model plugin loads cleanly in strict mode

    assert ("sharpness", "fusionkit-sharpness", "0.1.0") in catalog.plugins
    info = catalog.get("focus_measure", "local_variance")
    assert (info.kind, info.plugin, info.dist, info.version) == ("focus_measure", "sharpness",
                                                                 "fusionkit-sharpness", "0.1.0")
    assert info.cls.__module__ == "fusionkit_sharpness.local_variance"
    assert Path(sys.modules["fusionkit_sharpness"].__file__).is_relative_to(SHARPNESS_SRC)
    assert info.summary and info.reference and "Pertuz" in info.reference
    assert_builtins_loaded(catalog)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_example_plugin_produces_valid_maps(site, monkeypatch, n):
    monkeypatch.syspath_prepend(str(SHARPNESS_SRC))
    site.dist("fusionkit-sharpness", {"sharpness": "fusionkit_sharpness"})
    measure = site.catalog(allow=["fusionkit-sharpness"]).get("focus_measure", "local_variance").cls(window=5)
    stack, owner = banded_stack(n)
    maps = measure(stack)
    assert maps.shape == (n, 1, 32, 32) and maps.dtype == torch.float32 and maps.device == stack.device
    assert torch.equal(maps.sum(dim=0), torch.ones(1, 32, 32))
    assert set(maps.unique().tolist()) <= {0.0, 1.0}
    chosen = maps.argmax(dim=0, keepdim=True)
    interior = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    assert (chosen == owner)[interior].float().mean().item() > 0.9            # the sharp band wins
    assert torch.equal(measure(torch.full((n, 1, 9, 9), 0.3))[0], torch.ones(1, 9, 9))   # ties: lowest index
    assert measure.Params(window=9).smooth is None
    with pytest.raises(Exception, match="window must be odd"):
        measure.Params(window=8)


# ----------------------------------------------------------------------- (b) a broken plugin is only recorded


BROKEN = '''
    raise ImportError("No module named 'libfocus'\\n(while importing fusionkit_broken)")
    '''


def test_broken_plugin_is_recorded_and_the_rest_loads(site):
    site.plugin("fusionkit-broken", "fk_broken", BROKEN, ep="broken")
    site.plugin("fusionkit-good", "fk_good", measure_source("good_measure"))
    catalog = site.catalog()

    f = failure(catalog, "broken")
    assert f.dist == "fusionkit-broken"
    assert f.cause == "ImportError: No module named 'libfocus'; (while importing fusionkit_broken)"  # one line
    assert "broken" not in [p for p, _, _ in catalog.plugins]
    assert catalog.get("focus_measure", "good_measure").dist == "fusionkit-good"
    assert_builtins_loaded(catalog)


# -------------------------------------------------------------------------------------------- (c) strict mode


def test_strict_mode_raises_on_a_broken_plugin(site):
    site.plugin("fusionkit-broken", "fk_broken", BROKEN, ep="broken")
    with pytest.raises(PluginError, match="plugin 'broken' from fusionkit-broken failed: ImportError") as err:
        site.catalog(strict=True)
    assert "FUSIONKIT_STRICT_PLUGINS" in err.value.hint


@pytest.mark.parametrize("value, fatal", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_strict_mode_from_the_environment(site, monkeypatch, value, fatal):
    site.plugin("fusionkit-broken", "fk_broken", BROKEN, ep="broken")
    monkeypatch.setenv("FUSIONKIT_STRICT_PLUGINS", value)
    if fatal:
        with pytest.raises(PluginError, match="fusionkit-broken"):
            site.catalog()
        assert site.catalog(strict=False).failures           # an explicit argument beats the variable
    else:
        assert failure(site.catalog(), "broken").dist == "fusionkit-broken"


# ------------------------------------------------------------------------------------------ (d) the allowlist


@pytest.fixture
def three_dists(site):
    site.plugin("fusionkit-alpha", "fk_alpha", measure_source("alpha_measure"))
    site.plugin("fusionkit-beta", "fk_beta", measure_source("beta_measure"))
    site.plugin("fusionkit-broken", "fk_broken", BROKEN, ep="broken")
    return site


def third_party(catalog) -> set[str]:
    """Which of the fixture's distributions were loaded or tried (others installed here are ignored)."""
    seen = {d for _, d, _ in catalog.plugins} | {f.dist for f in catalog.failures}
    return seen & {"fusionkit-alpha", "fusionkit-beta", "fusionkit-broken"}


def test_allowlist_limits_third_party_distributions(three_dists):
    catalog = build_catalog(allow=["fusionkit-alpha"])
    assert third_party(catalog) == {"fusionkit-alpha"}
    assert catalog.has("focus_measure", "alpha_measure") and not catalog.has("focus_measure", "beta_measure")
    assert "fk_broken" not in sys.modules                       # not even imported: the escape hatch
    assert_builtins_loaded(catalog)
    # names are compared normalised, like pip does
    assert third_party(build_catalog(allow=[" FUSIONKIT_Beta "])) == {"fusionkit-beta"}
    # an empty list loads fusionkit's built-ins only
    catalog = build_catalog(allow=[])
    assert third_party(catalog) == set()
    assert_builtins_loaded(catalog)


@pytest.mark.parametrize("value, expected", [
    ("fusionkit-beta", {"fusionkit-beta"}),
    ("fusionkit-alpha,fusionkit-broken", {"fusionkit-alpha", "fusionkit-broken"}),
    ("", set()),
])
def test_allowlist_from_the_environment(three_dists, monkeypatch, value, expected):
    monkeypatch.setenv("FUSIONKIT_LOAD_PLUGINS", value)
    catalog = build_catalog()
    assert third_party(catalog) == expected
    assert_builtins_loaded(catalog)


def test_without_the_variable_everything_loads(three_dists):
    assert third_party(build_catalog()) == {"fusionkit-alpha", "fusionkit-beta", "fusionkit-broken"}


# ------------------------------------------------------------------------------------------- (e) collisions


@pytest.mark.parametrize("same_entry_point_name", [False, True], ids=["distinct-ep-names", "same-ep-name"])
def test_name_collision_names_both_distributions(site, same_entry_point_name):
    ep = "sharpness" if same_entry_point_name else None
    site.plugin("fusionkit-alpha", "fk_alpha", measure_source("twin"), ep=ep, version="1.0.0")
    site.plugin("fusionkit-beta", "fk_beta", measure_source("twin"), ep=ep, version="2.3.0")
    catalog = site.catalog()

    assert not catalog.failures                                 # a collision is not a load failure
    assert {d for _, d, _ in catalog.plugins} >= {"fusionkit-alpha", "fusionkit-beta"}
    assert not catalog.has("focus_measure", "twin")             # neither silently wins
    assert "twin" in catalog.names("focus_measure")
    assert sorted(i.dist for i in catalog.conflicts["focus_measure", "twin"]) == ["fusionkit-alpha",
                                                                                  "fusionkit-beta"]
    with pytest.raises(PluginError) as err:
        catalog.get("focus_measure", "twin")
    assert "fusionkit-alpha 1.0.0" in err.value.message and "fusionkit-beta 2.3.0" in err.value.message
    assert "FUSIONKIT_LOAD_PLUGINS" in err.value.hint
    # choosing one distribution resolves it
    assert build_catalog(allow=["fusionkit-beta"]).get("focus_measure", "twin").version == "2.3.0"
    with pytest.raises(PluginError, match="fusionkit-alpha.*fusionkit-beta"):
        site.catalog(strict=True)


def test_collision_with_a_builtin_is_reported_too(site):
    site.plugin("fusionkit-alpha", "fk_alpha", measure_source("twin"))
    catalog = site.catalog(extra_plugins=[(Provider(type("Twin", (Uniform,), {"name": "twin"})), "fusionkit")])
    with pytest.raises(PluginError, match=r"fusionkit-alpha 0\.1\.0 .* and fusionkit local"):
        catalog.get("focus_measure", "twin")


# ----------------------------------------------------------------------------------- (f) invalid components


class NotAComponent:
    name = "plain"
    summary = "s"
    reference = "r"


class NoReference(FocusMeasure):
    """No reference."""

    name = "no_reference"
    summary = "s"

    def __call__(self, images):
        return images


class CamelName(Uniform):
    name = "LocalVar"


class KebabName(Uniform):
    name = "local-var"


class EmptySummary(Uniform):
    name = "empty_summary"
    summary = ""


class PlainParams(Uniform):
    from pydantic import BaseModel as Params  # noqa: N814 - not a fusionkit Params


class ALoss(Loss):
    """A loss."""

    name = "a_loss"
    summary = "s"
    reference = "r"

    def __call__(self, ctx):
        return ctx.output.sum()


@pytest.mark.parametrize("cls, reason", [
    (NotAComponent, "does not subclass fusionkit.interfaces.FocusMeasure"),
    (NoReference, "NoReference has no 'reference' string"),
    (CamelName, "CamelName.name 'LocalVar' is not snake_case"),
    (KebabName, "KebabName.name 'local-var' is not snake_case"),
    (EmptySummary, "EmptySummary has no 'summary' string"),
    (PlainParams, "PlainParams.Params must subclass fusionkit.interfaces.Params"),
    (ALoss, "does not subclass fusionkit.interfaces.FocusMeasure"),        # right class, wrong hook
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_invalid_component_is_recorded_with_the_reason(cls, reason):
    class Bad:
        __name__ = "bad_plugin"

        @hookimpl
        def register_focus_measures(self, register):
            register(Uniform)
            register(cls)

    catalog = build_catalog(load_entry_points=False, extra_plugins=[(Bad(), "fusionkit-bad")])
    f = failure(catalog, "bad_plugin")
    assert f.dist == "fusionkit-bad"
    assert f.cause.startswith("PluginError: ") and reason in f.cause and "\n" not in f.cause
    assert catalog.all() == []                  # the hook failed as a whole: nothing half-registered
    with pytest.raises(PluginError, match="plugin 'bad_plugin' from fusionkit-bad failed") as err:
        build_catalog(load_entry_points=False, extra_plugins=[(Bad(), "fusionkit-bad")], strict=True)
    assert reason in err.value.message


def test_invalid_component_from_an_installed_distribution(site):
    site.plugin("fusionkit-camel", "fk_camel", measure_source("CamelCase"))
    catalog = site.catalog()
    f = failure(catalog, "fk_camel")
    assert (f.dist, f.cause) == ("fusionkit-camel", "PluginError: Measure.name 'CamelCase' is not snake_case")
    assert_builtins_loaded(catalog)


# ----------------------------------------------------------------------------------- (g) misspelled hook name


MISSPELLED = '''
    from fusionkit.registry import hookimpl


    @hookimpl
    def register_focus_measure(register):   # singular: no such hook
        raise AssertionError("never called")
    '''


def test_misspelled_hook_name_is_recorded(site):
    site.plugin("fusionkit-typo", "fk_typo", MISSPELLED)
    site.plugin("fusionkit-good", "fk_good", measure_source("good_measure"))
    catalog = site.catalog()
    f = failure(catalog, "fk_typo")
    assert f.dist == "fusionkit-typo"
    assert "PluginValidationError" in f.cause and "unknown hook 'register_focus_measure'" in f.cause
    assert "fk_typo" not in [p for p, _, _ in catalog.plugins]
    assert catalog.has("focus_measure", "good_measure")         # a later plugin is not blamed for it
    assert_builtins_loaded(catalog)
    with pytest.raises(PluginError, match="unknown hook 'register_focus_measure'"):
        site.catalog(strict=True)


def test_hook_with_an_argument_the_spec_lacks_is_recorded(site):
    site.plugin("fusionkit-args", "fk_args", '''
        from fusionkit.registry import hookimpl


        @hookimpl
        def register_losses(register, device):
            pass
        ''')
    f = failure(site.catalog(), "fk_args")
    assert f.cause.startswith("PluginValidationError: Plugin 'fusionkit-args:fk_args' for hook 'register_losses'")
    assert "{'device'}" in f.cause and "\n" not in f.cause         # the reason survives on the one line


# ------------------------------------------------------------------------------------------ (h) a hook raises


def test_hook_that_raises_is_recorded_not_fatal(site):
    site.plugin("fusionkit-raises", "fk_raises", '''
        from fusionkit.registry import hookimpl


        @hookimpl
        def register_losses(register):
            raise RuntimeError("boom: CUDA kernels not compiled\\nsecond line")
        ''')
    site.plugin("fusionkit-good", "fk_good", measure_source("good_measure"))
    catalog = site.catalog()
    f = failure(catalog, "fk_raises")
    assert (f.dist, f.cause) == ("fusionkit-raises", "RuntimeError: boom: CUDA kernels not compiled; second line")
    assert catalog.has("focus_measure", "good_measure")
    assert_builtins_loaded(catalog)
    with pytest.raises(PluginError, match="RuntimeError: boom"):
        site.catalog(strict=True)


# ------------------------------------------------------------------------------------------ (i) did-you-mean


def test_unknown_name_suggests_the_closest():
    catalog = build_catalog(load_entry_points=False, extra_plugins=[(Provider(Uniform), "fusionkit-test")])
    with pytest.raises(PluginError, match="unknown focus measure 'local_varience'") as err:
        catalog.get("focus_measure", "local_varience")
    assert "did you mean 'local_variance'?" in err.value.hint
    assert "Installed focus measures: local_variance." in err.value.hint
    with pytest.raises(PluginError) as err:
        catalog.get("focus_measure", "zzz")
    assert "did you mean" not in err.value.hint and "fusionkit plugins list" in err.value.hint
    with pytest.raises(PluginError, match="unknown component kind 'focus'"):
        catalog.get("focus", "local_variance")
    with pytest.raises(PluginError, match="Installed losses: none"):
        catalog.get("loss", "content")


# ------------------------------------------------------------------------------------------------ isolation


def test_catalogs_are_fresh_and_isolated(site):
    site.plugin("fusionkit-alpha", "fk_alpha", measure_source("alpha_measure"))
    first = site.catalog()
    assert first.has("focus_measure", "alpha_measure")
    assert site.catalog() is not first
    bare = build_catalog(load_entry_points=False)
    assert bare.all() == [] and bare.plugins == [] and bare.failures == []
    only = build_catalog(load_entry_points=False, extra_plugins=[(Provider(Uniform), "fusionkit-test")])
    assert [(i.name, i.dist, i.version) for i in only.all()] == [("local_variance", "fusionkit-test", "local")]


def test_explicit_entry_points_bypass_discovery(site):
    site.plugin("fusionkit-alpha", "fk_alpha", measure_source("alpha_measure"))
    site.plugin("fusionkit-beta", "fk_beta", measure_source("beta_measure"))
    eps = [ep for ep in metadata.entry_points(group="fusionkit") if ep.dist.name == "fusionkit-beta"]
    catalog = build_catalog(entry_points=eps)
    assert [(p, d) for p, d, _ in catalog.plugins] == [("fk_beta", "fusionkit-beta")]


def test_a_dist_info_without_metadata_does_not_break_discovery(site):
    (site.path / "half_uninstalled-1.0.dist-info").mkdir()
    (site.path / "half_uninstalled-1.0.dist-info" / "entry_points.txt").write_text("[fusionkit]\nghost = fk_ghost\n")
    site.plugin("fusionkit-alpha", "fk_alpha", measure_source("alpha_measure"))
    catalog = site.catalog(allow=None)                 # the ghost has no distribution name to allow
    assert failure(catalog, "ghost").dist == "unknown"            # fk_ghost does not exist
    assert catalog.has("focus_measure", "alpha_measure")
    assert_builtins_loaded(catalog)


def test_a_module_offered_twice_keeps_its_first_registration(site):
    site.module("fk_shared", measure_source("shared_measure"))
    site.dist("fusionkit-alpha", {"shared": "fk_shared"})
    site.dist("fusionkit-beta", {"shared": "fk_shared"})
    catalog = site.catalog()
    assert failure(catalog, "shared").dist == "fusionkit-beta"
    assert "already registered" in failure(catalog, "shared").cause
    assert catalog.get("focus_measure", "shared_measure").dist == "fusionkit-alpha"

"""Writing a plugin from docs/plugins.md alone (issue 13.8): the complete minimal plugin in the docs works as
written, its pyproject builds, the contract checks ship in the installed package (fusionkit.testing) and can fail,
LossContext is documented as it is (with the stage a loss runs in), and ctx.cache lives as documented."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

import fusionkit
from fusionkit.interfaces import FocusMeasure, Loss, LossContext
from fusionkit.registry import build_catalog, hookimpl

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"^\*\*`(?P<path>[^`]+)`\*\*\s*\n+```[a-z]*\n(?P<body>.*?)^```", re.M | re.S)


def doc_plugin() -> dict[str, str]:
    """The minimal plugin's files, exactly as docs/plugins.md shows them (a bold `path` line, then its block)."""
    files = {m["path"]: m["body"] for m in FILE_BLOCK.finditer(DOC.read_text())}
    assert files, "docs/plugins.md shows no complete plugin (bold `path` lines followed by code blocks)"
    return files


def write_plugin(root: Path) -> Path:
    for rel, body in doc_plugin().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(body)
    return root


def test_the_docs_show_a_complete_plugin():
    files = doc_plugin()
    assert "pyproject.toml" in files and any(f.endswith("__init__.py") for f in files)
    assert any(f.startswith("tests/") for f in files)
    for rel, body in files.items():
        assert "..." not in body, f"{rel} in docs/plugins.md hides code behind '...'"
    project = tomllib.loads(files["pyproject.toml"])
    assert project["build-system"]["build-backend"] and project["build-system"]["requires"]
    assert project["project"]["entry-points"]["fusionkit"]


def test_the_docs_plugin_passes_its_own_tests_as_written(tmp_path):
    plugin = write_plugin(tmp_path / "plugin")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin / "src"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=plugin, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "passed" in r.stdout and "failed" not in r.stdout


@pytest.mark.slow
def test_the_docs_plugin_installs_and_is_found_by_its_entry_point(tmp_path):
    """pip-installs the docs' plugin (no network: no build isolation, no dependencies) into a target folder, then
    fusionkit finds it through its entry point, in strict mode, and its tests pass against the installed copy."""
    plugin = write_plugin(tmp_path / "plugin")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(site), str(plugin)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "FUSIONKIT_STRICT_PLUGINS": "1", "FUSIONKIT_CATALOG_CACHE": "0"}
    name = tomllib.loads(doc_plugin()["pyproject.toml"])["project"]["name"]
    r = subprocess.run([sys.executable, "-m", "fusionkit.cli", "plugins", "list"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and name in r.stdout, r.stdout + r.stderr
    shutil.rmtree(plugin / "src")                         # the tests must now use the installed copy
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=plugin, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_fusionkit_testing_ships_in_the_package():
    import fusionkit.testing as testing

    assert Path(testing.__file__).resolve().parent == Path(fusionkit.__file__).resolve().parent
    source = Path(testing.__file__).read_text()
    assert "conftest" not in source and "from tests" not in source


class _Unnormalised(FocusMeasure):
    """Maps that do not sum to 1 (broken on purpose)."""

    name = "unnormalised"
    summary = "broken on purpose"
    reference = "none (test double)"

    def __call__(self, images):
        return torch.ones_like(images)


class _NoDoc(FocusMeasure):
    name = "no_doc"
    summary = "no docstring"
    reference = "none (test double)"

    def __call__(self, images):
        return torch.full_like(images, 1.0 / images.shape[0])


@pytest.mark.parametrize("cls, complaint", [(_Unnormalised, "do not sum to 1"), (_NoDoc, "no docstring")])
def test_the_contract_checks_catch_a_broken_component(cls, complaint):
    from fusionkit.testing import check_component

    with pytest.raises(AssertionError, match=complaint):
        check_component(cls)


def test_check_plugin_fails_on_a_module_that_registers_nothing():
    from fusionkit.testing import check_plugin

    class Empty:
        pass

    with pytest.raises(AssertionError, match="registered no component"):
        check_plugin(Empty(), "fusionkit-empty")


def test_loss_context_is_documented_as_it_is():
    fields = {f.name for f in dataclasses.fields(LossContext)}
    assert "stage" in fields
    table = DOC.read_text().split("`LossContext` holds:", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert documented == fields
    for name in re.findall(r"``(\w+)``", LossContext.__doc__ or ""):
        assert name in fields or name in ("C", "N", "H", "W"), f"LossContext's docstring names {name!r}"


class _Recorder(Loss):
    """L1 to the first input (fusion) or to the target maps (embedding); records the stage and the cache dict."""

    name = "recorder"
    summary = "test loss"
    reference = "test"
    seen: list = []

    def __call__(self, ctx):
        _Recorder.seen.append((ctx.stage, id(ctx.cache)))
        ctx.cache.setdefault(("recorder", "calls"), 0)
        ctx.cache[("recorder", "calls")] += 1
        target = ctx.maps if ctx.stage == "embedding" else ctx.inputs[:1]
        return (ctx.output_low - target).abs().mean()


class _Plugin:
    @hookimpl
    def register_losses(self, register):
        register(_Recorder)


def test_a_loss_knows_its_stage_and_the_cache_lives_one_stage(pair):
    _Recorder.seen.clear()
    catalog = build_catalog(extra_plugins=[(_Plugin(), "test-recorder")])
    spec = {"name": "t", "losses": [{"name": "recorder"}],
            "decision_embedding": {"enabled": True, "iterations": 3, "loss": {"name": "recorder"}}}
    fusionkit.run(spec, ["iterations=4", "device=cpu", "generator.params.channels=[8,16]",
                         "generator.params.skip=[4,4]", "decision_embedding.generator.params.channels=[8,16]",
                         "decision_embedding.generator.params.skip=[0,4]"], inputs=pair.inputs, write=False,
                  catalog=catalog)
    stages = [s for s, _ in _Recorder.seen]
    assert stages[:3] == ["embedding"] * 3 and set(stages[3:]) == {"fusion"}
    caches = {s: {c for st, c in _Recorder.seen if st == s} for s in ("embedding", "fusion")}
    assert len(caches["embedding"]) == 1 and len(caches["fusion"]) == 1     # one dict for a whole stage
    assert caches["embedding"] != caches["fusion"]                           # and a fresh one per stage


def test_plugins_md_examples_quote_set_and_mention_testing():
    text = DOC.read_text()
    assert "fusionkit.testing" in text and "check_plugin" in text
    assert "[build-system]" in text
    assert textwrap.dedent("luma_weights") not in text

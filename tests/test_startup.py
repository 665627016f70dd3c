"""Start-up of the light commands (issue 13.5): `validate`, `run --dry-run` and `plugins list` import no torch,
numpy, OpenCV or SciPy once the catalog cache is warm, and the cache follows every change to the installed plugins.

These tests check *what is imported*, which decides the start-up time; the time itself is measured by
`benchmarks/startup.py` (figures in BENCHMARKS.md), never by a unit test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fusionkit.registry import build_catalog

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "cv2", "scipy", "matplotlib", "skimage")

PROBE = """
import json, sys
from fusionkit.cli import main
sys.argv = ["fusionkit"] + json.loads(sys.argv[1])
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.__stderr__)
""" % (HEAVY,)


def probe(args: list[str], cache: Path, extra_path: Path | None = None, cwd: Path = ROOT) -> dict:
    """Run the CLI in a fresh interpreter; its exit code, stdout and the heavy modules it imported."""
    env = {**os.environ, "FUSIONKIT_CACHE_DIR": str(cache)}
    env.pop("FUSIONKIT_CATALOG_CACHE", None)
    env.pop("FUSIONKIT_STRICT_PLUGINS", None)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], env=env, cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    info = json.loads(r.stderr.strip().splitlines()[-1])
    return {**info, "stdout": r.stdout, "stderr": r.stderr}


LIGHT = {
    "validate": ["validate", str(ROOT / "examples" / "dfp-x2.yaml"), "--set", "inputs=[a.png,b.png]"],
    "dry-run": ["run", str(ROOT / "examples" / "dfp-x2.yaml"), "--set", "inputs=[a.png,b.png]", "--dry-run"],
    "plugins list": ["plugins", "list"],
    "plugins list --json": ["plugins", "list", "--json"],
}


def test_light_commands_import_nothing_heavy_once_the_cache_is_warm(tmp_path):
    cache = tmp_path / "cache"
    first = probe(LIGHT["plugins list"], cache)         # a cold start builds the catalog (imports everything)
    assert first["code"] == 0, first["stderr"]
    assert list(cache.glob("catalog-*.json")), "the first start writes the catalog cache"
    for label, args in LIGHT.items():
        r = probe(args, cache)
        assert r["code"] == 0, (label, r["stderr"])
        assert r["heavy"] == [], f"`fusionkit {' '.join(args)}` imported {r['heavy']}"


def test_a_spec_error_is_found_without_torch(tmp_path):
    """Phase 2 (a component's own Params, with its validators) runs on the light path too."""
    cache = tmp_path / "cache"
    probe(LIGHT["plugins list"], cache)
    r = probe(["validate", str(ROOT / "examples" / "dfp-x2.yaml"), "--set", "inputs=[a.png,b.png]",
               "--set", "focus_measure.params.gaussian_kernel=4", "--set", "generator.params.kernel=4"], cache)
    assert r["code"] == 2 and "must be odd" in r["stderr"] and "gaussian_kernel" in r["stderr"]
    assert "generator.params.kernel" in r["stderr"]
    assert r["heavy"] == []


PLUGIN = '''
from fusionkit.interfaces import FocusMeasure
from fusionkit.registry import hookimpl


class Probe(FocusMeasure):
    """A test double."""

    name = "{name}"
    summary = "{summary}"
    reference = "none (test double)"

    def __call__(self, images):
        return images * 0 + 1.0 / images.shape[0]


@hookimpl
def register_focus_measures(register):
    register(Probe)
'''


def fake_site(root: Path, name: str, summary: str = "first") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "fk_probe_plugin.py").write_text(PLUGIN.format(name=name, summary=summary))
    info = root / "fusionkit_probe-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fusionkit-probe\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[fusionkit]\nprobe = fk_probe_plugin\n")
    return root


def listed(r: dict) -> dict[str, str]:
    assert r["code"] == 0, r["stderr"]
    return {c["name"]: c["summary"] for c in json.loads(r["stdout"])["components"] if c["dist"] == "fusionkit-probe"}


def test_the_cache_follows_an_edited_installed_and_removed_plugin(tmp_path):
    cache, site = tmp_path / "cache", tmp_path / "site"
    fake_site(site, "probe_one")
    assert listed(probe(LIGHT["plugins list --json"], cache, site)) == {"probe_one": "first"}
    # the same module edited in place (same size: only the mtime tells)
    module = site / "fk_probe_plugin.py"
    before = module.stat()
    module.write_text(PLUGIN.format(name="probe_two", summary="first"))
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert listed(probe(LIGHT["plugins list --json"], cache, site)) == {"probe_two": "first"}
    # uninstalled: the entry point is gone
    for f in (site / "fusionkit_probe-0.1.0.dist-info").iterdir():
        f.unlink()
    (site / "fusionkit_probe-0.1.0.dist-info").rmdir()
    assert listed(probe(LIGHT["plugins list --json"], cache, site)) == {}


def test_a_corrupt_cache_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    probe(LIGHT["plugins list"], cache)
    for f in cache.glob("catalog-*.json"):
        f.write_text("{ not json")
    r = probe(LIGHT["plugins list --json"], cache)
    assert r["code"] == 0 and "double_reblur" in r["stdout"]
    json.loads(next(cache.glob("catalog-*.json")).read_text())  # rewritten


def test_a_cached_catalog_is_the_built_catalog(tmp_path, monkeypatch):
    from fusionkit.registry import snapshot

    monkeypatch.setenv("FUSIONKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FUSIONKIT_CATALOG_CACHE", raising=False)
    monkeypatch.delenv("FUSIONKIT_STRICT_PLUGINS", raising=False)
    built = build_catalog()
    assert snapshot.save(built) is not None
    cached = snapshot.load()
    assert cached is not None

    def rows(c):
        return sorted((i.kind, i.name, i.plugin, i.dist, i.version, i.summary, i.reference) for i in c.all())

    assert rows(cached) == rows(built)
    assert [(f.plugin, f.dist, f.cause) for f in cached.failures] == [(f.plugin, f.dist, f.cause)
                                                                      for f in built.failures]
    assert cached.plugins == built.plugins
    for info in built.all():
        twin = cached.get(info.kind, info.name)
        assert twin.params is info.cls.Params          # validation gets the very same Params model
        assert twin.cls is info.cls                    # and a run the very same class


def test_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    from fusionkit.registry import snapshot

    monkeypatch.setenv("FUSIONKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FUSIONKIT_CATALOG_CACHE", "0")
    assert snapshot.save(build_catalog()) is None and snapshot.load() is None
    assert not list(tmp_path.iterdir())


def test_setup_script_skips_pip_when_nothing_changed(tmp_path):
    """scripts/setup.sh runs pip only when pyproject.toml, the torch pin or the Python changed (issue 13.5)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "setup.sh").write_text((ROOT / "scripts" / "setup.sh").read_text())
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "calls.log"
    python = bin_dir / "python"
    python.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        echo "$*" >> {calls}
        if [ "$1" = "-c" ]; then echo "fusionkit 0.1.0, torch 2.13.0+cpu"; fi
        exit 0
        """))
    python.chmod(0o755)

    def setup(**env) -> list[str]:
        calls.write_text("")
        r = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=60)
        assert r.returncode == 0, r.stderr
        return [c for c in calls.read_text().splitlines() if c.startswith("-m pip")]

    assert len(setup()) == 2                       # torch, then fusionkit
    assert setup() == []                           # nothing changed: no pip at all
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    assert len(setup()) == 2                       # the package changed
    assert setup() == []
    assert len(setup(FUSIONKIT_TORCH="torch==2.12.0")) == 2   # another torch asked for

"""Bad inputs and faults, as a user meets them (issue 12): each case asserts the exit code, the message's cause and
its fix, and exactly which files exist afterwards. Interruptions by signals are in test_interrupts.py.

Each case runs the real CLI in-process (click's runner: stdout and stderr apart) in its own folder. Cases whose
point is the output location use ``method: composite`` (no optimisation), so that the whole module stays fast.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import fusionkit
from fusionkit.cli import cli
from fusionkit.errors import InputError, RunError
from fusionkit.io import new_run_dir, write_image, write_text

from conftest import QUICK

ROOT = Path(__file__).resolve().parents[1]
FAST = ["method=composite", "decision_embedding.enabled=false", "device=cpu"]


def sets(overrides) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


def invoke(*args, env=None):
    r = CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False,
                           env={"COLUMNS": "200", "FUSIONKIT_DEBUG": "", **(env or {})})
    r.all = r.stdout + r.stderr
    return r


def tree(root: Path, skip: tuple[str, ...] = ("in",)) -> set[str]:
    """Every file and folder under ``root`` (hidden ones too), relative, except the inputs folder."""
    out = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] not in skip:
            out.add(rel + ("/" if p.is_dir() else ""))
    return out


RUN_FILES = {"out/", "out/fused.png", "out/manifest.json", "out/spec.resolved.yaml", "out/maps/",
             "out/maps/map_00.png", "out/maps/map_01.png", "out/maps/focus_measure_00.png",
             "out/maps/focus_measure_01.png"}


@pytest.fixture
def case(tmp_path, pair, monkeypatch):
    """A folder with two good inputs in ``in/`` and a spec writing to ``out``; the current folder is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    for name, img in (("a", pair.inputs[0]), ("b", pair.inputs[1])):
        write_image(tmp_path / "in" / f"{name}.png", img, 8)

    class Case:
        root = tmp_path
        inputs = [str(tmp_path / "in" / "a.png"), str(tmp_path / "in" / "b.png")]

        def spec(self, **fields) -> Path:
            data = {"name": "t", "inputs": self.inputs, "output": {"dir": str(tmp_path / "out")}, **fields}
            path = tmp_path / "in" / "spec.yaml"
            path.write_text(yaml.safe_dump(data))
            return path

        def text(self, body: str) -> Path:
            path = tmp_path / "in" / "spec.yaml"
            path.write_text(body)
            return path

    return Case()


def expect(r, code: int, *cause: str, fix: str | None = None) -> None:
    assert r.exit_code == code, r.all
    assert "Traceback" not in r.all
    for c in cause:
        assert c in r.all, f"{c!r} not in:\n{r.all}"
    if code:
        assert "Fix:" in r.stderr, r.all
        if fix:
            assert fix in r.stderr.split("Fix:", 1)[1], r.all


# ------------------------------------------------------------------------------------------------ inputs


def test_missing_input(case):
    r = invoke("run", case.spec(inputs=[case.inputs[0], "in/nope.png"]), *sets(FAST))
    expect(r, 1, "input image not found", "nope.png", fix="check the path")
    assert tree(case.root) == set()


def test_empty_input(case):
    (case.root / "in" / "empty.png").write_bytes(b"")
    r = invoke("run", case.spec(inputs=[case.inputs[0], "empty.png"]), *sets(FAST))
    expect(r, 1, "empty.png", "empty, corrupt", fix="re-export")
    assert tree(case.root) == set()


def test_corrupt_input(case):
    (case.root / "in" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    r = invoke("run", case.spec(inputs=[case.inputs[0], "bad.png"]), *sets(FAST))
    expect(r, 1, "bad.png", "corrupt", fix="re-export it as PNG or TIFF")
    assert tree(case.root) == set()


def test_wrong_format_input(case):
    (case.root / "in" / "notes.txt").write_text("a text file, not an image\n")
    r = invoke("run", case.spec(inputs=[case.inputs[0], "notes.txt"]), *sets(FAST))
    expect(r, 1, "notes.txt", "not an image format", fix="PNG or TIFF")
    assert tree(case.root) == set()


def test_folder_as_input(case):
    (case.root / "in" / "stack").mkdir()
    r = invoke("run", case.spec(inputs=[case.inputs[0], "stack"]), *sets(FAST))
    expect(r, 1, "is a folder, not an image", fix="list the image files")
    assert "not found" not in r.all
    assert tree(case.root) == set()


def test_size_mismatch(case, pair):
    write_image(case.root / "in" / "small.png", pair.inputs[1][:20], 8)
    r = invoke("run", case.spec(inputs=[case.inputs[0], "small.png"]), *sets(FAST))
    expect(r, 1, "differ in size", "32x20", fix="same width and height")
    assert tree(case.root) == set()


def test_one_input_only(case):
    r = invoke("run", case.spec(inputs=[case.inputs[0]]), *sets(FAST))
    expect(r, 2, "at least 2 input images, got 1", fix="inputs")
    assert tree(case.root) == set()


def test_tiny_inputs(case):
    for n in "ab":
        write_image(case.root / "in" / f"t{n}.png", np.full((4, 4, 1), 0.5, np.float32), 8)
    r = invoke("run", case.spec(inputs=["ta.png", "tb.png"]), *sets(FAST))
    expect(r, 1, "only 4x4 pixels", fix="at least 8x8")
    assert tree(case.root) == set()


def test_gray_with_colour_and_alpha_is_accepted(case, pair):
    import cv2

    gray = (pair.inputs[1].mean(axis=2) * 255).astype(np.uint8)
    cv2.imwrite(str(case.root / "in" / "gray.png"), gray)
    rgba = np.dstack([(pair.inputs[0][:, :, ::-1] * 255).astype(np.uint8), np.full(gray.shape, 255, np.uint8)])
    cv2.imwrite(str(case.root / "in" / "rgba.png"), rgba)
    r = invoke("run", case.spec(inputs=["rgba.png", "gray.png"]), *sets(FAST))
    expect(r, 0)
    assert tree(case.root) == RUN_FILES


def test_16_bit_inputs_give_a_16_bit_output(case, pair):
    for n, img in zip("ab", pair.inputs):
        write_image(case.root / "in" / f"w{n}.png", img, 16)
    r = invoke("run", case.spec(inputs=["wa.png", "wb.png"]), *sets(FAST))
    expect(r, 0)
    import cv2

    assert cv2.imread(str(case.root / "out" / "fused.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def float_tiff(path: Path, img: np.ndarray) -> None:
    import cv2

    assert cv2.imwrite(str(path), np.ascontiguousarray(img[:, :, ::-1], dtype=np.float32))


def test_float_tiffs_in_range_are_read(case, pair):
    for n, img in zip("ab", pair.inputs):
        float_tiff(case.root / "in" / f"f{n}.tif", img)
    r = invoke("run", case.spec(inputs=["fa.tif", "fb.tif"]), *sets(FAST))
    expect(r, 0)
    assert tree(case.root) == RUN_FILES


def test_float_tiff_out_of_range_is_refused_not_clipped(case, pair):
    float_tiff(case.root / "in" / "fa.tif", pair.inputs[0])
    float_tiff(case.root / "in" / "hdr.tif", pair.inputs[1] * 255.0)
    r = invoke("run", case.spec(inputs=["fa.tif", "hdr.tif"]), *sets(FAST))
    expect(r, 1, "hdr.tif", "floating-point", "[0, 1]", fix="rescale")
    assert tree(case.root) == set()


def test_float_tiff_with_nan_is_refused(case, pair):
    bad = pair.inputs[1].copy()
    bad[3, 3] = np.nan
    float_tiff(case.root / "in" / "fa.tif", pair.inputs[0])
    float_tiff(case.root / "in" / "nan.tif", bad)
    r = invoke("run", case.spec(inputs=["fa.tif", "nan.tif"]), *sets(FAST))
    expect(r, 1, "nan.tif", "NaN", fix="re-export")
    assert tree(case.root) == set()


# ------------------------------------------------------------------------------------------- the Python API


def test_api_float_arrays_in_0_255_are_refused(pair):
    with pytest.raises(InputError) as e:
        fusionkit.run({"name": "t"}, FAST, inputs=[pair.inputs[0] * 255.0, pair.inputs[1] * 255.0], write=False)
    text = e.value.render()
    assert "[0, 1]" in text and "255" in text and "divide by 255" in text


def test_api_integer_arrays_other_than_8_and_16_bit_are_refused(pair):
    a = (pair.inputs[0] * 255).astype(np.int64)
    with pytest.raises(InputError, match="int64") as e:
        fusionkit.run({"name": "t"}, FAST, inputs=[a, a], write=False)
    assert "uint8" in e.value.render()


def test_api_rounding_overshoot_is_clipped(pair):
    a = pair.inputs[0].copy()
    a[0, 0, 0] = 1.0 + 1e-6
    r = fusionkit.run({"name": "t"}, FAST, inputs=[a, pair.inputs[1]], write=False)
    assert r.fused.max() <= 1.0


# ----------------------------------------------------------------------------------------------- the spec


def test_spec_file_missing(case):
    r = invoke("run", case.root / "in" / "nothing.yaml")
    expect(r, 2, "spec file not found", fix="check the path")
    assert tree(case.root) == set()


def test_spec_is_a_folder(case):
    r = invoke("validate", case.root / "in")
    expect(r, 2, "is a folder, not a spec file", fix=".yaml")


def test_spec_empty(case):
    r = invoke("run", case.text(""))
    expect(r, 2, "the spec file is empty", fix="mapping")
    assert tree(case.root) == set()


def test_spec_yaml_syntax_error(case):
    r = invoke("run", case.text("name: t\ninputs: [a.png, b.png\nscale: 2\n"))
    expect(r, 2, "YAML syntax error", fix="check the YAML near line")
    assert tree(case.root) == set()


def test_spec_unknown_key(case):
    r = invoke("run", case.spec(iteratons=10))
    expect(r, 2, "unknown key 'iteratons'", fix="did you mean 'iterations'")
    assert tree(case.root) == set()


def test_spec_wrong_type(case):
    r = invoke("run", case.spec(scale="two"))
    expect(r, 2, "scale: expected an integer, got 'two'", fix="write an integer")


def test_spec_out_of_range(case):
    r = invoke("validate", case.spec(scale=0))
    expect(r, 2, "scale: must be ≥ 1 (got 0)", fix="use a value ≥ 1")


def test_spec_duplicate_key(case):
    r = invoke("validate", case.text("name: t\nscale: 2\nscale: 3\n"))
    expect(r, 2, "duplicate key 'scale'", fix="keep only one")


def test_unknown_component(case):
    r = invoke("run", case.spec(focus_measure={"name": "doublereblur"}))
    expect(r, 2, "unknown focus measure 'doublereblur'", fix="did you mean 'double_reblur'")
    assert tree(case.root) == set()


def test_iterations_zero_is_refused(case):
    r = invoke("run", case.spec(iterations=0))
    expect(r, 2, "iterations", "at least 1", fix="method: composite")
    assert tree(case.root) == set()


@pytest.mark.parametrize("value", ["nan", ".nan", ".inf"])
def test_non_finite_learning_rate(case, value):
    r = invoke("validate", case.spec(), "--set", f"optimizer.lr={value}")
    expect(r, 2, "optimizer.lr", "finite number", fix="finite number")
    assert "must be ≤" not in r.all


def test_non_finite_component_parameter(case):
    r = invoke("validate", case.spec(), "--set", "focus_measure.params.threshold=.nan")
    expect(r, 2, "focus_measure.params.threshold", "finite number")


def test_unclosed_list_override_gets_a_fix_that_closes_it(case):
    r = invoke("validate", case.spec(), "--set", "inputs=[a.png,b.png")
    expect(r, 2, "cannot parse the value", fix="--set 'inputs=[a.png,b.png]'")
    assert "\"[a.png" not in r.stderr          # the old fix turned the list into a string


def test_malformed_override(case):
    r = invoke("validate", case.spec(), "--set", "iterations:50")
    expect(r, 2, "malformed override 'iterations:50'", fix="--set iterations=50")


# ---------------------------------------------------------------------------------------- the output location


def test_output_parent_is_a_file_fails_before_any_work(case, monkeypatch):
    (case.root / "blocker").write_text("a file where a folder is needed\n")
    spec = case.spec(output={"dir": str(case.root / "blocker" / "runs" / "x")})
    for cmd in (["validate", spec], ["run", spec, "--dry-run"]):
        r = invoke(*cmd, *sets(FAST))
        expect(r, 2, "output.dir", "blocker", "is a file", fix="output.dir")
    calls = []
    monkeypatch.setattr("fusionkit.runner.fuse", lambda *a, **k: calls.append(1))
    r = invoke("run", spec, *sets(FAST))
    expect(r, 1, "blocker", "is a file", fix="output.dir")
    assert calls == []                                   # nothing was computed
    assert tree(case.root) == {"blocker"}


def test_unwritable_output_folder_fails_before_any_work(case, monkeypatch):
    """A folder the user may not write into (simulated: tests often run as root, who may write anywhere)."""
    locked = case.root / "locked"
    locked.mkdir()
    real_access, real_mkdir = os.access, os.mkdir

    def access(path, mode, *a, **k):
        return False if Path(path) == locked and mode & os.W_OK else real_access(path, mode, *a, **k)

    def mkdir(path, *a, **k):
        if Path(path).parent == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "mkdir", mkdir)
    spec = case.spec(output={"dir": str(locked / "x")})
    r = invoke("validate", spec, *sets(FAST))
    expect(r, 2, "output.dir", "not writable", fix="output.dir")
    calls = []
    monkeypatch.setattr("fusionkit.runner.fuse", lambda *a, **k: calls.append(1))
    r = invoke("run", spec, *sets(FAST))
    expect(r, 1, str(locked), "not writable", fix="output.dir")
    assert calls == [] and tree(case.root) == {"locked/"}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a 0555 folder")
def test_read_only_folder_for_real(case):
    locked = case.root / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = invoke("run", case.spec(output={"dir": str(locked / "x")}), *sets(FAST))
        expect(r, 1, str(locked), fix="output.dir")
        assert tree(case.root) == {"locked/"}
    finally:
        locked.chmod(0o755)


def test_too_little_space_fails_before_any_work(case, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    calls = []
    monkeypatch.setattr("fusionkit.runner.fuse", lambda *a, **k: calls.append(1))
    r = invoke("run", case.spec(), *sets(FAST))
    expect(r, 1, "not enough free space", "need about", fix="free")
    assert calls == [] and tree(case.root) == set()


def test_disk_full_while_writing_leaves_no_run_folder(case, monkeypatch):
    """ENOSPC in the middle of writing (from the third file on): a clear message, and nothing that looks like a
    run."""
    import fusionkit.io as fio

    real = fio._write_fd
    count = [0]

    def write(fd, data):
        count[0] += 1
        if count[0] >= 3:     # the disk is full from the third file on
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(fio, "_write_fd", write)
    r = invoke("run", case.spec(), *sets(FAST))
    expect(r, 1, "no space left on the device", "need about", fix="free")
    assert "unexpected" not in r.all and "report it" not in r.all
    assert tree(case.root) == set()
    r = invoke("run", case.spec(), *sets(FAST))            # a second try leaves no empty run-2/ either
    assert r.exit_code == 1 and tree(case.root) == set()


def tmpfs(path: Path, size: str, *options: str) -> bool:
    path.mkdir()
    opts = ",".join((f"size={size}",) + options)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def mounts():
    made: list[Path] = []
    yield made
    for m in made:
        subprocess.run(["umount", str(m)], capture_output=True)


def test_really_full_disk(case, mounts, pair):
    """A real 96 KiB file system that the outputs do not fit in (needs root and mount; skipped otherwise)."""
    disk = case.root / "disk"
    if shutil.which("mount") is None or not tmpfs(disk, "96k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount): the simulated full disk covers it")
    mounts.append(disk)
    (disk / "filler").write_bytes(b"\0" * 70_000)
    big = [str(case.root / "in" / f"{n}.png") for n in "ab"]
    r = invoke("run", case.spec(inputs=big, output={"dir": str(disk / "out")}), *sets(FAST + ["scale=4"]))
    expect(r, 1, "space", fix="free")
    assert "unexpected" not in r.all
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_read_only_file_system(case, mounts):
    disk = case.root / "ro"
    if shutil.which("mount") is None or not tmpfs(disk, "1m", "ro"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root and mount)")
    mounts.append(disk)
    spec = case.spec(output={"dir": str(disk / "out")})
    r = invoke("validate", spec, *sets(FAST))
    expect(r, 2, "output.dir", "read-only", fix="output.dir")
    r = invoke("run", spec, *sets(FAST))
    expect(r, 1, "read-only", fix="output.dir")
    assert list(disk.iterdir()) == []


def test_existing_run_folder_is_never_overwritten(case):
    (case.root / "out").mkdir()
    (case.root / "out" / "fused.png").write_bytes(b"earlier result")
    r = invoke("run", case.spec(), *sets(FAST))
    expect(r, 0)
    assert (case.root / "out" / "fused.png").read_bytes() == b"earlier result"
    assert r.stdout.strip() == str(case.root / "out-2")
    assert {p for p in tree(case.root) if p.startswith("out-2")} == {p.replace("out", "out-2", 1) for p in RUN_FILES}


def test_existing_empty_folder_is_not_reused(case):
    (case.root / "out").mkdir()
    r = invoke("run", case.spec(), *sets(FAST))
    expect(r, 0)
    assert r.stdout.strip() == str(case.root / "out-2") and list((case.root / "out").iterdir()) == []


def test_run_folders_are_allocated_exclusively(tmp_path):
    first, second = new_run_dir(tmp_path / "run"), new_run_dir(tmp_path / "run")
    assert first != second and first.is_dir() and second.is_dir()


def test_concurrent_allocations_never_share_a_folder(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: new_run_dir(tmp_path / "run"), range(32)))
    assert len(set(got)) == 32


# -------------------------------------------------------------------------------------------------- file modes


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                         (0o002, 0o664, 0o775)])
def test_outputs_honour_the_umask(case, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        r = invoke("run", case.spec(), *sets(FAST))
    finally:
        os.umask(old)
    expect(r, 0)
    for rel in RUN_FILES:
        mode = stat.S_IMODE((case.root / rel).stat().st_mode)
        assert mode == (dir_mode if rel.endswith("/") else file_mode), (rel, oct(mode))


def test_atomic_writes_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


# ------------------------------------------------------------------------------------------------- plugins


BROKEN = '''
import libfocus_that_is_not_installed
'''


def fake_dist(site: Path, dist: str, module: str, source: str) -> None:
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[fusionkit]\n{module} = {module}\n")


def test_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch):
    from fusionkit.registry import build_catalog

    site = tmp_path / "site"
    site.mkdir()
    fake_dist(site, "fusionkit-libfocus", "fk_libfocus", BROKEN)
    monkeypatch.syspath_prepend(str(site))
    catalog = build_catalog(allow=["fusionkit-libfocus"])
    assert [f.dist for f in catalog.failures] == ["fusionkit-libfocus"]
    assert "libfocus_that_is_not_installed" in catalog.failures[0].cause
    assert catalog.has("focus_measure", "double_reblur")
    hint = catalog.unknown_hint("focus_measure", "libfocus_sharp")
    assert "failed to load" in hint and "fusionkit-libfocus" in hint


def test_load_plugins_entry_that_matches_nothing_is_reported(monkeypatch):
    from fusionkit.registry import build_catalog

    monkeypatch.setenv("FUSIONKIT_LOAD_PLUGINS", "fusionkit-sharpnes")
    catalog = build_catalog()
    causes = [f.cause for f in catalog.failures if "FUSIONKIT_LOAD_PLUGINS" in f.plugin + f.cause]
    assert causes and "fusionkit-sharpnes" in causes[0]
    r = invoke("plugins", "list", env={"FUSIONKIT_LOAD_PLUGINS": "fusionkit-sharpnes"})
    assert r.exit_code == 0 and "fusionkit-sharpnes" in r.stdout and "FUSIONKIT_LOAD_PLUGINS" in r.stdout


def test_a_misbehaving_component_is_named(case):
    from fusionkit.interfaces import FocusMeasure
    from fusionkit.registry import build_catalog, hookimpl

    class Negative(FocusMeasure):
        """Returns negative maps."""

        name = "negative"
        summary = "broken on purpose"
        reference = "none (test double)"

        def __call__(self, images):
            return -images

    class Provider:
        @hookimpl
        def register_focus_measures(self, register):
            register(Negative)

    catalog = build_catalog(extra_plugins=[(Provider(), "fusionkit-negative")])
    with pytest.raises(Exception) as e:
        fusionkit.run({"name": "t", "inputs": case.inputs, "output": {"dir": str(case.root / "out")},
                       "focus_measure": {"name": "negative"}}, FAST, catalog=catalog)
    assert "negative" in str(e.value) and "non-finite or negative maps" in str(e.value)
    assert tree(case.root) == set()


# --------------------------------------------------------------------------------------- what a folder says


def test_a_complete_run_says_so(case):
    r = invoke("run", case.spec(), *sets(FAST))
    expect(r, 0)
    m = json.loads((case.root / "out" / "manifest.json").read_text())
    assert m["status"] == "ok" and m["complete"] is True
    listed = {"out/" + v for k, v in m["outputs"].items() if isinstance(v, str)}
    listed |= {"out/" + v for v in m["outputs"].get("maps", [])}
    assert listed | {"out/", "out/maps/", "out/manifest.json"} == RUN_FILES


def test_nan_stop_keeps_the_last_good_iterate_and_says_so(case, pair):
    """A loss that turns NaN: the run fails (exit 1) with the fix, and its folder says it is not complete."""
    from test_engine import _Plugin

    from fusionkit.registry import build_catalog

    catalog = build_catalog(extra_plugins=[(_Plugin(), "test-nan")])
    spec = {"name": "t", "inputs": case.inputs, "output": {"dir": str(case.root / "out")},
            "losses": [{"name": "nan_after"}]}
    with pytest.raises(RunError, match="non-finite") as e:
        fusionkit.run(spec, [*QUICK, "iterations=40", "decision_embedding.enabled=false"], catalog=catalog)
    assert "optimizer.lr" in e.value.render()
    m = json.loads((case.root / "out" / "manifest.json").read_text())
    assert m["status"] == "stopped_early" and m["complete"] is False
    assert (case.root / "out" / "fused.png").exists() and (case.root / "out" / "loss.csv").exists()

"""The CLI as people meet it (issue 13.1-13.4): progress in logs, 80 columns, data on stdout and messages on
stderr, and hints that are right (relative paths, shell quoting, failed plugins)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from fusionkit.cli import cli
from fusionkit.engine import ProgressEvent
from fusionkit.registry import build_catalog, default_catalog, hookimpl

from conftest import QUICK

ROOT = Path(__file__).resolve().parents[1]
SETS = [x for q in QUICK for x in ("--set", q)]


def invoke(*args, env=None, **kw):
    """The CLI as a piped process sees it: stdout and stderr apart, no terminal, 80 columns."""
    env = {"COLUMNS": "80", "FUSIONKIT_DEBUG": "", **(env or {})}
    return CliRunner(**kw).invoke(cli, list(args), obj={}, catch_exceptions=False, env=env)


def write_spec(tmp_path, pair_files, **extra):
    spec = {"name": "cli", "inputs": [str(p) for p in pair_files], "output": {"dir": str(tmp_path / "out")}, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# ------------------------------------------------------------------------------------------- 13.1 progress in logs


def test_a_piped_run_prints_plain_progress_lines(tmp_path, pair_files):
    spec = write_spec(tmp_path, pair_files)
    r = invoke("run", str(spec), *SETS, env={"FUSIONKIT_PROGRESS_SECONDS": "0"})
    assert r.exit_code == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.lstrip().startswith("fusion")]
    assert len(lines) >= 5, r.stderr                        # the run reports as it goes, not only at the end
    for ln in lines:                                        # each line carries every value: nothing wrapped
        assert re.search(r"fusion\s+\d+/60\s+loss \d\.\d+e[-+]\d+\s+elapsed \d+:\d\d:\d\d\s+ETA \d+:\d\d:\d\d$",
                         ln), ln
    assert "\x1b[" not in r.stderr                          # no terminal control sequences in a log
    iterations = [int(re.search(r"(\d+)/60", ln).group(1)) for ln in lines]
    assert iterations == sorted(iterations) and iterations[-1] == 60


def test_plain_progress_prints_at_an_interval():
    from fusionkit.display import PlainProgress

    """Stage changes and stage ends always print; in between, one line per interval."""
    printed: list[str] = []
    clock = [0.0]
    p = PlainProgress(interval=10.0, write=printed.append, clock=lambda: clock[0])
    p(ProgressEvent("focus", 0, 1))
    p(ProgressEvent("focus", 1, 1))
    for it in range(1, 1001):
        clock[0] = it * 0.1                                  # 0.1 s per iteration: 100 s in all
        p(ProgressEvent("fusion", it, 1000, 0.5))
    fusion = [ln for ln in printed if ln.lstrip().startswith("fusion")]
    assert len([ln for ln in printed if ln.lstrip().startswith("focus")]) == 2
    assert 10 <= len(fusion) <= 12, fusion                   # about every 10 s, plus the first and the last
    assert "1000/1000" in fusion[-1] and "ETA 0:00:00" in fusion[-1]
    assert "ETA 0:01:30" in fusion[0] or "ETA" in fusion[0]


# ------------------------------------------------------------------------------------ 13.3 data vs messages


def test_dry_run_output_is_a_spec_that_validates(tmp_path, pair_files, monkeypatch):
    spec = write_spec(tmp_path, pair_files, name="a-rather-long-spec-name-that-would-wrap-at-eighty-columns")
    long_dir = tmp_path / ("a-deep-output-folder-" * 5) / "runs"
    r = invoke("run", str(spec), "--set", f"output.dir={long_dir}", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert "spec is valid" in r.stderr and "spec is valid" not in r.stdout
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(r.stdout)
    assert yaml.safe_load(r.stdout)["output"]["dir"] == str(long_dir)
    r2 = invoke("validate", str(resolved))
    assert r2.exit_code == 0, r2.stderr
    assert r2.stdout == "" and "valid" in r2.stderr


def test_a_run_prints_its_folder_on_stdout_and_the_rest_on_stderr(tmp_path, pair_files):
    spec = write_spec(tmp_path, pair_files)
    r = invoke("run", str(spec), *SETS)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "out")
    assert "done in" in r.stderr and "fused" in r.stderr


def test_errors_go_to_stderr(tmp_path):
    r = invoke("validate", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2 and r.stdout == "" and "spec file not found" in r.stderr


# ---------------------------------------------------------------------------------------------- 13.2 80 columns


def test_plugins_list_never_truncates_names_at_80_columns():
    r = invoke("plugins", "list")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    catalog = default_catalog()
    for info in catalog.all():
        row = [ln for ln in lines if re.search(rf"^{info.kind}\s+{re.escape(info.name)}\s", ln)]
        assert len(row) == 1, (info.name, r.stdout)
        assert f"{info.dist} {info.version}" in row[0]
    assert len(lines) <= len(catalog.all()) + 12             # one line per component, not a wrapped table
    assert "…" not in r.stdout                               # piped: nothing is cut


def test_plugins_list_grep_finds_a_component():
    r = invoke("plugins", "list")
    assert [ln.split()[1] for ln in r.stdout.splitlines() if "joint_gradient" in ln] == ["joint_gradient"]


def test_plugins_show_puts_the_parameter_table_first_and_keeps_names_whole():
    r = invoke("plugins", "show", "double_reblur")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    params = default_catalog().get("focus_measure", "double_reblur").params.model_fields
    for name in params:
        assert re.search(rf"^\s+{name}: ", out, re.M), f"{name} is cut or missing:\n{out}"
    table_at = out.index("gaussian_kernel")
    doc_at = out.index("Eq. (11)")                          # the long docstring comes after the table
    assert table_at < doc_at
    assert len(out[:table_at].splitlines()) <= 8            # a short header before the table
    assert max(len(ln) for ln in out.splitlines()) <= 80


# ----------------------------------------------------------------------------------------------- 13.4 hints


def test_an_input_given_with_set_is_said_to_be_relative_to_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "s.yaml"
    spec.write_text("name: x\n")
    r = invoke("run", str(spec), "--set", "inputs=[near.png,far.png]")
    assert r.exit_code == 1
    assert "near.png" in r.stderr and str(tmp_path / "near.png") in r.stderr
    assert "current folder" in r.stderr and "spec file's folder" not in r.stderr


def test_an_input_in_the_spec_is_said_to_be_relative_to_the_spec_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "s.yaml"
    spec.write_text("inputs: [near.png, far.png]\n")
    r = invoke("run", str(spec))
    assert r.exit_code == 1
    assert str(tmp_path / "specs" / "near.png") in r.stderr and "spec file's folder" in r.stderr


GLOB = re.compile(r"--set\s+(?!['\"])(\S*[\[\]{}*?]\S*)")
GLOB_IN_STRING = re.compile(r"--set\s+(?!['\"])([^\s'\"]*)")     # in Python source: up to the string's end


def shell_examples() -> list[tuple[str, str]]:
    found = []
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.yaml")),
             *sorted((ROOT / "examples").rglob("*.md")), *sorted((ROOT / "fusionkit").rglob("*.py"))]
    for f in files:
        pattern = GLOB_IN_STRING if f.suffix == ".py" else GLOB
        for m in pattern.finditer(f.read_text()):
            token = m.group(1)
            if f.suffix == ".py":  # an f-string's {placeholder} is not printed; what is around it is
                token = re.sub(r"\{[A-Za-z_][\w.()\[\]'\"]*\}", "", token)
            if re.search(r"[\[\]{}*?]", token):
                found.append((str(f.relative_to(ROOT)), m.group(0)))
    return found


def test_every_set_with_brackets_is_quoted_for_the_shell():
    """zsh (macOS's default shell) reads an unquoted [..] or {..} as a file pattern: `no matches found`."""
    assert shell_examples() == []


def test_hints_quote_their_set_examples(tmp_path):
    r = invoke("validate", str(ROOT / "examples" / "dfp-x2.yaml"), "--set", "losses[joint_gradient.weight=0",
               "--set", "inputs=[a.png]")
    assert r.exit_code == 2
    assert GLOB.findall(r.stderr) == [], r.stderr


class _Broken:
    @hookimpl
    def register_focus_measures(self, register):
        raise ImportError("No module named 'libfocus'")


def test_an_unknown_component_names_the_plugins_that_failed(tmp_path):
    from fusionkit.validation import load_spec
    from fusionkit.errors import SpecError

    catalog = build_catalog(extra_plugins=[(_Broken(), "fusionkit-libfocus")], strict=False)
    with pytest.raises(SpecError) as e:
        load_spec({"inputs": ["a.png", "b.png"], "focus_measure": {"name": "libfocus_sharp"}}, catalog=catalog)
    text = e.value.render()
    assert "failed to load" in text and "fusionkit-libfocus" in text and "libfocus" in text


def test_json_output_stays_json_when_piped():
    r = invoke("plugins", "list", "--json")
    assert json.loads(r.stdout)["components"]


def test_training_progress_in_a_log_says_when_each_phase_begins():
    from fusionkit.display import PlainProgress, TrainProgress
    from fusionkit.training.loop import TrainEvent

    lines: list[str] = []
    shown = TrainProgress()
    shown.rich, shown.plain = False, PlainProgress(interval=0.0, write=lines.append)
    shown(TrainEvent("start", 0, 20, message="runs/x"))
    shown(TrainEvent("phase", 0, 20, message="phase fapn: steps 1-10, training fapn"))
    shown(TrainEvent("step", 1, 20, loss=0.5, lr=1e-3, crops_per_s=3.0))
    shown(TrainEvent("phase", 10, 20, message="phase srn: steps 11-20, training srn"))
    assert "phase fapn: steps 1-10, training fapn" in lines
    assert lines.index("phase srn: steps 11-20, training srn") > lines.index("phase fapn: steps 1-10, training fapn")

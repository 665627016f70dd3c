"""The light-field front end: view-grid parsing and its errors, the spec's `light_field:` section and a run end to
end that writes the refocused slices. The refocusing math and the `view_grid` component itself are tested in
tests/components/test_light_fields.py, with the synthetic-plane helpers defined here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter

from fusionkit.cli import cli
from fusionkit.errors import InputError, SpecError
from fusionkit.interfaces import KINDS, LightFieldSource
from fusionkit.io import write_image
from fusionkit.registry import default_catalog
from fusionkit.runner import run
from fusionkit.validation import load_spec
from fusionkit_plugins.light_fields import ViewGrid, locate, read_views, refocus

torch.set_num_threads(1)


def texture(size: int, seed: int = 0, sigma: float = 1.5) -> np.ndarray:
    """A smooth random texture in [0, 1] (band-limited, so cubic interpolation is accurate on it)."""
    t = gaussian_filter(np.random.default_rng(seed).random((size, size)), sigma)
    return ((t - t.min()) / (t.max() - t.min())).astype(np.float32)


def plane_views(d: float, grid: int = 5, size: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Views ``[U, V, size, size]`` of a fronto-parallel plane at disparity ``d`` and its centre view.

    Rendered at 2x with integer shifts of ``2*d*(view offset)`` high-res pixels (so ``d`` must be a multiple of
    0.5), then 2x2 block-averaged: an exact sub-pixel shift at low resolution, not made by the code under test.
    Convention: the point at ``p`` in the centre view is at ``p - (r - r0)*d`` in view ``(r, c)``.
    """
    hi_shift = 2 * d
    assert float(hi_shift).is_integer()
    r0 = (grid - 1) // 2
    margin = int(abs(hi_shift) * r0) + 2
    big = texture(2 * size + 2 * margin, seed)
    views = np.empty((grid, grid, size, size), np.float32)
    for r in range(grid):
        for c in range(grid):
            oy, ox = margin + int((r - r0) * hi_shift), margin + int((c - r0) * hi_shift)
            crop = big[oy:oy + 2 * size, ox:ox + 2 * size]
            views[r, c] = crop.reshape(size, 2, size, 2).mean(axis=(1, 3))
    return views, views[r0, r0]


def psnr(a: np.ndarray, b: np.ndarray, crop: int = 6) -> float:
    a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def refocused(views: np.ndarray, ds: list[float]) -> np.ndarray:
    t = torch.from_numpy(views)[:, :, None]          # [U, V, 1, H, W]
    return refocus(t, ds)[:, 0].numpy()


# ------------------------------------------------------------------------------------------------ view files


def write_views(folder, views: np.ndarray, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    u, v = views.shape[:2]
    for r in range(u):
        for c in range(v):
            write_image(folder / names(r, c), views[r, c][:, :, None], 8)


def hci_names(r, c, cols=3):
    return f"input_Cam{r * cols + c:03d}.png"


def test_index_pattern_row_major_and_column_major(tmp_path):
    views, _ = plane_views(0.5, grid=3, size=16)
    write_views(tmp_path / "lf", views, hci_names)
    g = read_views(tmp_path / "lf", "input_Cam{index:03d}.png", grid=(3, 3))
    assert g.grid == (3, 3) and g.files[1][2] == "input_Cam005.png" and g.bit_depth == 8
    np.testing.assert_allclose(g.views[1, 2, :, :, 0], views[1, 2], atol=1 / 255)
    g = read_views(tmp_path / "lf", "auto", grid=(3, 3), order="column_major")
    assert g.files[1][2] == "input_Cam007.png" and g.pattern == "input_Cam{index:03d}.png"
    g = read_views(tmp_path / "lf", grid=(3, 3), flip_rows=True, flip_cols=True)
    assert g.files[0][0] == "input_Cam008.png"


def test_row_col_pattern_reads_the_grid_and_stride_from_the_names(tmp_path):
    views, _ = plane_views(0.5, grid=3, size=16)
    write_views(tmp_path / "lf", views, lambda r, c: f"{2 + 3 * r:02d}_{2 + 3 * c:02d}.png")
    (tmp_path / "lf" / "notes.txt").write_text("not a view")
    pattern, paths, labels = locate(tmp_path / "lf")
    assert pattern == "{row:02d}_{col:02d}.png"
    assert [p.name for p in paths[1]] == ["05_02.png", "05_05.png", "05_08.png"] and labels[2][0] == (8, 2)


def test_index_grid_errors(tmp_path):
    views, _ = plane_views(0.5, grid=3, size=16)
    write_views(tmp_path / "lf", views, hci_names)
    with pytest.raises(InputError, match=r"grid cannot be read from the names") as exc:
        read_views(tmp_path / "lf", "input_Cam{index:03d}.png")
    assert "grid: [rows, cols]" in exc.value.hint
    (tmp_path / "lf" / "input_Cam004.png").unlink()
    with pytest.raises(InputError, match=r"1 are missing: input_Cam004\.png"):
        read_views(tmp_path / "lf", grid=(3, 3))
    with pytest.raises(InputError, match=r"more than a 2x2 grid"):
        read_views(tmp_path / "lf", grid=(2, 2))


def test_row_col_grid_errors(tmp_path):
    views, _ = plane_views(0.5, grid=3, size=16)
    names = lambda r, c: f"{2 + 3 * r:02d}_{2 + 3 * c:02d}.png"  # noqa: E731
    write_views(tmp_path / "lf", views, names)
    (tmp_path / "lf" / "05_08.png").unlink()
    with pytest.raises(InputError, match=r"complete 3x3 grid .*1 missing: 05_08\.png"):
        read_views(tmp_path / "lf")
    write_views(tmp_path / "gap", views, lambda r, c: f"{(2, 5, 11)[r]:02d}_{c:02d}.png")
    with pytest.raises(InputError, match=r"row numbers .* are not evenly spaced: found 2, 5, 11; rows 8 are "):
        read_views(tmp_path / "gap")
    with pytest.raises(InputError, match=r"`grid` says 2x2"):
        write_views(tmp_path / "ok", views, names)
        read_views(tmp_path / "ok", grid=(2, 2))


def test_mixed_sizes_and_nothing_matched(tmp_path):
    views, _ = plane_views(0.5, grid=3, size=16)
    write_views(tmp_path / "lf", views, hci_names)
    write_image(tmp_path / "lf" / "input_Cam007.png", np.zeros((20, 16, 1), np.float32))
    with pytest.raises(InputError, match=r"differ in size: 16x16: .*\(8\); 16x20: input_Cam007\.png \(1\)"):
        read_views(tmp_path / "lf", grid=(3, 3))
    (tmp_path / "other").mkdir()
    for n in ("a.png", "b.png", "readme.md"):
        (tmp_path / "other" / n).write_bytes(b"")
    with pytest.raises(InputError, match=r"found 2 image file\(s\): a\.png, b\.png") as exc:
        read_views(tmp_path / "other")
    assert "pattern" in exc.value.hint
    with pytest.raises(InputError, match=r"matches the view pattern 'view_\{row\}_\{col\}\.png'"):
        read_views(tmp_path / "other", "view_{row}_{col}.png")
    with pytest.raises(InputError, match=r"placeholders"):
        read_views(tmp_path / "other", "view_{row}.png")
    with pytest.raises(InputError, match=r"light-field folder not found"):
        read_views(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------ the component


def test_registry_lists_the_kind():
    assert KINDS["light_field"] is LightFieldSource
    info = default_catalog().get("light_field", "view_grid")
    assert info.cls is ViewGrid and info.dist == "fusionkit"
    result = CliRunner().invoke(cli, ["plugins", "list", "--kind", "light_field", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["components"][0]["name"] == "view_grid"


# ------------------------------------------------------------------------------------------------ spec and run


def lf_spec(tmp_path, **extra) -> dict:
    views, _ = plane_views(0.5, grid=3, size=32)
    rgb = np.repeat(views[..., None], 3, axis=-1)
    for r in range(3):
        for c in range(3):
            write_image(tmp_path / "views" / f"{r:02d}_{c:02d}.png", rgb[r, c], 8)
    spec = {"name": "lf", "scale": 2, "method": "dfp", "iterations": 3, "device": "cpu",
            "focus_measure": {"name": "max_gradient"}, "decision_embedding": {"enabled": False},
            "light_field": {"name": "view_grid", "path": "views", "params": {"disparities": [0.5, -1.0]}},
            "output": {"dir": str(tmp_path / "runs" / "lf")}}
    spec.update(extra)
    path = tmp_path / "lf.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_spec_with_light_field_runs_end_to_end_and_saves_the_slices(tmp_path):
    path = lf_spec(tmp_path)
    resolved = load_spec(path)
    assert resolved.spec.light_field.path == str(tmp_path / "views")
    assert resolved.spec.light_field.params["border"] == "normalise"     # defaults filled in
    again = load_spec(yaml.safe_load(resolved.to_yaml()) | {})           # the resolved spec loads again
    assert again.spec.light_field == resolved.spec.light_field
    result = run(resolved)
    m = result.manifest
    assert result.fused.shape == (64, 64, 3)
    assert m["outputs"]["stack"] == ["stack/slice_00_d+0.50.png", "stack/slice_01_d-1.00.png"]
    assert m["inputs"]["paths"] == m["outputs"]["stack"] and "refocus" in m["timings"]
    assert m["light_field"]["disparities"] == [0.5, -1.0] and m["light_field"]["grid"] == [3, 3]
    assert "light_field:view_grid" in m["components"]
    for name in m["outputs"]["stack"]:
        assert (result.run_dir / name).is_file()
    saved = json.loads((result.run_dir / "manifest.json").read_text())
    assert saved["light_field"]["centre_view"] == "01_01.png"


def test_cli_dry_run_and_validate_with_a_light_field(tmp_path):
    path = lf_spec(tmp_path)
    result = CliRunner().invoke(cli, ["run", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "light_field:" in result.output and "disparities:" in result.output
    result = CliRunner().invoke(cli, ["validate", str(path), "--set", "light_field.params.slices=4"])
    assert result.exit_code == 0, result.output


def test_spec_errors_both_neither_unknown_and_bad_params(tmp_path):
    path = lf_spec(tmp_path, inputs=["a.png", "b.png"])
    with pytest.raises(SpecError, match=r"both `inputs` and `light_field`"):
        load_spec(path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nlight_field:\n  name: view_gird\n  path: views\n")
    with pytest.raises(SpecError, match=r"bad\.yaml:3  light_field\.name: unknown light field 'view_gird'(.|\n)*"
                                        r"did you mean 'view_grid'"):
        load_spec(bad)
    bad.write_text("name: bad\nlight_field:\n  path: views\n  params:\n    slices: 1\n    wat: 2\n")
    with pytest.raises(SpecError) as exc:
        load_spec(bad)
    text = exc.value.render()
    assert "bad.yaml:5  light_field.params.slices: must be ≥ 2 (got 1)" in text
    assert "bad.yaml:6  light_field.params.wat: unknown key 'wat'" in text
    bad.write_text("name: bad\nlight_field: {name: view_grid}\n")
    with pytest.raises(SpecError, match=r"missing required key 'path'"):
        load_spec(bad)
    neither = tmp_path / "neither.yaml"
    neither.write_text("name: neither\n")
    with pytest.raises(SpecError, match=r"at least 2 input images, got 0(.|\n)*light_field"):
        load_spec(neither)


def test_run_reports_a_broken_light_field_clearly(tmp_path):
    path = lf_spec(tmp_path)
    (tmp_path / "views" / "01_01.png").unlink()
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert "missing: 01_01.png" in result.output and "Fix:" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["hci-antinous-x2.yaml", "lytro-illum-x2.yaml"])
def test_plenoptic_examples_validate_and_find_their_views(name):
    from pathlib import Path
    spec = Path(__file__).resolve().parents[1] / "examples" / "plenoptic" / name
    resolved = load_spec(spec)
    folder = Path(resolved.spec.light_field.path)
    if not folder.is_dir():
        pytest.skip(f"shared light-field data not present: {folder}")
    p = resolved.spec.light_field.params
    _, paths, _ = locate(folder, p["pattern"], tuple(p["grid"]) if p["grid"] else None, p["order"])
    assert (len(paths), len(paths[0])) == ((9, 9) if "hci" in name else (5, 5))
    assert ViewGrid(p).planned_disparities()[0] == (-3.0 if "hci" in name else -1.0)

"""`fusionkit report FOLDER` (issue 13.9): one self-contained HTML page for a run, an evaluation or a study.

The fast tests parse the page: no external resource, every image a PNG that decodes, the sections there. The slow
test loads it in a real headless browser (Debian's chromium, through scripts/check_report.py): no console error,
every image decoded, a screenshot; it is skipped, with the reason, where chromium is not installed.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from fusionkit.cli import cli
from fusionkit.io import write_image

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["device=cpu", "iterations=12", "decision_embedding.iterations=4", "generator.params.channels=[8,16]",
         "generator.params.skip=[4,4]", "decision_embedding.generator.params.channels=[8,16]",
         "decision_embedding.generator.params.skip=[0,4]"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={}, catch_exceptions=False,
                              env={"FUSIONKIT_DEBUG": ""})


class Page(HTMLParser):
    """Every <img> src, every other src/href, the headings and the visible text of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self.scripts = 0
        self._in_heading = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("alt", ""), a.get("src", "")))
        elif tag == "script":
            self.scripts += 1
        for key in ("href", "src"):
            if key in a and tag != "img":
                self.links.append(a[key])
        self._in_heading = tag in ("h1", "h2")

    def handle_endtag(self, tag):
        if tag in ("h1", "h2"):
            self._in_heading = False

    def handle_data(self, data):
        if self._in_heading and data.strip():
            self.headings.append(data.strip())
        self.text.append(data)


def check_page(path: Path) -> Page:
    import cv2

    page = Page(path.read_text(encoding="utf-8"))
    assert page.links == [] and page.scripts == 0          # self-contained, nothing to fetch or run
    assert page.images
    for alt, src in page.images:
        assert src.startswith("data:image/png;base64,"), alt
        img = cv2.imdecode(np.frombuffer(base64.b64decode(src.split(",", 1)[1]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.size > 0, f"image {alt!r} does not decode"
    return page


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, pair):
    root = tmp_path_factory.mktemp("report-run")
    for name, img in (("near", pair.inputs[0]), ("far", pair.inputs[1])):
        write_image(root / f"{name}.png", img, 8)
    spec = {"name": "rep", "inputs": [str(root / "near.png"), str(root / "far.png")],
            "output": {"dir": str(root / "run")}}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    r = invoke("run", root / "spec.yaml", *[x for s in SMALL for x in ("--set", s)],
               "--set", "decision_embedding.enabled=auto")
    assert r.exit_code == 0, r.stderr
    return root / "run"


def test_a_run_report_shows_everything(run_folder):
    r = invoke("report", run_folder)
    assert r.exit_code == 0, r.stderr
    out = run_folder / "report.html"
    assert r.stdout.strip() == str(out)
    page = check_page(out)
    for h in ("Inputs", "Decision maps", "Fused image", "Zoomed crops", "Loss curves", "Manifest"):
        assert h in page.headings, page.headings
    alts = [a for a, _ in page.images]
    assert {"near.png", "far.png", "maps/map_00.png", "maps/focus_measure_01.png"} <= set(alts)
    assert any(a.startswith("fused.png") for a in alts) and "fused" in alts          # the image and its crop
    assert sum("pixels repeated" in a for a in alts) == 2                             # both inputs' crops
    text = out.read_text()
    assert "<svg" in text and "polyline" in text and "fusion loss" in text and "decision-embedding loss" in text
    body = " ".join(page.text)
    assert "seed" in body and "iterations (spec)" in body and "torch" in body


def test_an_interrupted_run_says_so(run_folder, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m.update(status="interrupted", complete=False, interrupted="interrupted at iteration 7 of 12")
    (copy / "manifest.json").write_text(json.dumps(m))
    r = invoke("report", copy, "--out", tmp_path / "r.html")
    assert r.exit_code == 0
    text = (tmp_path / "r.html").read_text()
    assert "interrupted at iteration 7 of 12" in text and "last good iterate" in text


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, pair):
    root = tmp_path_factory.mktemp("report-data")
    for i in (1, 2):
        for role, img in (("A", pair.inputs[0]), ("B", pair.inputs[1])):
            write_image(root / f"0{i}_{role}.png", img, 8)
    return root


def test_an_evaluation_report_has_the_metric_table_and_a_thumbnail_per_item(dataset, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: ev\nmethod: composite\ndecision_embedding: {enabled: false}\ndevice: cpu\n")
    r = invoke("eval", spec, dataset, "--metrics", "q_g,q_y", "--out", tmp_path / "ev")
    assert r.exit_code == 0, r.stderr
    r = invoke("report", tmp_path / "ev")
    assert r.exit_code == 0, r.stderr
    page = check_page(tmp_path / "ev" / "report.html")
    assert {"Summary", "Items"} <= set(page.headings)
    assert sorted(a for a, _ in page.images) == ["item 01", "item 02"]
    assert "q_g" in " ".join(page.text) and "q_y" in " ".join(page.text)


def test_a_study_report_has_the_variant_table_and_thumbnails_per_item_and_variant(dataset, tmp_path):
    (tmp_path / "base.yaml").write_text("name: b\nmethod: composite\ndecision_embedding: {enabled: false}\n"
                                        "device: cpu\n")
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump({
        "name": "st", "base": "base.yaml", "dataset": str(dataset), "metrics": ["q_g"],
        "grid": {"focus_measure.name": ["double_reblur", "uniform"]}}))
    r = invoke("ablate", tmp_path / "abl.yaml", "--out", tmp_path / "st")
    assert r.exit_code == 0, r.stderr
    r = invoke("report", tmp_path / "st")
    assert r.exit_code == 0, r.stderr
    page = check_page(tmp_path / "st" / "report.html")
    assert any(h.startswith("Variants") for h in page.headings) and "Plots" in page.headings
    thumbs = [a for a, _ in page.images if " / " in a]
    assert sorted(thumbs) == sorted(f"{v} / {i}" for v in ("double_reblur", "uniform") for i in ("01", "02"))
    assert "ARank" in " ".join(page.text)


def test_a_folder_that_is_none_of_these_is_refused(tmp_path):
    r = invoke("report", tmp_path)
    assert r.exit_code == 1 and "Fix:" in r.stderr and "manifest.json" in r.stderr
    r = invoke("report", tmp_path / "missing")
    assert r.exit_code == 1 and "not a folder" in r.stderr and "Traceback" not in r.stderr


def load_checker():
    spec = importlib.util.spec_from_file_location("check_report", ROOT / "scripts" / "check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_report_in_a_real_browser(run_folder, tmp_path):
    checker = load_checker()
    browser = checker.find_browser()
    if browser is None:
        pytest.skip("no chromium here (Debian: apt-get install -y chromium): the page is checked by parsing only")
    invoke("report", run_folder)
    shot = tmp_path / "report.png"
    result = checker.check(run_folder / "report.html", shot, browser)
    assert result["errors"] == [], result["errors"]
    assert result["images"] and all(w > 0 and h > 0 for _, w, h in result["images"]), result["images"]
    assert len(result["images"]) == len(check_page(run_folder / "report.html").images)
    import cv2

    png = cv2.imread(str(shot))
    assert png is not None and png.shape[0] > 600 and png.std() > 5      # a real, non-blank rendering

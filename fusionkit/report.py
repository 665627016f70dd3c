"""``fusionkit report FOLDER``: one self-contained HTML page to look at a run, an evaluation or a study.

- a run folder (``manifest.json``): its status, the inputs, the decision maps (the focus measure's and the ones
  used), the fused image, zoomed crops of the inputs and the fused image side by side (where the fused image has
  the most detail), the loss curves, and the manifest's essentials (spec, stops, seed, device, versions, timings);
- an evaluation folder (``eval.json``, from ``fusionkit eval``): the protocol, the per-metric summary, and one row
  per item with its fused thumbnail and scores;
- a study folder (``study.json``, from ``fusionkit ablate``): the per-variant table (mean ± std, ARank), the plots,
  and a thumbnail for every item and variant.

Every image is embedded as a PNG data URI and the styles are inline: the page needs nothing else (no network, no
script) and can be mailed or archived as one file. Images are shown at most 1024 px (thumbnails 192 px) wide.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable

from .errors import InputError
from .io import write_text

FULL, THUMB = 1024, 192
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.status { display: inline-block; padding: 2px 8px; border-radius: 4px; color: #fff; font-weight: 600; }
.ok { background: #2e7d32; } .warn { background: #ef6c00; } .bad { background: #c62828; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; max-width: 320px; overflow-wrap: anywhere; }
img { display: block; max-width: 100%; height: auto; border: 1px solid #ccc; background: #eee; }
img.px { image-rendering: pixelated; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } code { font-size: 12px; }
.muted { color: #777; }
"""


def write_report(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of ``folder`` (a run, evaluation or study folder) to ``out`` (default:
    ``FOLDER/report.html``, written atomically) and return its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder", "give a run folder (with manifest.json), an evaluation folder "
                                                      "(eval.json) or a study folder (study.json)")
    if (folder / "manifest.json").is_file():
        page = _run_page(folder)
    elif (folder / "eval.json").is_file():
        page = _eval_page(folder)
    elif (folder / "study.json").is_file():
        page = _study_page(folder)
    else:
        raise InputError(f"{folder} holds no manifest.json, eval.json or study.json, so it is not a run, evaluation "
                         "or study folder", "give the folder that `fusionkit run`, `eval` or `ablate` wrote")
    target = Path(out) if out else folder / "report.html"
    write_text(target, page)
    return target


# ------------------------------------------------------------------------------------------------ pieces


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}",
                         "the folder is damaged; rerun the command that wrote it") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a JSON object", "the folder is damaged; rerun the command that wrote it")
    return data


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{_e(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def _status(status: str | None) -> str:
    css = {"ok": "ok", "finished": "ok", "interrupted": "warn", "incomplete": "warn", "running": "warn"}
    return f'<span class="status {css.get(status or "", "bad")}">{_e(status or "unknown")}</span>'


def _table(head: Iterable[str], rows: Iterable[Iterable[Any]], numeric_from: int = 1) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            raw = cell[1] if isinstance(cell, tuple) and cell and cell[0] == "html" else None
            css = ' class="num"' if i >= numeric_from and raw is None and _is_number(cell) else ""
            cells.append(f"<td{css}>{raw if raw is not None else _e(_fmt(cell))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _png_uri(image, limit: int) -> str:
    """A float [H, W, C] image in [0, 1] (or uint8) as a PNG data URI, at most ``limit`` pixels wide or high."""
    import cv2
    import numpy as np

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.round(np.clip(img.astype(np.float32), 0, 1) * 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    h, w = img.shape[:2]
    if max(h, w) > limit:
        k = limit / max(h, w)
        img = cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    if img.ndim == 3:
        img = img[:, :, ::-1]  # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:  # pragma: no cover - encoding an 8-bit array does not fail
        raise InputError("could not encode an image of the report", "report it as a fusionkit bug")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _read(path: Path):
    from .io import read_image

    try:
        return read_image(path)[0]
    except InputError:
        return None


def _figure(image, caption: str, limit: int = FULL, shown: int = 256) -> str:
    """An image (at most ``limit`` px) shown at least ``shown`` px wide: small images are enlarged with their pixels
    kept sharp, so that a 48 px input or a zoomed crop can be looked at."""
    if image is None:
        return f'<figure><p class="muted">{_e(caption)}: not available</p></figure>'
    h, w = image.shape[:2]
    w = min(w, round(w * limit / max(h, w)))
    width = max(w, shown)
    css = ' class="px"' if width > w else ""
    return (f'<figure><img{css} style="width:{width}px" alt="{_e(caption)}" src="{_png_uri(image, limit)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


# ------------------------------------------------------------------------------------------------ a run


def _run_page(folder: Path) -> str:
    m = _json(folder / "manifest.json")
    spec = m.get("spec", {})
    outputs = m.get("outputs", {})
    title = f"fusionkit run {spec.get('name', folder.name)}"
    body = [f"<h1>{_e(title)} {_status(m.get('status'))}</h1>",
            f'<p class="muted"><code>{_e(folder.resolve())}</code></p>']
    if m.get("interrupted"):
        body.append(f"<p><strong>{_e(m['interrupted'])}</strong>: the images below are the last good iterate.</p>")
    if m.get("stopped_early"):
        body.append(f"<p><strong>stopped early: {_e(m['stopped_early'])}</strong>; the images below are the last "
                    "good iterate.</p>")
    inputs, names = _run_inputs(folder, m)
    fused = _read(folder / outputs["fused"]) if outputs.get("fused") else None
    body.append("<h2>Inputs</h2>")
    body.append('<div class="row">' + "".join(_figure(img, name, 512) for img, name in zip(inputs, names))
                + "</div>" if inputs else '<p class="muted">the inputs were given as arrays (not saved)</p>')
    maps = [p for p in outputs.get("maps", []) if isinstance(p, str)]
    if maps:
        body.append("<h2>Decision maps</h2>")
        body.append('<p class="muted">white: the pixel is taken from that input. <code>focus_measure_NN</code>: the '
                    "focus measure's own maps; <code>map_NN</code>: the maps the fusion used.</p>")
        body.append('<div class="row">' + "".join(_figure(_read(folder / p), p, 320, shown=200) for p in sorted(maps))
                    + "</div>")
    body.append("<h2>Fused image</h2>")
    body.append(_figure(fused, f"{outputs.get('fused', 'fused')} ({_size(m.get('output_size'))})", shown=512))
    if fused is not None and inputs:
        body.append(_crops(inputs, names, fused, int(spec.get("scale", 1) or 1)))
    body.append(_loss_section(folder, outputs))
    body.append(_essentials(m))
    return _page(title, body)


def _size(size) -> str:
    return f"{size[0]}x{size[1]}" if isinstance(size, list) and len(size) == 2 else "?"


def _run_inputs(folder: Path, m: dict) -> tuple[list, list[str]]:
    outputs = m.get("outputs", {})
    if outputs.get("stack"):  # a light field: the refocused slices were saved in the folder
        names = list(outputs["stack"])
        return [_read(folder / n) for n in names], names
    paths = m.get("inputs", {}).get("paths", [])
    if not paths or all(p.startswith("<") for p in paths):
        return [], []
    return [_read(Path(p)) for p in paths], [Path(p).name if Path(p).exists() else f"{p} (not found)" for p in paths]


def _crops(inputs: list, names: list[str], fused, scale: int) -> str:
    """The inputs (upsampled by pixel repetition) and the fused image side by side, where the fused image has the
    most detail: the window of largest gradient energy."""
    import numpy as np

    f = np.asarray(fused, dtype=np.float32)
    h, w = f.shape[:2]
    size = int(max(16, min(256, min(h, w) // 4)))
    luma = f.mean(axis=2)
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.abs(np.diff(luma, axis=1))
    energy[1:, :] += np.abs(np.diff(luma, axis=0))
    c = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    figures = []
    for img, name in zip(inputs, names):
        if img is None or img.shape[0] * scale != h or img.shape[1] * scale != w:
            continue
        up = np.repeat(np.repeat(np.asarray(img), scale, axis=0), scale, axis=1)
        figures.append(_figure(up[y:y + size, x:x + size], f"{name} (x{scale}, pixels repeated)", shown=320))
    figures.append(_figure(f[y:y + size, x:x + size], "fused", shown=320))
    return (f"<h2>Zoomed crops</h2><p class=\"muted\">{size}x{size} pixels at ({x}, {y}) of the output, where it "
            "has the most detail, shown enlarged.</p>" + '<div class="row">' + "".join(figures) + "</div>")


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _loss_section(folder: Path, outputs: dict) -> str:
    parts = []
    for key, title in (("loss_csv", "fusion loss"), ("embedding_loss_csv", "decision-embedding loss")):
        rows = _read_csv(folder / outputs[key]) if outputs.get(key) else []
        series: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            try:
                it = float(r["iteration"])
            except (KeyError, ValueError):
                continue
            for name, value in r.items():
                if name in ("iteration", "seconds"):
                    continue
                try:
                    series.setdefault(name, []).append((it, float(value)))
                except (TypeError, ValueError):
                    pass
        if series:
            parts.append(_svg_curves(series, title))
    if not parts:
        return '<h2>Loss curves</h2><p class="muted">no optimisation in this run (no loss curves)</p>'
    return "<h2>Loss curves</h2>" + '<div class="row">' + "".join(parts) + "</div>"


COLOURS = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#9e9d24")


def _svg_curves(series: dict[str, list[tuple[float, float]]], title: str, w: int = 560, h: int = 300) -> str:
    """Loss against iteration, log scale (non-positive values are left out), one line per term."""
    pts = [(x, y) for s in series.values() for x, y in s if y > 0 and math.isfinite(y)]
    if not pts:
        return f'<p class="muted">{_e(title)}: no positive values to plot</p>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = math.log10(min(p[1] for p in pts)), math.log10(max(p[1] for p in pts))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    left, right, top, bottom = 56, 130, 24, 34

    def sx(x):
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y):
        return top + (1 - (math.log10(y) - y0) / (y1 - y0)) * (h - top - bottom)

    out = [f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
           f'aria-label="{_e(title)}"><rect width="{w}" height="{h}" fill="#fff"/>',
           f'<text x="{left}" y="16" font-size="13">{_e(title)} (log scale)</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#999"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#999"/>',
           f'<text x="{left}" y="{h - 12}" font-size="11">{_fmt(x0)}</text>',
           f'<text x="{w - right}" y="{h - 12}" font-size="11" text-anchor="end">iteration {_fmt(x1)}</text>',
           f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end">{10 ** y1:.2g}</text>',
           f'<text x="{left - 4}" y="{h - bottom}" font-size="11" text-anchor="end">{10 ** y0:.2g}</text>']
    for k, (name, s) in enumerate(series.items()):
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s if y > 0 and math.isfinite(y))
        colour = COLOURS[k % len(COLOURS)]
        width = 2 if name == "total" else 1.2
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{line}"/>')
        out.append(f'<text x="{w - right + 8}" y="{top + 14 + 16 * k}" font-size="12" fill="{colour}">'
                   f"{_e(name)}</text>")
    out.append("</svg></figure>")
    return "".join(out)


def _essentials(m: dict) -> str:
    spec = m.get("spec", {})
    env = m.get("environment", {})
    inputs = m.get("inputs", {})
    device = env.get("device", {})
    rows = [("status", m.get("status")), ("complete", m.get("complete")),
            ("method", spec.get("method")), ("scale", spec.get("scale")), ("colour", spec.get("colour")),
            ("iterations (spec)", spec.get("iterations")), ("preset", spec.get("preset")),
            ("seed", m.get("seed")), ("device", f"{device.get('device', '')} {device.get('name', '')}".strip()),
            ("inputs", f"{inputs.get('count')} x {_size(inputs.get('size'))}, {inputs.get('channels')} channel(s), "
                       f"{inputs.get('bit_depth')}-bit"),
            ("output size", _size(m.get("output_size"))), ("final loss", (m.get("final_loss") or {}).get("total")),
            ("started", m.get("started")), ("finished", m.get("finished")), ("spec file", m.get("spec_file")),
            ("overrides", " ".join(m.get("overrides", [])) or None), ("fusionkit", m.get("fusionkit")),
            ("torch", env.get("packages", {}).get("torch")), ("python", env.get("python"))]
    out = ["<h2>Manifest</h2>", _table(("field", "value"), [(k, v) for k, v in rows if v not in (None, "")], 99)]
    if m.get("stops"):
        out.append(_table(("loop", "stopped because", "at iteration", "of"),
                          [(k, v.get("reason"), v.get("iteration"), v.get("planned"))
                           for k, v in m["stops"].items() if isinstance(v, dict)]))
    comps = m.get("components", {})
    if comps:
        out.append(_table(("component", "distribution", "version"),
                          [(k, v.get("dist"), v.get("version")) for k, v in comps.items()], 99))
    timings = m.get("timings", {})
    if timings:
        out.append(_table(("stage", "seconds"), list(timings.items())))
    out.append(f'<details><summary>the resolved spec</summary><pre>{_e(json.dumps(spec, indent=2))}</pre></details>')
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ an evaluation


def _rows_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return rows
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _thumb(folder: Path, run_dir: str | None, caption: str) -> tuple[str, str]:
    if not run_dir:
        return ("html", '<span class="muted">no output</span>')
    found = sorted((folder / run_dir).glob("fused.*"))
    img = _read(found[0]) if found else None
    if img is None:
        return ("html", '<span class="muted">no output</span>')
    return ("html", f'<img alt="{_e(caption)}" src="{_png_uri(img, THUMB)}" style="width:{THUMB}px">')


def _eval_page(folder: Path) -> str:
    info = _json(folder / "eval.json")
    rows = _rows_jsonl(folder / "results.jsonl")
    metrics = list(info.get("metrics", []))
    title = f"fusionkit eval {info.get('spec', {}).get('name', folder.name)}"
    body = [f"<h1>{_e(title)} {_status(info.get('status'))}</h1>",
            f'<p class="muted"><code>{_e(folder.resolve())}</code></p>',
            f"<p>protocol <strong>{_e(info.get('protocol'))}</strong> x{_e(info.get('scale'))}, dataset "
            f"<code>{_e(info.get('dataset'))}</code>, {len(rows)} of {len(info.get('items', []))} item(s) done.</p>"]
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        summary = _json(summary_path)
        body.append("<h2>Summary</h2>")
        body.append(_table(("metric", "mean", "std", "n", "better"),
                           [(k, v.get("mean"), v.get("std"), v.get("n"), "higher" if v.get("higher_is_better") else
                             "lower") for k, v in summary.get("metrics", {}).items()]))
    body.append("<h2>Items</h2>")
    table_rows = []
    for r in rows:
        table_rows.append([r.get("id"), r.get("status"), _thumb(folder, r.get("run_dir"), f"item {r.get('id')}"),
                           *[r.get("metrics", {}).get(m) for m in metrics], r.get("seconds"), r.get("error") or ""])
    body.append(_table(("item", "status", "fused", *metrics, "seconds", "error"), table_rows, 3))
    return _page(title, body)


# ------------------------------------------------------------------------------------------------ a study


def _study_page(folder: Path) -> str:
    info = _json(folder / "study.json")
    title = f"fusionkit ablate {info.get('name', folder.name)}"
    variants = info.get("variants", [])
    shorts = {v.get("name"): v.get("short") or v.get("name") for v in variants}
    body = [f"<h1>{_e(title)} {_status(info.get('status'))}</h1>",
            f'<p class="muted"><code>{_e(folder.resolve())}</code></p>',
            f"<p>{len(variants)} variant(s) x {len(info.get('items', []))} item(s); protocol "
            f"<strong>{_e(info.get('protocol'))}</strong> x{_e(info.get('scale'))}.</p>"]
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        table = _json(summary_path)
        metrics = list(table.get("metrics", {}))
        rows = []
        for row in table.get("variants", []):
            cells = []
            for m in metrics:
                st = row.get("metrics", {}).get(m, {})
                cells.append("" if st.get("mean") is None else f"{st['mean']:.4g} ± {st.get('std') or 0:.2g}")
            rows.append([shorts.get(row["variant"], row["variant"]), *cells, row.get("arank"),
                         f"{row.get('ok')}/{row.get('runs')}"])
        body.append("<h2>Variants (mean ± std over the items)</h2>")
        arrows = [f"{m} {'↑' if table['metrics'][m].get('higher_is_better') else '↓'}" for m in metrics]
        body.append(_table(("variant", *arrows, "ARank ↓", "ok"), rows))
        if table.get("best"):
            body.append(f"<p>best by ARank: <strong>{_e(shorts.get(table['best'], table['best']))}</strong></p>")
    plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    if plots:
        body.append("<h2>Plots</h2>")
        body.append('<div class="row">' + "".join(_figure(_read(p), p.name, 900, shown=0) for p in plots) + "</div>")
    records = {(r.get("variant"), str(r.get("item"))): r for r in _rows_jsonl(folder / "results.jsonl")}
    items = [str(i) for i in info.get("items", [])]
    if records:
        body.append("<h2>Fused images: items x variants</h2>")
        rows = []
        for v in variants:
            name = v.get("name")
            rows.append([shorts.get(name, name), *[
                _thumb(folder, records.get((name, i), {}).get("run_dir"), f"{shorts.get(name, name)} / {i}")
                for i in items]])
        body.append(_table(("variant", *items), rows, 99))
    return _page(title, body)

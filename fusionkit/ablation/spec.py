"""Ablation files: the YAML model, variant expansion, and validation of every variant before anything runs.

A study's variants are patches to one base pipeline spec, each patch a list of ``--set`` overrides
(``key=value`` with the dotted-key syntax of :mod:`fusionkit.specfile`). Per variant, in this order (a later
override wins): the study's ``overrides``, the named variant's patch, the grid values, the command line's ``--set``.

- ``grid`` only: the Cartesian product of the value lists (YAML key order, the last key varying fastest);
- ``variants`` only: one variant per name;
- both: every named variant is expanded by the whole grid;
- neither: a single variant ``base``.

Each variant is validated with :func:`fusionkit.validation.load_spec`; every problem of every variant is
reported at once, located in the ablation file (``file:line``) and naming the variants it affects.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..dataset import DatasetItem, discover
from ..errors import SpecError, SpecProblem
from ..evaluation import default_metrics, protocol_scale
from ..specfile import MISSING, SpecContext, dotted, json_schema, line_of, parse_key, read_yaml, shell_set, translate
from ..validation import ResolvedSpec, load_spec
NAME_PATTERN = r"^[A-Za-z0-9_.+\-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutorSettings(_Strict):
    """Where the runs execute; the command line's --executor/--workers/--scheduler override these."""

    name: Literal["local", "dask"] = Field("local", description="local: this machine (sequential, or `workers` "
                                           "processes); dask: a dask.distributed cluster")
    workers: int = Field(1, ge=1, le=1024, description="local: worker processes (1 = sequential in this process); "
                                                       "dask without a scheduler: workers of the local cluster")
    scheduler: str | None = Field(None, description="dask scheduler address, e.g. tcp://host:8786; none: a "
                                                    "local cluster is started for the study")
    threads: int | None = Field(None, ge=1, le=1024, description="torch threads per run; none: max(1, cores // "
                                                                  "workers) for worker processes, unchanged otherwise")


class AblationSpec(_Strict):
    """An ablation study: a base spec, a dataset and protocol, metrics, and the variants. See docs/ablation.md."""

    name: str = Field(pattern=NAME_PATTERN, description="study name; the default study folder is "
                                                        "runs/ablation-<name>")
    base: str = Field(description="the base pipeline spec, relative to the ablation file")
    dataset: str = Field(description="dataset folder (NN_A/NN_B[/NN_GT] or NN_1..NN_k), relative to the "
                                     "ablation file")
    protocol: Literal["fusion", "mfisrf"] = Field("fusion", description="as `fusionkit eval --protocol`")
    scale: int | None = Field(None, ge=1, le=8, description="as `fusionkit eval --scale` (default: 1 for fusion, "
                                                            "the base spec's for mfisrf)")
    downsampler: str = Field("bicubic", description="resampler that makes the mfisrf inputs (kind resampler)")
    metrics: list[str] | None = Field(None, min_length=1, description="metric names; default: by protocol, as "
                                                                      "`fusionkit eval`")
    rank_metrics: list[str] | None = Field(None, min_length=1, description="metrics averaged into ARank; default: "
                                                                           "all of `metrics`")
    limit: int | None = Field(None, ge=1, description="use only the first N dataset items")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted key -> value, applied to every "
                                                                        "variant first")
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="dotted key -> list of values; the Cartesian product")
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict, description="variant name -> {dotted key: "
                                                                                  "value} patch")
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings, description="where the runs execute")
    plots: bool = Field(True, description="write the PNG plots (metric bars, loss curves, contact sheets)")


@dataclass
class Variant:
    """One point of the study: its readable ``name``, a safe folder ``slug``, a ``short`` label for plots, its
    patch (ordered key/value pairs, without the study-wide overrides) and the validated, resolved spec."""

    name: str
    slug: str
    short: str
    patch: list[tuple[str, Any]]
    overrides: list[str]
    resolved: ResolvedSpec
    spec_hash: str = ""


@dataclass
class StudyPlan:
    """A validated study: everything :func:`fusionkit.ablation.run_study` needs, nothing run yet."""

    spec: AblationSpec
    source: Path | None
    base: Path
    dataset: Path
    items: list[DatasetItem]
    variants: list[Variant]
    protocol: str
    scale: int
    downsampler: str
    metrics: list[str]
    rank_metrics: list[str]
    cli_overrides: list[str] = field(default_factory=list)

    @property
    def n_runs(self) -> int:
        return len(self.variants) * len(self.items)

    def config(self) -> dict:
        """What the runs' results depend on besides the variants' specs (compared when resuming)."""
        return {"protocol": self.protocol, "scale": self.scale, "downsampler": self.downsampler,
                "metrics": list(self.metrics), "dataset": str(self.dataset)}

    def fingerprint(self) -> str:
        data = {"config": self.config(), "variants": [[v.name, v.spec_hash] for v in self.variants]}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ values

def yaml_value(value: Any) -> str:
    """``value`` as the text of a ``--set`` override that parses back (``yaml.safe_load``) to exactly ``value``.

    PyYAML reads ``1e-05`` as a string, so floats always carry a dot; strings are quoted (a string ``"0.5"``
    stays a string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mant, exp = text.split("e")
            text = f"{mant}.0e{exp}"
        return text
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a spec value")


def label_value(value: Any) -> str:
    """A value as it reads in a variant name: strings bare, everything else as YAML."""
    return value if isinstance(value, str) else yaml_value(value)


def _last_token(key: str) -> str:
    try:
        tokens = parse_key(key)
    except ValueError:
        return key
    last = tokens[-1]
    if last in ("weight",) and len(tokens) > 1 and isinstance(tokens[-2], tuple):  # losses[x].weight -> x
        return f"{tokens[-2][0]}.weight"
    return last[0] if isinstance(last, tuple) else str(last)


def _short(key: str, value: Any) -> str:
    """A grid value as it reads in plots: a component swap by its name alone (``unet``), else ``param=value``."""
    if key.endswith(".name") and isinstance(value, str):
        return value
    return f"{_last_token(key)}={label_value(value)}"


def slugify(name: str, short: str) -> str:
    """A folder name for a variant: its short label made safe, plus a hash of the full name (stable, unique)."""
    safe = re.sub(r"[^A-Za-z0-9._+\-]+", "_", short.replace("=", "-")).strip("_.") or "variant"
    if safe == name and len(safe) <= 60:
        return safe
    return f"{safe[:60]}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


# ------------------------------------------------------------------------------------------------ loading

def load_ablation(source: str | Path | Mapping, overrides: Sequence[str] = (), *, catalog=None,
                  limit: int | None = None) -> StudyPlan:
    """Read and validate an ablation file (or dict) and every variant it defines; see the module docstring.

    ``overrides`` are ``--set KEY=VALUE`` strings applied to every variant last; ``limit`` (first N dataset
    items) wins over the file's ``limit``. Raises :class:`SpecError` (every problem at once) or
    :class:`~fusionkit.errors.InputError` (dataset folder).
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    overrides = list(overrides)
    ctx = SpecContext()
    if isinstance(source, Mapping):
        ctx.file = "<dict>"
        data: Any = copy.deepcopy(dict(source))
        folder = Path.cwd()
        abs_source = None
    else:
        path = Path(source)
        ctx.file = str(source)
        data = read_yaml(path, ctx)
        if data is MISSING or not isinstance(data, dict):
            raise SpecError(ctx.problems, source=ctx.file)
        folder = path.resolve().parent
        abs_source = path.resolve()
    try:
        spec = AblationSpec.model_validate(data)
    except ValidationError as exc:
        for loc, message, hint in translate(exc, AblationSpec, data):
            ctx.add(loc, message, _hint_for(loc, hint))
        raise SpecError(ctx.sorted_problems(), source=ctx.file) from None

    if catalog is None:
        from ..registry import default_catalog
        catalog = default_catalog()
    _check_fields(spec, ctx, catalog, folder)
    for raw in overrides:
        if "=" not in raw:
            ctx.add_raw(SpecProblem("", f"malformed override {raw!r}: expected KEY=VALUE",
                                    "write --set KEY=VALUE, e.g. --set iterations=200", file=shell_set(raw),
                                    override=raw))
    if ctx.problems:
        raise SpecError(ctx.sorted_problems(), source=ctx.file)

    base = (folder / spec.base).resolve()
    dataset = (folder / spec.dataset).resolve()
    variants = _expand(spec, ctx, catalog, base, overrides)
    if ctx.problems:
        raise SpecError(ctx.sorted_problems(), source=ctx.file)

    items = discover(dataset)
    n = limit if limit is not None else spec.limit
    if n is not None:
        items = items[:n]
    scale = protocol_scale(spec.protocol, spec.scale, variants[0].resolved.spec.scale)
    if spec.protocol == "mfisrf" or scale != variants[0].resolved.spec.scale:
        for v in variants:  # the protocol's scale is the runs' scale (as `fusionkit eval` does)
            v.resolved.spec = v.resolved.spec.model_copy(update={"scale": scale})
    for v in variants:
        v.spec_hash = spec_hash(v.resolved)
    has_gt = any(it.gt is not None for it in items)
    metrics = list(spec.metrics) if spec.metrics else default_metrics(spec.protocol, has_gt)
    rank = list(spec.rank_metrics) if spec.rank_metrics else list(metrics)
    return StudyPlan(spec, abs_source, base, dataset, items, variants, spec.protocol, scale, spec.downsampler,
                     metrics, rank, overrides)


def ablation_json_schema() -> dict:
    """JSON Schema of :class:`AblationSpec` (``fusionkit schema --kind ablate``)."""
    return json_schema(AblationSpec)


def spec_hash(resolved: ResolvedSpec) -> str:
    """Hash of what a run depends on in its spec (not where it is written, not its unused ``inputs``)."""
    data = resolved.to_dict()
    data.pop("inputs", None)
    data.get("output", {}).pop("dir", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _hint_for(loc: tuple, hint: str | None) -> str | None:
    if loc and loc[0] == "grid" and len(loc) == 2:
        return "write each grid axis as a YAML list, e.g. `focus_measure.name: [double_reblur, max_gradient]`"
    if loc and loc[0] == "variants" and len(loc) == 2:
        return "write each variant as a mapping of dotted keys, e.g. `no-jg: {losses[joint_gradient].weight: 0}`"
    return hint


def _check_fields(spec: AblationSpec, ctx: SpecContext, catalog, folder: Path) -> None:
    """What pydantic cannot see: paths, catalog names, key syntax, duplicates."""
    base = folder / spec.base
    if not base.is_file():
        ctx.add(("base",), f"base spec not found: {base}", "give the pipeline spec's path relative to the ablation "
                "file, e.g. `base: ../dfp-x2.yaml`")
    dataset = folder / spec.dataset
    if not dataset.is_dir():
        ctx.add(("dataset",), f"dataset folder not found: {dataset}",
                "give the folder relative to the ablation file; make one with `fusionkit synth`")
    if not catalog.has("resampler", spec.downsampler):
        guess = catalog.suggest("resampler", spec.downsampler)
        ctx.add(("downsampler",), f"unknown resampler {spec.downsampler!r}",
                (f"did you mean {guess!r}? " if guess else "") + "Installed: " + ", ".join(catalog.names("resampler")))
    for field_name in ("metrics", "rank_metrics"):
        for i, m in enumerate(getattr(spec, field_name) or []):
            if not catalog.has("metric", m):
                guess = catalog.suggest("metric", m)
                ctx.add((field_name, i), f"unknown metric {m!r}",
                        (f"did you mean {guess!r}? " if guess else "") + "See `fusionkit plugins list --kind metric`")
    if spec.rank_metrics and spec.metrics:
        for i, m in enumerate(spec.rank_metrics):
            if m not in spec.metrics and catalog.has("metric", m):
                ctx.add(("rank_metrics", i), f"rank metric {m!r} is not one of the study's metrics",
                        f"add it to `metrics` or remove it here; metrics: {', '.join(spec.metrics)}")
    keyed = [(("overrides", k), k) for k in spec.overrides] + [(("grid", k), k) for k in spec.grid]
    keyed += [(("variants", n, k), k) for n, patch in spec.variants.items() for k in patch]
    for loc, key in keyed:
        try:
            parse_key(key)
        except ValueError as exc:
            ctx.add(loc, f"malformed key {key!r}: {exc}", "use the --set syntax: a dotted path with [index] or "
                    "[name] selectors, e.g. focus_measure.params.threshold or losses[joint_gradient].weight")
    for key, values in spec.grid.items():
        seen: list[str] = []
        for i, v in enumerate(values):
            text = label_value(v)
            if text in seen:
                ctx.add(("grid", key, i), f"value {text} appears twice in this grid axis", "list each value once")
            seen.append(text)
    for name in spec.variants:
        if not re.fullmatch(NAME_PATTERN, name):
            ctx.add(("variants", name), f"variant name {name!r} has characters other than letters, digits and . _ + -",
                    "rename it, e.g. `no-joint-gradient`; the name is also a folder name")


def _expand(spec: AblationSpec, ctx: SpecContext, catalog, base: Path, cli: list[str]) -> list[Variant]:
    """Every variant, validated; problems go to ``ctx`` (located in the ablation file, naming the variants)."""
    origin: dict[str, tuple[tuple, str]] = {}   # override text -> (ablation location, what it is)

    def sets(pairs: list[tuple[str, Any]], loc_of) -> list[str]:
        out = []
        for key, value in pairs:
            raw = f"{key}={yaml_value(value)}"
            origin.setdefault(raw, loc_of(key))
            out.append(raw)
        return out

    common = sets(list(spec.overrides.items()), lambda k: (("overrides", k), "overrides"))
    named = list(spec.variants.items()) or [(None, {})]
    axes = list(spec.grid.items())
    points = list(itertools.product(*[list(enumerate(vals)) for _, vals in axes])) if axes else [()]
    variants: list[Variant] = []
    grouped: dict[tuple, list[str]] = {}
    for vname, patch in named:
        for point in points:
            grid_pairs = [(key, vals_i[1]) for (key, _), vals_i in zip(axes, point)]
            pairs = list(patch.items()) + grid_pairs
            parts = ([vname] if vname is not None else []) + [f"{k}={label_value(v)}" for k, v in grid_pairs]
            short = ",".join(([vname] if vname is not None else []) + [_short(k, v) for k, v in grid_pairs])
            name = ",".join(parts) or "base"
            own = sets(list(patch.items()), lambda k, n=vname: (("variants", n, k), "variant"))
            for (key, _), (i, value) in zip(axes, point):
                raw = f"{key}={yaml_value(value)}"
                origin.setdefault(raw, (("grid", key, i), "grid"))
                own.append(raw)
            all_sets = common + own + cli
            try:
                resolved = load_spec(base, all_sets, catalog=catalog, require_inputs=False)
            except SpecError as exc:
                for p in exc.problems:
                    key = _locate(p, origin, ctx)
                    grouped.setdefault(key, []).append(name)
                continue
            variants.append(Variant(name, slugify(name, short or name), short or name, pairs, all_sets, resolved))
    for (file, line, path, message, hint), names in grouped.items():
        which = ", ".join(repr(n) for n in names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
        word = "variant" if len(names) == 1 else "variants"
        ctx.add_raw(SpecProblem(path, f"{message} (in {word} {which})", hint, line=line, file=file))
    slugs: dict[str, str] = {}
    for v in variants:
        if v.slug in slugs:  # practically impossible (hash suffix); keep folders distinct anyway
            v.slug = f"{v.slug}-{len(slugs)}"
        slugs[v.slug] = v.name
    return variants


def _locate(p: SpecProblem, origin: dict, ctx: SpecContext) -> tuple:
    """A base-spec problem moved to where the ablation file (or the command line) caused it."""
    if p.override is not None:
        raw = p.override
        if raw in origin:
            loc, _what = origin[raw]
            where = dotted(loc[:1]) + "".join(f"[{x!r}]" if isinstance(x, str) else f"[{x}]" for x in loc[1:])
            spec_path = f"{p.path}: " if p.path else ""
            return (ctx.file, line_of(ctx.root, loc), where, f"{spec_path}{p.message}", p.hint)
        return (p.file, None, p.path, p.message, p.hint)
    return (p.file, p.line, p.path, p.message, p.hint)  # in the base spec file itself

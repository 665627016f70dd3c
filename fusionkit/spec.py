"""The pipeline spec: a pydantic model of the YAML a user writes.

Validation has two phases: (1) structure, against the models below; (2) each component reference is resolved
in the registry and its ``params`` validated against that component's own ``Params`` model. The *resolved* spec
(every default filled in, every component's params complete) is what runs and what gets recorded.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    # unknown keys are errors; numbers are finite (`lr: .nan` is "expected a finite number", not a bound error)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentRef(_Strict):
    """A component chosen by name, with its parameters (validated in phase 2 against the component's Params)."""

    name: str = Field(description="registered component name, see `fusionkit plugins list`")
    params: dict[str, Any] = Field(default_factory=dict, description="the component's parameters")


class LossTerm(ComponentRef):
    """One weighted term of the fusion loss ``L = sum_k weight_k * loss_k``."""

    weight: float = Field(1.0, ge=0.0, description="weight of this term in the total loss")


class GeneratorSpec(ComponentRef):
    """The generator G(z) optimised per stack, and its fixed input z."""

    name: str = Field("skipnet", description="registered generator name, see `fusionkit plugins list --kind generator`")
    input: Literal["mean_upsampled", "first_guess", "composite_upsampled", "noise"] = Field(
        "mean_upsampled", description="fixed input z: mean of the upsampled inputs (released code); first_guess: "
                                      "the warm-start fuser's x s result when `warm_start` is set, else the upsampled "
                                      "two-step composite sum_i m_i x_i (composite_upsampled is the same); or "
                                      "uniform noise")
    noise_channels: int = Field(32, ge=1, le=256, description="channels of z when input is noise")
    noise_scale: float = Field(0.1, gt=0.0, description="z = noise_scale * U(0, 1) when input is noise")
    input_jitter: float = Field(0.0, ge=0.0, description="std of Gaussian noise added to z every iteration (DIP's reg_noise_std)")
    residual: bool = Field(False, description="output = first guess + G(z) - G_0(z) (G_0: the untrained network; the first guess: the warm-start fuser's result, else the upsampled composite): the optimisation starts at the first guess and G learns only the correction")
    warm_start: Optional[ComponentRef] = Field(
        None, description="a fuser (kind fuser) whose x s result is DFP's first guess instead of the upsampled "
                          "two-step composite, e.g. `{name: udpnet}`: z with `input: first_guess`, the starting "
                          "output with `residual: true` (one of the two is required). It runs once on the whole "
                          "image before any optimisation (tiles use their crop of it); a fuser that returns the "
                          "inputs' resolution is upsampled by `upsampler`; with colour ycbcr its luma is used. "
                          "null = no warm start")


class OptimizerSpec(_Strict):
    """The optimiser and its learning-rate schedule (the same schedule shape serves the decision embedding)."""

    name: Literal["adam"] = Field("adam", description="the optimiser")
    lr: float = Field(5e-3, gt=0.0, le=1.0, description="learning rate (the peak rate when a schedule is used)")
    schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="constant: lr throughout; cosine: half a cosine from lr down to final_lr * lr at "
                                "the last iteration")
    warmup: float = Field(0.05, ge=0.0, le=0.5, description="fraction of the iterations over which the rate ramps "
                                                           "up linearly from 0 to lr")
    final_lr: float = Field(0.0, ge=0.0, le=1.0, description="cosine schedule: the final rate as a fraction of lr")


class StopSpec(_Strict):
    """When a loop may stop before its iteration budget, without a ground truth: a plateau of its own loss and/or a
    wall-clock limit. The manifest records the iteration and the reason each loop stopped."""

    rule: Literal["none", "plateau"] = Field(
        "none", description="none: run every iteration; plateau: stop once the result changes by less than "
                            "min_delta per `window` iterations: for the fusion loop and the refinement, the relative "
                            "improvement of the window's mean loss on the window before; for the decision embedding, "
                            "the fraction of pixels whose binarised decision flipped within the window")
    window: int = Field(50, ge=1, le=100_000, description="plateau: iterations per window")
    min_delta: float = Field(0.002, ge=0.0, le=1.0, description="plateau: the change per window below which the "
                                                                "loop stops")
    min_iterations: int = Field(0, ge=0, le=1_000_000, description="plateau: never stop before this iteration")
    max_seconds: Optional[float] = Field(None, gt=0.0, description="stop this loop after this many seconds of wall "
                                                                   "time (null: no limit)")


class DecisionEmbeddingSpec(_Strict):
    """Algorithm 2: a generator fitted to the focus measure's maps (Eq. 20), then binarised at 0.5."""

    enabled: bool | Literal["auto"] = Field(
        False, description="false (default): fuse with the focus measure's maps directly: the embedding's binarised "
                           "maps converge to them, and DFP measured no better with it (docs/performance.md); auto: on "
                           "for two inputs (the paper's setting, preset paper), off for stacks of N > 2, where the "
                           "N-channel embedding was measured to degrade the maps (docs/n-images.md); true: always")

    def applies_to(self, n: int) -> bool:
        """Whether the embedding runs for a stack of ``n`` inputs."""
        return self.enabled is True or (self.enabled == "auto" and n == 2)
    iterations: Union[Annotated[int, Field(ge=1, le=100_000)], Literal["auto"]] = Field(
        "auto", description="optimisation steps of the embedding generator; auto = half the fusion `iterations` "
                            "(the paper's 500 for 1000), so one knob scales the whole run")
    generator: ComponentRef = Field(default_factory=lambda: ComponentRef(
        name="skipnet", params={"channels": [8, 16, 32, 64, 128], "skip": [0, 0, 0, 4, 4], "kernel": 5}),
        description="the embedding generator (kind generator) and its params")
    input: Literal["noise", "mean"] = Field("noise", description="fixed input: uniform noise (released code) or the mean of the inputs")
    loss: ComponentRef = Field(default_factory=lambda: ComponentRef(name="decision"),
                               description="the embedding loss (kind loss), Eq. 20")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="learning rate of the embedding generator")
    stop: StopSpec = Field(default_factory=StopSpec, description="early stopping of the embedding loop (its "
                                                                 "plateau rule watches the binarised decision)")


class LightFieldSpec(ComponentRef):
    """A light field (a folder of sub-aperture views) refocused into the focal stack that is fused, instead of
    `inputs`. See docs/light-fields.md."""

    name: str = Field("view_grid", description="registered light-field source, see `fusionkit plugins list "
                                               "--kind light_field`")
    path: str = Field(description="folder of the sub-aperture views, relative to the spec file")


class RefineSpec(_Strict):
    """After the generator loop: Adam steps of the same fusion loss on the output's pixels directly (no network).
    They close the remaining misfit to the inputs at a small fraction of a generator step's cost, while what the
    generator put into the frequencies the inputs do not constrain stays (docs/performance.md)."""

    iterations: int = Field(200, ge=0, le=100_000, description="refinement steps (0 = none)")
    lr: float = Field(3e-4, gt=0.0, le=1.0, description="Adam rate on pixel values in [0, 1] (the peak rate)")
    schedule: Literal["constant", "cosine"] = Field("cosine", description="rate over the steps: constant, or half a "
                                                                          "cosine from lr down to 0")
    stop: StopSpec = Field(default_factory=StopSpec, description="early stopping of the refinement")


class TilingSpec(_Strict):
    """Fusing the output in overlapping tiles, each optimised on its own and blended with feathered seams. The
    generator converges in fewer iterations on a tile than on a big image, and the memory a run needs is bounded
    by the tile size instead of the image size (docs/performance.md)."""

    mode: Literal["auto", "memory", "never"] = Field(
        "auto", description="auto: outputs larger than `tile` are fused in tiles of that size (smaller ones if memory "
                            "requires); memory: the whole image unless it would not fit in the available memory; "
                            "never: the whole image, and a run that does not fit is refused before any work")
    tile: int = Field(256, ge=16, le=8192, description="tile size in output pixels (square, before the overlap)")
    overlap: int = Field(32, ge=0, le=1024, description="output pixels shared by neighbouring tiles, blended with a "
                                                        "linear ramp")
    workers: Union[Annotated[int, Field(ge=1, le=1024)], Literal["auto"]] = Field(
        "auto", description="CPU: tiles fused at once, each in its own process of one thread (auto = the run's "
                            "threads); tiles scale better across processes than one run over threads")


class OutputSpec(_Strict):
    dir: str = Field("runs/{name}", description="run folder; {name} is the spec name. Never silently overwritten: "
                                               "an existing folder gets a numbered sibling")
    format: Literal["png", "tiff"] = Field("png", description="file format of the fused image")
    bit_depth: Literal["auto", 8, 16] = Field("auto", description="auto = as the inputs were")
    save_maps: bool = Field(True, description="write the decision maps to `maps/`")


class PipelineSpec(_Strict):
    """A complete fusion pipeline. See docs/spec.md for every field."""

    preset: Optional[Literal["fast", "default", "paper"]] = Field(
        None, description="a named schedule expanded into concrete values before validation (values written in "
                          "the spec or with --set win): fast, default or paper; see docs/performance.md")
    name: str = Field("fusion", pattern=r"^[A-Za-z0-9_.\-]+$", description="run name; fills `{name}` in `output.dir`")
    inputs: list[str] = Field(default_factory=list, description="image paths (2 or more), relative to the spec file")
    light_field: LightFieldSpec | None = Field(
        None, description="instead of `inputs`: a light field refocused into a focal stack (kind light_field); "
                          "the slices are saved in the run folder's `stack/`")
    scale: int = Field(2, ge=1, le=8, description="super-resolution factor s (1 = fusion only)")
    colour: Literal["ycbcr", "rgb"] = Field(
        "ycbcr", description="ycbcr: fuse BT.601 luma, compose chroma from the decision maps; rgb: fuse all channels")
    method: Literal["dfp", "composite", "fuser"] = Field(
        "dfp", description="dfp: optimise a generator (Algorithm 1); composite: sum_i m_i x_i at low resolution, "
                           "then the upsampler (the classical two-step baseline); fuser: a complete fuser "
                           "(e.g. enfuse) at low resolution, then the upsampler")
    focus_measure: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="double_reblur"),
        description="the focus measure that gives the initial decision maps (kind focus_measure)")
    decision_embedding: DecisionEmbeddingSpec = Field(
        default_factory=DecisionEmbeddingSpec, description="Algorithm 2: refine the decision maps with a generator")
    generator: GeneratorSpec = Field(
        default_factory=GeneratorSpec,
        description="the generator optimised by Algorithm 1 (kind generator); used when method is dfp")
    downsampler: ComponentRef = Field(default_factory=lambda: ComponentRef(name="lanczos2"),
                                      description="differentiable resampler inside the loss")
    fuser: ComponentRef | None = Field(
        None, description="the fuser used when method is fuser (kind fuser), e.g. `{name: enfuse}`")
    upsampler: ComponentRef = Field(default_factory=lambda: ComponentRef(name="bicubic"),
                                    description="resampler for the generator input, chroma and the composite method")
    losses: list[LossTerm] = Field(default_factory=lambda: [
        LossTerm(name="content", weight=1.0),
        LossTerm(name="joint_gradient", weight=0.5),
        LossTerm(name="gradient_limit", weight=0.1),
    ], description="the weighted loss terms (kind loss); at least one when method is dfp; names unique")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="optimiser of the fusion generator")
    iterations: int = Field(600, ge=0, le=1_000_000,
                            description="optimisation steps of the fusion generator (method dfp)")
    crop: Optional[int] = Field(
        None, ge=16, le=16384, description="random-crop iterations: each generator step fits a random square window "
                                           "of this many output pixels (and the matching window of the inputs) "
                                           "instead of the whole output, so a step costs the same whatever the "
                                           "image size; null = always the whole output")
    stop: StopSpec = Field(default_factory=StopSpec, description="early stopping of the fusion loop")
    refine: RefineSpec = Field(default_factory=lambda: RefineSpec(),
                               description="pixel refinement after the generator loop (docs/performance.md)")
    output_average: float = Field(
        0.0, ge=0.0, lt=1.0, description="decay of an exponential moving average of the generator's output, which "
                                         "is what the run returns (0 = the last iterate)")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="arithmetic of the generators' forward and backward passes: bf16 where the device runs "
                            "it natively (CUDA, CPUs with AVX512-BF16/AMX), auto = bf16 there and fp32 elsewhere; "
                            "losses, maps and the averaged output stay fp32")
    threads: Union[Annotated[int, Field(ge=1, le=1024)], Literal["auto"]] = Field(
        "auto", description="CPU threads for this run; auto = the cores not already busy (from the load average), "
                            "at least 1")
    tiling: TilingSpec = Field(default_factory=TilingSpec, description="fusion in overlapping tiles for big outputs")
    seed: int = Field(0, ge=0, description="random seed (network initialisation, noise inputs)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")
    deterministic: bool = Field(True, description="torch.use_deterministic_algorithms (slower on GPU)")
    output: OutputSpec = Field(default_factory=OutputSpec, description="where and how the results are written")

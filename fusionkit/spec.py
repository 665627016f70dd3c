"""The pipeline spec: a pydantic model of the YAML a user writes.

Validation has two phases: (1) structure, against the models below; (2) each component reference is resolved
in the registry and its ``params`` validated against that component's own ``Params`` model. The *resolved* spec
(every default filled in, every component's params complete) is what runs and what gets recorded.
"""
from __future__ import annotations

from typing import Any, Literal

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
    input: Literal["mean_upsampled", "noise"] = Field(
        "mean_upsampled", description="fixed input z: mean of the upsampled inputs, or uniform noise")
    noise_channels: int = Field(32, ge=1, le=256, description="channels of z when input is noise")
    noise_scale: float = Field(0.1, gt=0.0, description="z = noise_scale * U(0, 1) when input is noise")
    input_jitter: float = Field(0.0, ge=0.0, description="std of Gaussian noise added to z every iteration (DIP's reg_noise_std)")
    residual: bool = Field(False, description="output = upsampled composite + G(z) - G_0(z) (G_0: the untrained network): the optimisation starts at the two-step result and G learns only the correction")


class OptimizerSpec(_Strict):
    name: Literal["adam"] = Field("adam", description="the optimiser")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="learning rate")


class DecisionEmbeddingSpec(_Strict):
    """Algorithm 2: a generator fitted to the focus measure's maps (Eq. 20), then binarised at 0.5."""

    enabled: bool | Literal["auto"] = Field(
        "auto", description="auto: on for two inputs (the paper's setting), off for stacks of N > 2, where the "
                            "N-channel embedding was measured to degrade the maps (docs/n-images.md); true: always; "
                            "false: fuse with the focus measure's maps directly (no Algorithm 2)")

    def applies_to(self, n: int) -> bool:
        """Whether the embedding runs for a stack of ``n`` inputs."""
        return self.enabled is True or (self.enabled == "auto" and n == 2)
    iterations: int = Field(500, ge=1, le=100_000, description="optimisation steps of the embedding generator")
    generator: ComponentRef = Field(default_factory=lambda: ComponentRef(
        name="skipnet", params={"channels": [8, 16, 32, 64, 128], "skip": [0, 0, 0, 4, 4], "kernel": 5}),
        description="the embedding generator (kind generator) and its params")
    input: Literal["noise", "mean"] = Field("noise", description="fixed input: uniform noise (released code) or the mean of the inputs")
    loss: ComponentRef = Field(default_factory=lambda: ComponentRef(name="decision"),
                               description="the embedding loss (kind loss), Eq. 20")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="learning rate of the embedding generator")


class LightFieldSpec(ComponentRef):
    """A light field (a folder of sub-aperture views) refocused into the focal stack that is fused, instead of
    `inputs`. See docs/light-fields.md."""

    name: str = Field("view_grid", description="registered light-field source, see `fusionkit plugins list "
                                               "--kind light_field`")
    path: str = Field(description="folder of the sub-aperture views, relative to the spec file")


class OutputSpec(_Strict):
    dir: str = Field("runs/{name}", description="run folder; {name} is the spec name. Never silently overwritten: "
                                               "an existing folder gets a numbered sibling")
    format: Literal["png", "tiff"] = Field("png", description="file format of the fused image")
    bit_depth: Literal["auto", 8, 16] = Field("auto", description="auto = as the inputs were")
    save_maps: bool = Field(True, description="write the decision maps to `maps/`")


class PipelineSpec(_Strict):
    """A complete fusion pipeline. See docs/spec.md for every field."""

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
    iterations: int = Field(1000, ge=0, le=1_000_000,
                            description="optimisation steps of the fusion generator (method dfp)")
    seed: int = Field(0, ge=0, description="random seed (network initialisation, noise inputs)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")
    deterministic: bool = Field(True, description="torch.use_deterministic_algorithms (slower on GPU)")
    output: OutputSpec = Field(default_factory=OutputSpec, description="where and how the results are written")

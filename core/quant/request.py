"""What a user asks of a quantization: the wizard's settings, a profile's [quantize] section, a job record.

Plain data, validated strictly (unknown keys and bad values are one-line QuantErrors), JSON/TOML friendly.
The same object drives `temper quantize`, the Quantize tab and a resumed job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import QuantError
from .candidates import AFFINE_BITS, AFFINE_GROUPS, MODES, Candidate, grid


def resolved_sensitivity_mode(mode: str) -> str:
    """The pass a request's mode means. "auto" is the fast estimate where MLX runs on the CPU only
    (Linux without MLX's CUDA build) and hybrid where a GPU does the work: on the trained fixture, fast
    and hybrid scores gave allocations within 9% of each other in held-out KL at an eighth of the time
    (docs/benchmarks/quant_quality.md), and on a 2-core CPU hybrid on a real model takes hours."""
    if mode != "auto":
        return mode
    import sys

    from ..accel.blas import _cuda_build

    return "hybrid" if sys.platform == "darwin" or _cuda_build() else "fast"


# oMLX levels: name -> (target real bpw, hard cap); see shared/anchors.md.
OQ_LEVELS = {"oq2": (2.8, 3.0), "oq3": (3.5, 3.7), "oq3.5": (3.8, 4.0), "oq4": (4.6, 4.7),
             "oq5": (5.5, 5.7), "oq6": (6.5, 6.7), "oq8": (8.6, 8.6)}


@dataclass
class QuantRequest:
    model: str = ""
    recipe: str = "temper"             # "temper" (KL knapsack at a budget), "uniform-4", "oq4", "optiq-like", "unsloth-4"...
    target_bpw: float | None = 4.5     # real bits per weight, all bytes counted
    size_gb: float | None = None       # alternative budget: output size in GB (wins over target_bpw)
    bits: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 8])
    group_sizes: list[int] = field(default_factory=lambda: [32, 64, 128])
    modes: list[str] = field(default_factory=lambda: ["affine"])
    protect: list[str] = field(default_factory=list)   # tensor name patterns kept unquantized
    awq: bool = False
    gptq: bool = True                  # error-compensated rounding (core/quant/gptq.py)
    clip: bool = True                  # scale/bias shrink search per group (core/quant/rounding.py)
    calibration: str = "builtin"       # "builtin" or a .txt/.jsonl path
    samples: int = 32
    seq_len: int = 256
    evaluation: str = "builtin"        # held-out text: never the calibration text
    sensitivity_mode: str = "auto"     # "fast", "exact" or "auto" (exact where the estimate cannot decide)
    output: str = ""
    overwrite: bool = False

    def validate(self) -> QuantRequest:
        if not self.model:
            raise QuantError("choose a model to quantize")
        for b in self.bits:
            if b not in AFFINE_BITS:
                raise QuantError(f"no {b}-bit width: choose widths from {', '.join(map(str, AFFINE_BITS))}")
        for g in self.group_sizes:
            if g not in AFFINE_GROUPS:
                raise QuantError(f"group size must be 32, 64 or 128, not {g}")
        for m in self.modes:
            if m not in MODES:
                raise QuantError(f"unknown mode {m!r}: choose from {', '.join(MODES)}")
        if self.size_gb is not None and self.size_gb <= 0:
            raise QuantError("the size budget must be a positive number of GB")
        if self.target_bpw is not None and not 1.0 < self.target_bpw <= 16.0:
            raise QuantError(f"a budget of {self.target_bpw} bits per weight is out of range (1-16)")
        if self.samples < 1 or self.seq_len < 8:
            raise QuantError("calibration needs at least 1 sample of at least 8 tokens")
        if self.calibration != "builtin" and not Path(self.calibration).expanduser().is_file():
            raise QuantError(f"calibration file {self.calibration} does not exist")
        if self.calibration != "builtin" and self.calibration == self.evaluation:
            raise QuantError("evaluation text must be kept apart from calibration text: choose another file")
        self.candidates()
        return self

    def candidates(self) -> list[Candidate]:
        return grid(self.bits, self.group_sizes, self.modes)

    def budget_label(self) -> str:
        if self.recipe != "temper":
            return self.recipe
        if self.size_gb is not None:
            return f"{self.size_gb:g} GB"
        return f"{self.target_bpw:g} bpw"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantRequest:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QuantError(f"unknown quantize setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:
            return cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in data.items()})
        except TypeError as exc:
            raise QuantError(f"bad quantize settings: {exc}") from exc


def default_output(model: str, request: QuantRequest) -> Path:
    from ..paths import models_dir

    name = Path(model.rstrip("/")).name or "model"
    return models_dir() / f"{name}-temper-{request.budget_label().replace(' ', '')}"

"""The sensitivity table: for each quantizable tensor, the predicted output damage of each candidate.

Written by the sensitivity pass (core/quant/sensitivity), read by the allocator (core/quant/allocate)
and the Layers view. Saved as JSON next to the model so a new budget re-runs only the allocation.
Scores are ΔKL: KL(reference || quantized) of next-token distributions, in nats per token, when only
that tensor is quantized with that candidate. `method` per score says "exact" or "estimate".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import QuantError
from .candidates import Candidate

SCHEMA_VERSION = 1


@dataclass
class TensorScores:
    path: str                     # module path as in mlx-lm, e.g. "model.layers.3.mlp.down_proj"
    shape: tuple[int, ...]        # weight shape (out, in), unquantized
    params: int                   # number of weights
    kind: str                     # "q_proj", "down_proj", "embed_tokens", "lm_head", ...
    layer: int | None             # block index, None for embeddings / lm_head
    scores: dict[str, float] = field(default_factory=dict)   # candidate key -> ΔKL
    methods: dict[str, str] = field(default_factory=dict)    # candidate key -> "exact" | "estimate"
    skipped: list[str] = field(default_factory=list)         # candidate keys that cannot fit this shape


@dataclass
class SensitivityTable:
    model: str                    # model folder or id
    model_hash: str               # hash of the weights' headers + config (see sensitivity.model_hash)
    calibration_hash: str
    candidates: list[str]         # candidate keys, cheapest first
    float_bytes: int              # bytes of the model's float dtype (for affine scale cost)
    fixed_bits: int = 0           # bits of tensors that are never quantized (norms, biases...)
    fixed_params: int = 0         # their parameter count
    tensors: list[TensorScores] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION

    def candidate_objects(self) -> list[Candidate]:
        return [Candidate.from_key(k) for k in self.candidates]

    def by_path(self) -> dict[str, TensorScores]:
        return {t.path: t for t in self.tensors}

    def save(self, path: Path) -> None:
        atomic.write_text(Path(path), json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> SensitivityTable:
        try:
            raw = json.loads(Path(path).read_text())
            if raw.get("version") != SCHEMA_VERSION:
                raise QuantError(f"{path} has sensitivity schema {raw.get('version')}, expected {SCHEMA_VERSION}")
            tensors = [TensorScores(**{**t, "shape": tuple(t["shape"])}) for t in raw.pop("tensors")]
            return cls(**raw, tensors=tensors)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise QuantError(f"cannot read sensitivity file {path}: {exc}") from exc

"""Sampling settings for generation, and the mlx-lm sampler / logits processors they stand for."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import TemperError


@dataclass
class SamplingSettings:
    """What a user sets per chat. temperature 0 is greedy; 0 for top_p/top_k/min_p means "off"."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    repetition_context: int = 64
    max_tokens: int = 2048
    seed: int | None = None

    def validate(self) -> SamplingSettings:
        checks = [
            (self.temperature >= 0, "temperature must be >= 0"),
            (0 <= self.top_p <= 1, "top-p must be between 0 and 1"),
            (self.top_k >= 0, "top-k must be >= 0 (0 = off)"),
            (0 <= self.min_p <= 1, "min-p must be between 0 and 1"),
            (self.repetition_penalty > 0, "repetition penalty must be > 0 (1 = off)"),
            (self.repetition_context >= 1, "repetition context must be >= 1 token"),
            (self.max_tokens >= 1, "max tokens must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise TemperError(message)
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SamplingSettings:
        """Unknown keys are dropped (settings saved by a newer temper still load)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


def build_sampler(settings: SamplingSettings):
    """The mlx-lm sampler. Seeds MLX's generator when a seed is set (call on the engine thread)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import make_sampler

    if settings.seed is not None:
        mx.random.seed(settings.seed)
    return make_sampler(
        temp=settings.temperature,
        top_p=settings.top_p if 0 < settings.top_p < 1 else 0.0,
        min_p=settings.min_p,
        top_k=settings.top_k,
    )


def build_processors(settings: SamplingSettings) -> list:
    from mlx_lm.sample_utils import make_logits_processors

    penalty = settings.repetition_penalty if settings.repetition_penalty != 1.0 else None
    return make_logits_processors(repetition_penalty=penalty,
                                  repetition_context_size=settings.repetition_context)

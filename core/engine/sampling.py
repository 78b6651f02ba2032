"""Sampling settings for generation, and the mlx-lm sampler / logits processors they stand for."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..strict import StrictModel


class SamplingSettings(StrictModel):
    """What a user sets per chat, and a profile's [sampling] section (one set of defaults, one validation).
    temperature 0 is greedy; 0 for top_k/min_p and 1 for top_p mean "off"."""

    what: ClassVar[str] = "sampling"

    temperature: float = Field(0.7, ge=0, le=5, json_schema_extra={"flag": "--temp"},
                               description="randomness of sampling (0 = greedy)")
    top_p: float = Field(0.95, ge=0, le=1, description="nucleus sampling mass (1 = off)")
    top_k: int = Field(0, ge=0, description="sample from the k most likely tokens (0 = off)")
    min_p: float = Field(0.0, ge=0, le=1, description="drop tokens below this fraction of the top probability")
    repetition_penalty: float = Field(1.0, ge=0.01, le=10, json_schema_extra={"flag": "--repeat-penalty"},
                                      description="penalty for repeated tokens (1 = off)")
    repetition_context: int = Field(64, ge=1, description="tokens the repetition penalty looks back over")
    max_tokens: int = Field(2048, ge=1, description="most tokens to generate per answer")
    seed: int | None = Field(None, ge=0, description="random seed (unset = random)")

    def validate(self) -> SamplingSettings:  # type: ignore[override]
        """Every field is checked when it is set; kept for callers that validate explicitly."""
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SamplingSettings:
        """Unknown keys are dropped (settings saved by a newer temper still load)."""
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.model_fields})


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

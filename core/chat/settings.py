"""Per-chat settings: sampling, reasoning effort, drafter, KV-cache bits. Stored as JSON on the conversation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..engine.reasoning import DEFAULT_BUDGETS, check_effort
from ..engine.sampling import SamplingSettings
from ..errors import TemperError


@dataclass
class ChatSettings:
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    effort: str | None = None          # None = the template's default
    budgets: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    drafter: str | None = None         # None, "self" or a model folder
    num_draft_tokens: int = 3
    kv_bits: int | None = None         # None: the model's kv_config.json if any, else float; 0: float
    context_limit: int | None = None

    def validate(self) -> ChatSettings:
        self.sampling.validate()
        check_effort(self.effort)
        if not 1 <= self.num_draft_tokens <= 16:
            raise TemperError("draft tokens must be between 1 and 16")
        if self.kv_bits not in (None, 0, 4, 8):
            raise TemperError("kv bits must be 4 or 8, or 0 for off")
        if self.context_limit is not None and self.context_limit < 16:
            raise TemperError("context limit must be at least 16 tokens")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sampling"] = self.sampling.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ChatSettings:
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names and k != "sampling"}
        return cls(sampling=SamplingSettings.from_dict(data.get("sampling")), **kwargs)

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

    @classmethod
    def from_profile(cls, profile: Any) -> tuple[str, ChatSettings]:
        """(system prompt, settings) from a profile's [sampling] and [chat] sections over the defaults: what a
        new chat starts with (the Chat tab, `temper chat`). Only the keys the profile sets change anything."""
        sampling = dict(profile.section("sampling")) if profile is not None else {}
        chat = dict(profile.section("chat")) if profile is not None else {}
        settings = cls(sampling=SamplingSettings.from_dict({k: v for k, v in sampling.items() if v is not None}))
        settings.effort = chat.get("reasoning_effort") or None
        settings.drafter = chat.get("drafter") or None
        if chat.get("num_draft_tokens") is not None:
            settings.num_draft_tokens = int(chat["num_draft_tokens"])
        settings.kv_bits = chat.get("kv_bits")
        return str(chat.get("system_prompt") or ""), settings.validate()

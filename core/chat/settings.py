"""Per-chat settings: sampling, reasoning effort, drafter, KV-cache bits. Stored as JSON on the conversation.

`ChatProfile` is a profile's [chat] section; `ChatSettings` (what a chat runs with) uses the same types for
the fields they share, so a profile, the CLI flags and the Chat tab's settings accept the same values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..engine.kv_bits import KvBits
from ..engine.reasoning import DEFAULT_BUDGETS, check_effort
from ..engine.sampling import SamplingSettings
from ..errors import TemperError
from ..strict import StrictModel

DraftTokens = Annotated[int, Field(ge=1, le=16)]
Effort = Literal["none", "low", "medium", "high"] | None


class ChatProfile(StrictModel):
    """A profile's [chat] section."""

    what: ClassVar[str] = "chat"

    system_prompt: str = Field("", description="system message sent first")
    reasoning_effort: Effort = Field(None, description="how much the model thinks first (unset = the "
                                                       "template's default)")
    drafter: str = Field("", description="draft model (folder, Hub id or 'self') for speculative decoding")
    num_draft_tokens: DraftTokens = Field(3, description="tokens the drafter proposes per step")
    kv_bits: KvBits = Field(None, description="quantize the KV cache to this many bits (0 = off; unset = the "
                                                   "model's kv_config.json plan if any)")


class _Shared(StrictModel):
    """The rule ChatSettings shares with ChatProfile (checked through the same types)."""

    num_draft_tokens: DraftTokens = 3
    kv_bits: KvBits = None


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
        check_effort(self.effort)
        _Shared(num_draft_tokens=self.num_draft_tokens, kv_bits=self.kv_bits)
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
        """(system prompt, settings) from a profile's [sampling] and [chat] sections over the defaults."""
        chat = ChatProfile(**(profile.section("chat") if profile is not None else {}))
        sampling = SamplingSettings(**(profile.section("sampling") if profile is not None else {}))
        settings = cls(sampling=sampling, effort=chat.reasoning_effort, drafter=chat.drafter or None,
                       num_draft_tokens=chat.num_draft_tokens, kv_bits=chat.kv_bits)
        return chat.system_prompt, settings.validate()

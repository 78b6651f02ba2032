"""The conversation's KV cache kept on the engine between turns, so a follow-up prefills only what is new.

One session lives in `ctx.state`: the chat model's cache (and the drafter's), and the tokens they hold.
A new prompt keeps the longest common prefix and trims the rest (regenerate, edited history, another
conversation). Sliding-window layers can be rolled back only by the extra positions their cache keeps
(the draft length, core/engine/kv_cache.py); a longer rollback rebuilds the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_KEY = "chat_session"


@dataclass
class ChatSession:
    key: tuple
    cache: list
    draft_cache: list = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    reused: int = 0     # tokens of the current prompt served from the cache

    def remember(self, tokens: list[int]) -> None:
        """After a turn: record which tokens the caches now hold (by their offsets)."""
        held = cache_length(self.cache)
        if held > len(tokens):  # should not happen; keep cache and list in step
            _trim(self.cache, held - len(tokens))
            held = len(tokens)
        if self.draft_cache and cache_length(self.draft_cache) > held:
            _trim(self.draft_cache, cache_length(self.draft_cache) - held)
        self.tokens = list(tokens[:held])


def cache_length(cache: list) -> int:
    return max((getattr(c, "offset", 0) for c in cache), default=0)


def _trim(cache: list, n: int) -> None:
    from mlx_lm.models.cache import trim_prompt_cache

    if n > 0:
        trim_prompt_cache(cache, n)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def reuse_session(state: dict[str, Any], lm, drafter, plan, prompt: list[int], extra: int = 0) -> ChatSession:
    """The session for this prompt, its caches trimmed to the longest prefix they share with it.

    `plan`: the KV plan (core/engine/kv_cache.KVPlan, None = float); `extra`: rollback room kept by
    sliding-window layers (the draft length when drafting)."""
    from .kv_cache import build_cache, can_trim

    key = (str(lm.path), drafter.key if drafter else None, plan, extra)

    def fresh() -> tuple[list, list]:
        return build_cache(lm.model, plan, extra), build_cache(drafter.model, None, extra) if drafter else []

    session: ChatSession | None = state.get(_KEY)
    if session is None or session.key != key:
        state.pop(_KEY, None)
        session = ChatSession(key, *fresh())
        state[_KEY] = session
    caches = [session.cache] + ([session.draft_cache] if drafter else [])
    keep = min(_common_prefix(session.tokens, prompt), len(prompt) - 1,
               *(cache_length(c) for c in caches))
    for c in caches:
        if not can_trim(c, cache_length(c) - keep):
            keep = 0
    if keep == 0:
        session.cache, session.draft_cache = fresh()
    else:
        for c in caches:
            _trim(c, cache_length(c) - keep)
    session.tokens = list(prompt[:keep])
    session.reused = keep
    return session

"""The conversation's KV cache kept on the engine between turns, so a follow-up prefills only what is new.

One session lives in `ctx.state`: the chat model's cache (and the drafter's), and the tokens they hold.
A new prompt keeps the longest common prefix and trims the rest (regenerate, edited history, another
conversation); a cache that cannot be trimmed (a full sliding window) is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import TemperError

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


def head_dims(model) -> set[int]:
    args = getattr(model, "args", None)
    dims = set()
    for key in ("head_dim", "global_head_dim"):
        if isinstance(getattr(args, key, None), int):
            dims.add(getattr(args, key))
    if not dims and args is not None and getattr(args, "num_attention_heads", None):
        dims.add(args.hidden_size // args.num_attention_heads)
    return dims


def kv_group_size(model) -> int:
    """The largest MLX group size (64, 32) that divides every attention head size."""
    dims = head_dims(model)
    for gs in (64, 32):
        if all(d % gs == 0 for d in dims):
            return gs
    raise TemperError(
        f"this model's attention heads are {'/'.join(map(str, sorted(dims)))} wide; KV-cache quantization "
        "needs a multiple of 32: turn it off for this model"
    )


def check_kv_bits(cache: list, kv_bits: int | None, model_name: str) -> None:
    if kv_bits is None:
        return
    if kv_bits not in (4, 8):
        raise TemperError(f"kv bits must be 4 or 8 (got {kv_bits})")
    from mlx_lm.models.cache import KVCache, QuantizedKVCache

    unsupported = sorted({type(c).__name__ for c in cache if not isinstance(c, (KVCache, QuantizedKVCache))})
    if unsupported:
        raise TemperError(
            f"{model_name} uses {', '.join(unsupported)} layers (sliding window or recurrent state), which "
            "mlx-lm 0.32 cannot quantize: turn KV-cache quantization off for this model"
        )


def reuse_session(state: dict[str, Any], lm, drafter, kv_bits: int | None, prompt: list[int]) -> ChatSession:
    """The session for this prompt, its caches trimmed to the longest prefix they share with it."""
    from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache

    key = (str(lm.path), drafter.key if drafter else None, kv_bits)
    session: ChatSession | None = state.get(_KEY)
    if session is None or session.key != key:
        state.pop(_KEY, None)
        cache = make_prompt_cache(lm.model)
        check_kv_bits(cache, kv_bits, lm.name)
        if kv_bits:
            kv_group_size(lm.model)
        draft = make_prompt_cache(drafter.model) if drafter else []
        session = ChatSession(key, cache, draft)
        state[_KEY] = session
    caches = [session.cache] + ([session.draft_cache] if drafter else [])
    keep = min(_common_prefix(session.tokens, prompt), len(prompt) - 1,
               *(cache_length(c) for c in caches))
    for c in caches:
        extra = cache_length(c) - keep
        if extra > 0 and not can_trim_prompt_cache(c):
            keep = 0
    if keep == 0:
        session.cache = make_prompt_cache(lm.model)
        session.draft_cache = make_prompt_cache(drafter.model) if drafter else []
    else:
        for c in caches:
            _trim(c, cache_length(c) - keep)
    session.tokens = list(prompt[:keep])
    session.reused = keep
    return session

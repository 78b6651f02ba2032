"""Multiple choice by log-likelihood (the "cloze" formulation): the model reads a context, then each
choice's text is scored by the sum of its tokens' log-probs, divided by the choice's length in
characters (lighteval's acc_norm "nospace": the leading space not counted). The likeliest choice wins.

Per item the context is run once; its KV cache is copied to one row per choice and the choices are
run together (right-padded: a causal model never lets a real token see the padding after it). Models
whose cache is not a plain KVCache (sliding windows...) run context + choice as whole rows instead.
MLX calls: run on the engine thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Progress = Callable[[int, int], None]


def _repeat_cache(cache: list[Any], rows: int) -> list[Any]:
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache

    out: list[Any] = []
    for c in cache:
        k, v = c.keys[..., :c.offset, :], c.values[..., :c.offset, :]
        copy = KVCache()
        copy.keys, copy.values = mx.repeat(k, rows, axis=0), mx.repeat(v, rows, axis=0)
        copy.offset = c.offset
        out.append(copy)
    return out


def _sum_picked(logits: Any, targets: list[list[int]], starts: list[int]) -> list[float]:
    """Sum over each row r of log p(targets[r][k]) read at position starts[r] + k of `logits`."""
    import mlx.core as mx

    logits = logits.astype(mx.float32)
    logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    out = []
    for r, (t, s) in enumerate(zip(targets, starts, strict=True)):
        rows = logp[r, s:s + len(t)]
        out.append(float(mx.take_along_axis(rows, mx.array(t)[:, None], axis=-1).sum()))
    return out


def choice_logprobs(model: Any, tokenizer: Any, context: str, choices: Sequence[str]) -> list[float]:
    """Sum of log-probs of each choice's tokens after `context` (choices carry their own leading space)."""
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    ctx_ids = list(tokenizer.encode(context, add_special_tokens=True))
    cont = [list(tokenizer.encode(c, add_special_tokens=False)) or [tokenizer.eos_token_id] for c in choices]
    width = max(len(c) for c in cont)
    cache = make_prompt_cache(model)
    if not all(type(c) is KVCache for c in cache):
        full = [ctx_ids + c for c in cont]
        longest = max(len(f) for f in full)
        logits = model(mx.array([f + [0] * (longest - len(f)) for f in full]))
        return _sum_picked(logits, cont, [len(ctx_ids) - 1] * len(cont))
    last = model(mx.array([ctx_ids]), cache=cache)[:, -1:, :]            # predicts each choice's first token
    logits = mx.repeat(last, len(cont), axis=0)
    if width > 1:
        rows = mx.array([c[:-1] + [0] * (width - len(c)) for c in cont])
        logits = mx.concatenate([logits, model(rows, cache=_repeat_cache(cache, len(cont)))], axis=1)
    return _sum_picked(logits, cont, [0] * len(cont))


def pick(logprobs: Sequence[float], choices: Sequence[str]) -> int:
    """The choice with the highest log-prob per character (its leading space not counted; ties: first)."""
    scores = [lp / max(1, len(c.lstrip(" "))) for lp, c in zip(logprobs, choices, strict=True)]
    return max(range(len(scores)), key=lambda i: scores[i])


def score_items(model: Any, tokenizer: Any, items: Sequence[tuple[str, Sequence[str]]], *,
                check: Callable[[], None] = lambda: None, progress: Progress | None = None) -> list[list[float]]:
    """choice_logprobs for each (context, choices) item, in order."""
    out = []
    for i, (context, choices) in enumerate(items):
        check()
        out.append(choice_logprobs(model, tokenizer, context, choices))
        if progress:
            progress(i + 1, len(items))
    return out

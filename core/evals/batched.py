"""Greedy batched generation for evals, on the engine thread, through mlx-lm's BatchGenerator.

Prompts that share a prefix (the few-shot examples) prefill it once: its KV cache is made a single time
and handed to every sequence of the group (BatchGenerator merges caches into a new batch cache, so the
shared one is only read). Prompts enter the batch shortest first, so a prefill group (and the decode
batch) pads little. Generation is greedy; a sequence ends at EOS, at `max_tokens`, as soon as its text
holds a stop string, or as soon as it matches a `done` pattern (the answer is complete, e.g. GSM8K's
"#### 12" line: what follows cannot change the score). A finished sequence leaves the batch at once,
and the next waiting prompt takes its slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .prompts import Prompt

Progress = Callable[[int, int], None]


def _encode(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=special))


def _prefix_caches(model: Any, tokenizer: Any, prompts: Sequence[Prompt],
                   check: Callable[[], None]) -> dict[str, Any]:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    caches: dict[str, Any] = {}
    for p in prompts:
        if p.prefix and p.prefix not in caches:
            check()
            cache = make_prompt_cache(model)
            model(mx.array([_encode(tokenizer, p.prefix, special=True)]), cache=cache)
            mx.eval([c.state for c in cache])
            caches[p.prefix] = cache
    return caches


def _inputs(tokenizer: Any, prompts: Sequence[Prompt], caches: dict[str, Any]) -> tuple[list[list[int]], list[Any]]:
    ids, cache_list = [], []
    for p in prompts:
        if p.prefix:
            ids.append(_encode(tokenizer, p.suffix, special=False))
            cache_list.append(caches[p.prefix])
        else:
            ids.append(_encode(tokenizer, p.suffix, special=True))
            cache_list.append(None)
    return ids, cache_list


def generate(model: Any, tokenizer: Any, prompts: Sequence[Prompt], *, max_tokens: int,
             stops: Sequence[str] = (), done: Sequence[re.Pattern[str]] = (), batch: int = 64,
             check: Callable[[], None] = lambda: None, progress: Progress | None = None,
             want_logprobs: Sequence[int] | None = None, share_prefix: bool = True,
             by_length: bool = True) -> list[Any]:
    """Greedy completions, in the order of `prompts`: texts, or with `want_logprobs` (token ids) the
    log-probs of those tokens at the first generated position (one step; `max_tokens` is then 1)."""
    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator

    if not prompts:
        return []
    if want_logprobs is not None:
        max_tokens = 1
    if share_prefix:
        caches = _prefix_caches(model, tokenizer, prompts, check)
        ids, cache_list = _inputs(tokenizer, prompts, caches)
    else:
        ids = [_encode(tokenizer, p.prefix + p.suffix, special=True) for p in prompts]
        cache_list = [None] * len(prompts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if by_length else list(range(len(ids)))
    eos = sorted(getattr(tokenizer, "eos_token_ids", None) or [tokenizer.eos_token_id])
    gen = BatchGenerator(model, max_tokens=max_tokens, stop_tokens=[[t] for t in eos],
                         completion_batch_size=batch, prefill_batch_size=min(batch, 8))
    reach = max((len(x) for x in stops), default=0) + 16
    try:
        uids = gen.insert([ids[i] for i in order], max_tokens=[max_tokens] * len(ids),
                          caches=[cache_list[i] for i in order])
        slot = dict(zip(uids, order, strict=True))
        tokens: dict[int, list[int]] = {u: [] for u in uids}
        texts: dict[int, str] = dict.fromkeys(uids, "")
        picked: dict[int, list[float]] = {}
        finished: set[int] = set()
        while len(finished) < len(uids):
            check()
            responses = gen.next_generated()
            if not responses:
                break
            for r in responses:
                if r.uid in finished:
                    continue
                if want_logprobs is not None and r.uid not in picked:
                    picked[r.uid] = [float(v) for v in r.logprobs[mx.array(list(want_logprobs))].tolist()]
                ended = r.finish_reason is not None
                if r.finish_reason != "stop":
                    tokens[r.uid].append(int(r.token))
                    if stops or done:
                        piece = tokenizer.decode([int(r.token)])
                        text = texts[r.uid] = texts[r.uid] + piece
                        tail = text[-(len(piece) + reach):]
                        if any(s in tail for s in stops) or any(d.search(text) for d in done):
                            if not ended:
                                gen.remove([r.uid])
                            ended = True
                if ended:
                    finished.add(r.uid)
                    if progress:
                        progress(len(finished), len(uids))
    finally:
        gen.close()
    by_slot = sorted(uids, key=slot.__getitem__)
    if want_logprobs is not None:
        return [picked.get(u, [float("-inf")] * len(want_logprobs)) for u in by_slot]
    return [tokenizer.decode(tokens[u]) for u in by_slot]


def letter_ids(tokenizer: Any, letters: Sequence[str] = ("A", "B", "C", "D")) -> list[int]:
    """The token of " A", " B"... as they follow "Answer:" (the last token of each encoding)."""
    ids = [_encode(tokenizer, f" {x}", special=False)[-1] for x in letters]
    if len(set(ids)) != len(ids):
        from .tasks import EvalError

        raise EvalError("this tokenizer gives the answer letters no distinct tokens")
    return ids

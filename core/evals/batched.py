"""Greedy batched generation for evals, on the engine thread, through mlx-lm's BatchGenerator.

Prompts that share a prefix (the few-shot examples) prefill it once: its KV cache is made a single time
and handed to every sequence of the group (BatchGenerator merges caches into a new batch cache, so the
shared one is only read). Prompts enter the batch shortest first, so a prefill group (and the decode
batch) pads little. Generation is greedy; a sequence ends at EOS, at `max_tokens`, as soon as its text
holds a stop string, or as soon as it matches a `done` pattern (the answer is complete, e.g. GSM8K's
"#### 12" line: what follows cannot change the score). A finished sequence leaves the batch at once (the
rows that stop in one step leave in one cache filter); waiting prompts join REFILL at a time once that many
slots are free, so a prefill group and a cache merge serve several rows, not one each. `on_done` hands
each completion over as soon as it is final (HumanEval runs it in the sandbox while the rest decode).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .prompts import Prompt

Progress = Callable[[int, int], None]
REFILL = 8      # waiting prompts join the batch this many at a time (one prefill group)


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
             by_length: bool = True, refill: int = REFILL,
             on_done: Callable[[int, str], None] | None = None) -> list[Any]:
    """Greedy completions, in the order of `prompts`: texts, or with `want_logprobs` (token ids) the
    log-probs of those tokens at the first generated position (one step; `max_tokens` is then 1).

    At most `batch` sequences decode together; waiting prompts join `refill` at a time (or all that are
    left), once that many slots are free: one prefill group and one cache merge per group, not per row.
    `on_done(i, text)` is called as soon as prompt i's completion is final (e.g. to score it while
    the others decode)."""
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
    waiting = deque(order)
    eos = sorted(getattr(tokenizer, "eos_token_ids", None) or [tokenizer.eos_token_id])
    batch = max(1, batch)
    group = max(1, min(refill, batch))
    gen = BatchGenerator(model, max_tokens=max_tokens, stop_tokens=[[t] for t in eos],
                         completion_batch_size=batch, prefill_batch_size=group)
    reach = max((len(x) for x in stops), default=0) + 16
    slot: dict[int, int] = {}
    tokens: dict[int, list[int]] = {}
    texts: dict[int, str] = {}
    picked: dict[int, list[float]] = {}
    results: dict[int, Any] = {}

    def admit(count: int) -> None:
        take = [waiting.popleft() for _ in range(min(count, len(waiting)))]
        if not take:
            return
        uids = gen.insert([ids[i] for i in take], max_tokens=[max_tokens] * len(take),
                          caches=[cache_list[i] for i in take])
        for u, i in zip(uids, take, strict=True):
            slot[u], tokens[u], texts[u] = i, [], ""

    def finish(uid: int) -> None:
        i = slot.pop(uid)
        if want_logprobs is not None:
            results[i] = picked.pop(uid, [float("-inf")] * len(want_logprobs))
        else:
            results[i] = tokenizer.decode(tokens[uid])
            if on_done is not None:
                on_done(i, results[i])
        tokens.pop(uid, None)
        texts.pop(uid, None)
        if progress:
            progress(len(results), len(ids))

    try:
        admit(batch)
        while slot:
            check()
            responses = gen.next_generated()
            if not responses:
                break
            stopped: list[int] = []
            for r in responses:
                if r.uid not in slot:
                    continue
                if want_logprobs is not None and r.uid not in picked:
                    picked[r.uid] = [float(v) for v in r.logprobs[mx.array(list(want_logprobs))].tolist()]
                ended = r.finish_reason is not None
                if r.finish_reason != "stop":
                    tokens[r.uid].append(int(r.token))
                    if not ended and (stops or done):
                        piece = tokenizer.decode([int(r.token)])
                        text = texts[r.uid] = texts[r.uid] + piece
                        tail = text[-(len(piece) + reach):]
                        if any(s in tail for s in stops) or any(d.search(text) for d in done):
                            stopped.append(r.uid)
                            ended = True
                if ended:
                    finish(r.uid)
            if stopped:
                gen.remove(stopped)                 # one cache filter for all rows stopped this step
            free = batch - len(slot)
            if waiting and (free >= group or free >= len(waiting)):
                admit(free)
        for uid in list(slot):                      # the generator ran dry early: keep what each row has
            finish(uid)
    finally:
        gen.close()
    return [results[i] for i in range(len(ids))]


def letter_ids(tokenizer: Any, letters: Sequence[str] = ("A", "B", "C", "D")) -> list[int]:
    """The token of " A", " B"... as they follow "Answer:" (the last token of each encoding)."""
    ids = [_encode(tokenizer, f" {x}", special=False)[-1] for x in letters]
    if len(set(ids)) != len(ids):
        from .tasks import EvalError

        raise EvalError("this tokenizer gives the answer letters no distinct tokens")
    return ids

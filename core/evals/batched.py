"""Greedy batched generation for evals, on the engine thread, through mlx-lm's BatchGenerator.

Prompts that share a prefix (the few-shot examples) prefill it once. Where every prompt shares one prefix
(GSM8K) and the model's attention allows it, the batch keeps that prefix's KV cache once and each row only
its own tokens (prefix_attention.py: no per-row copy to read at every step or to copy at every merge);
otherwise (MMLU: one prefix per subject) the prefix's cache is handed to every sequence of its group
(BatchGenerator merges caches into a new batch cache, so the shared one is only read). The batch is
capped by memory (memory.py: rows x KV bytes per row + the model must fit). Prompts enter the batch shortest first, so a prefill group (and the decode
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

from . import memory, prefix_attention
from .loops import LoopRule, period
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


def _shared(model: Any, prompts: Sequence[Prompt], caches: dict[str, Any]) -> list[tuple[Any, Any]] | None:
    """The one prefix all prompts share, as KV kept once for the batch; None where that does not apply."""
    if len(caches) != 1 or any(not p.prefix for p in prompts):
        return None
    (cache,) = caches.values()
    if not (prefix_attention.usable(cache) and prefix_attention.install(model)):
        return None
    return prefix_attention.prefix_kv(cache)


def batch_for_memory(model: Any, batch: int, *, own_tokens: int, shared_tokens: int = 0,
                     room: tuple[int, int] | None = None) -> int:
    """`batch` capped so that the rows' KV caches (`own_tokens` each) fit in memory beside the model and
    the shared prefix. `room`: (memory, model bytes), measured when None (memory.available)."""
    mem, model_bytes = room if room is not None else memory.available(model)
    return memory.cap(batch, memory=mem, model_bytes=model_bytes, tokens=own_tokens,
                      kv_per_token=memory.kv_bytes_per_token(model), shared_tokens=shared_tokens)


def generate(model: Any, tokenizer: Any, prompts: Sequence[Prompt], *, max_tokens: int,
             stops: Sequence[str] = (), done: Sequence[re.Pattern[str]] = (), batch: int = 64,
             check: Callable[[], None] = lambda: None, progress: Progress | None = None,
             want_logprobs: Sequence[int] | None = None, share_prefix: bool = True,
             by_length: bool = True, refill: int = REFILL,
             on_done: Callable[[int, str], None] | None = None, cascade: bool = True,
             room: tuple[int, int] | None = None, loops: LoopRule | None = None) -> list[Any]:
    """Greedy completions, in the order of `prompts`: texts, or with `want_logprobs` (token ids) the
    log-probs of those tokens at the first generated position (one step; `max_tokens` is then 1).

    At most `batch` sequences decode together; waiting prompts join `refill` at a time (or all that are
    left), once that many slots are free: one prefill group and one cache merge per group, not per row.
    `on_done(i, text)` is called as soon as prompt i's completion is final (e.g. to score it while
    the others decode). `cascade=False` copies a prefix shared by all prompts into every row (as for
    several prefixes); `room` is (memory, model bytes) for the memory cap (None: measured). With `loops`,
    a row caught in a repetition loop is finished by repeating its block to `max_tokens` (loops.py)."""
    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator

    if not prompts:
        return []
    if want_logprobs is not None:
        max_tokens = 1
    shared_tokens = 0
    if share_prefix:
        caches = _prefix_caches(model, tokenizer, prompts, check)
        shared = _shared(model, prompts, caches) if cascade else None
        if shared is not None:
            ids = [_encode(tokenizer, p.suffix, special=False) for p in prompts]
            cache_list = [prefix_attention.row_caches(shared)] * len(prompts)
            shared_tokens = int(shared[0][0].shape[2])
            own = max(len(x) for x in ids)
        else:
            ids, cache_list = _inputs(tokenizer, prompts, caches)
            own = max(len(x) + (caches[p.prefix][0].offset if p.prefix else 0) for x, p in zip(ids, prompts, strict=True))
    else:
        ids = [_encode(tokenizer, p.prefix + p.suffix, special=True) for p in prompts]
        cache_list = [None] * len(prompts)
        own = max(len(x) for x in ids)
    batch = batch_for_memory(model, max(1, batch), own_tokens=own + max_tokens, shared_tokens=shared_tokens,
                             room=room)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i])) if by_length else list(range(len(ids)))
    waiting = deque(order)
    eos = sorted(getattr(tokenizer, "eos_token_ids", None) or [tokenizer.eos_token_id])
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

    def push(uid: int, token: int, last: bool) -> bool:
        """Add a generated token; True if the text now holds a stop string or a done pattern."""
        tokens[uid].append(token)
        if last or not (stops or done):
            return False
        piece = tokenizer.decode([token])
        text = texts[uid] = texts[uid] + piece
        tail = text[-(len(piece) + reach):]
        return any(s in tail for s in stops) or any(d.search(text) for d in done)

    def extrapolate(uid: int) -> bool:
        """A row in a repetition loop: repeat its block up to max_tokens (stop checks as when decoding)."""
        seq = tokens[uid]
        p = period(seq, loops) if loops else None
        if p is None:
            return False
        while len(seq) < max_tokens and not push(uid, seq[-p], len(seq) + 1 >= max_tokens):
            pass
        return True

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
                    if push(r.uid, int(r.token), ended) or (not ended and loops and extrapolate(r.uid)):
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

"""Continuous batching: k concurrent requests through mlx-lm's `BatchGenerator`, for k in 1, 2, 4, 8...

All k requests are inserted at once (prefill batched up to k), then decoded together until each has
`tg` tokens (no stop tokens: EOS is disabled). Per request we time its first token; the aggregate decode
rate is all tokens after each request's first, over the time from the first first-token to the last
token. Each size is repeated n times (after one short uncounted warm-up): the row holds the mean and sd
of the aggregate rate and every request's TTFT. Speedup is that mean over the 1× mean (the first size in
the list if 1 is not in it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from .metrics import Stat
from .prompts import PromptMaker
from .results import BatchRow


def batch_request(ctx: Any, model: Any, prompts: list[list[int]], tg: int) -> BatchRow:
    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator

    k = len(prompts)
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    gen = BatchGenerator(model, max_tokens=tg, stop_tokens=None, prefill_batch_size=k,
                         completion_batch_size=k)
    try:
        start = time.perf_counter()
        uids = gen.insert(prompts, max_tokens=[tg] * k)
        first: dict[int, float] = {}
        last: dict[int, float] = {}
        count = dict.fromkeys(uids, 0)
        while len(last) < k:
            responses = gen.next_generated()
            now = time.perf_counter()
            for r in responses:
                first.setdefault(r.uid, now)
                count[r.uid] += 1
                if r.finish_reason is not None:
                    last[r.uid] = now
            ctx.check()
            if not responses and not gen._unprocessed_sequences and len(gen._generation_batch) == 0:
                break  # nothing left to do (should not happen): don't spin
        end = max(last.values(), default=time.perf_counter())
        mx.synchronize()
    finally:
        gen.close()
    t_decode0 = min(first.values(), default=start)
    decoded = sum(max(c - 1, 0) for c in count.values())
    generated = sum(count.values())
    return BatchRow(
        concurrency=k,
        prompt_tokens=len(prompts[0]),
        tg=tg,
        ttft=[first.get(u, math.nan) - start for u in uids],
        generated=generated,
        e2e=end - start,
        decode_tps=decoded / (end - t_decode0) if end > t_decode0 else math.nan,
        throughput=(sum(len(p) for p in prompts) + generated) / (end - start),
        peak_memory=int(mx.get_peak_memory()),
    )


def run_batch(ctx: Any, model: Any, maker: PromptMaker, sizes: list[int], pp: int, tg: int, *,
              repeats: int = 1, warmup: bool = True,
              on_done: Callable[[int, dict[str, Any]], None] | None = None) -> list[BatchRow]:
    """Each batch size: one short uncounted warm-up (its own kernels compile), then `repeats` timed runs."""
    rows: list[BatchRow] = []
    for k in sizes:
        if warmup:
            batch_request(ctx, model, [maker.make(pp) for _ in range(k)], min(tg, 8))
        runs = [batch_request(ctx, model, [maker.make(pp) for _ in range(k)], tg) for _ in range(max(repeats, 1))]
        tps = Stat.of([r.decode_tps for r in runs])
        row = BatchRow(
            concurrency=k, prompt_tokens=pp, tg=tg, ttft=[t for r in runs for t in r.ttft],
            generated=runs[0].generated, e2e=Stat.of([r.e2e for r in runs]).mean, decode_tps=tps.mean,
            throughput=Stat.of([r.throughput for r in runs]).mean,
            peak_memory=max(r.peak_memory for r in runs), n=len(runs), decode_tps_sd=tps.sd,
        )
        rows.append(row)
        if on_done:
            on_done(k, {"decode_tps": row.decode_tps, "ttft": Stat.of(row.ttft).mean})
    base = next((r for r in rows if r.concurrency == 1), rows[0] if rows else None)
    for r in rows:
        r.speedup = r.decode_tps / base.decode_tps if base and base.decode_tps else math.nan
    return rows

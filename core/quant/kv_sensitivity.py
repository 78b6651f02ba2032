"""KV-cache sensitivity: how much quantizing one layer's cache moves the next-token distributions.

For each cache the model builds (one per layer that owns keys and values; KV-shared layers read the cache
of the layer they share with, so they count with it) and each width in (4, 8): the calibration text is
run through the model in chunks, with only that cache quantized, and the KL divergence from the float
cache's next-token distributions (the one reference of core/quant/reference.py) is averaged over every
position. Chunks make later tokens read keys and values from the cache, as in generation. Cost: 1 + 2 x
caches forward passes over the text.

The allocation starts every cache at 8 bits and moves caches to 4 bits, cheapest ΔKL per byte saved
first, until the mean width over the cache's bytes at `context` tokens reaches `target_bits` (sliding
layers hold at most their window, so they weigh less). The result is written to `kv_config.json` next to
the model (core/engine/kv_config.py), where chat and bench pick it up by default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.eta import EtaClock
from ..engine.events import Progress
from ..errors import TemperError
from .reference import Reference

WIDTHS = (4, 8)


@dataclass
class KVCalibrateRequest:
    model: str
    target_bits: float = 6.0   # mean width over cache bytes at `context`; 4 = all 4-bit, 8 = all 8-bit
    samples: int = 4
    seq_len: int = 256
    chunk: int = 32            # tokens per forward step: later chunks read the (quantized) cache
    context: int = 8192        # the context length whose cache bytes weigh each layer
    calibration: str | None = None

    def validate(self) -> KVCalibrateRequest:
        if not 4 <= self.target_bits <= 8:
            raise TemperError(f"--target-bits must be between 4 and 8 (got {self.target_bits})")
        if self.samples < 1 or self.seq_len < 2 * self.chunk or self.chunk < 1:
            raise TemperError("need at least one sample of two chunks (--seq-len >= 2 x --chunk)")
        if self.context < 1:
            raise TemperError("--context must be at least 1 token")
        return self


@dataclass
class KVSensitivity:
    kl: dict[int, list[float]]        # width -> ΔKL per cache
    layers: list[int]                 # the layer owning each cache
    kinds: list[str]                  # "full" | "sliding" | other cache kinds (stay float)
    weights: list[int]                # bytes per element-width unit at `context` (tokens x kv width)
    bits: list[int | None] = field(default_factory=list)
    seconds: float = 0.0
    forward_passes: int = 0


def cache_layout(model: Any, context: int) -> tuple[list[int], list[str], list[int]]:
    """Per cache: owning layer, kind, and tokens x (heads x head size) it holds at `context` tokens."""
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

    cache = make_prompt_cache(model)
    model(mx.array([[0, 1]]), cache=cache)  # learn each cache's width from a two-token step
    layers, kinds, weights = [], [], []
    for i, c in enumerate(cache):
        layers.append(i)
        if isinstance(c, RotatingKVCache):
            kinds.append("sliding")
            held = min(context, c.max_size)
        elif isinstance(c, KVCache):
            kinds.append("full")
            held = context
        else:
            kinds.append(type(c).__name__)
            held = 0
        k = c.keys if held else None
        weights.append(held * (k.shape[1] * k.shape[3]) if k is not None else 0)
    return layers, kinds, weights


def measure(ctx: Any, model: Any, chunks: Any, chunk: int, group_size: int) -> KVSensitivity:
    import mlx.core as mx

    from ..engine.kv_cache import KVPlan, build_cache

    layers, kinds, weights = cache_layout(model, 1)
    n = len(layers)
    quantizable = [i for i in range(n) if kinds[i] in ("full", "sliding")]
    total = 1 + len(quantizable) * len(WIDTHS)
    t0 = time.perf_counter()
    done = 0

    def logits(row: list[int], plan: KVPlan | None) -> mx.array:
        """(1, L, V) fp32 logits of one row, fed `chunk` tokens at a time through a cache built for `plan`."""
        cache = build_cache(model, plan)
        parts = [model(mx.array(row[s:s + chunk])[None], cache=cache)[0] for s in range(0, len(row), chunk)]
        out = mx.concatenate(parts, axis=0).astype(mx.float32)[None]
        mx.eval(out)
        ctx.check()
        return out

    clock = EtaClock()       # equal steps (one forward pass over the text each); the first also compiles

    def emit(message: str) -> None:
        ctx.emit(Progress(ctx.job_id, "kv", done, total, message, {"eta_s": clock.estimate("kv", done, total)}))

    emit("float reference")
    xs = [mx.array(row)[None] for row in chunks]
    ref = Reference.from_logits(xs, (logits(row, None) for row in chunks))   # one row's logits at a time
    done += 1
    kl: dict[int, list[float]] = {b: [0.0] * n for b in WIDTHS}
    for i in quantizable:
        for b in WIDTHS:
            emit(f"cache {i} ({kinds[i]}) at {b} bits")
            bits = [None] * n
            bits[i] = b
            plan = KVPlan(tuple(bits), group_size)
            summed = sum(ref.kl_sum(batch, logits(row, plan))
                         for batch, row in zip(ref.batches, chunks, strict=True))
            kl[b][i] = max(0.0, summed / ref.tokens)
            done += 1
    emit("done")
    return KVSensitivity(kl, layers, kinds, weights, seconds=time.perf_counter() - t0, forward_passes=total)


def allocate(sens: KVSensitivity, target_bits: float) -> list[int | None]:
    """Start at 8 bits everywhere; move caches to 4 bits by least ΔKL per byte saved until the
    byte-weighted mean width is at most `target_bits`."""
    n = len(sens.layers)
    bits: list[int | None] = [8 if k in ("full", "sliding") else None for k in sens.kinds]
    weights = [w if bits[i] else 0 for i, w in enumerate(sens.weights)]
    total = sum(weights) or 1

    def mean() -> float:
        return sum((bits[i] or 0) * weights[i] for i in range(n)) / total

    order = sorted((i for i in range(n) if bits[i]),
                   key=lambda i: (sens.kl[4][i] - sens.kl[8][i]) / max(weights[i], 1))
    for i in order:
        if mean() <= target_bits + 1e-9:
            break
        bits[i] = 4
    return bits


def run_kv_calibration(ctx: Any, request: KVCalibrateRequest) -> dict[str, Any]:
    """The engine job behind `temper kv-calibrate`: measure, allocate, write kv_config.json."""
    from ..engine import kv_config
    from ..engine.models import ensure_loaded
    from . import calibration

    request.validate()
    lm = ensure_loaded(ctx.state, request.model)
    gs = kv_config.kv_group_size(lm.model)
    tokens = calibration.calibration_set(lm.tokenizer, samples=request.samples, seq_len=request.seq_len,
                                         source=request.calibration)
    sens = measure(ctx, lm.model, [list(map(int, row)) for row in tokens.chunks], request.chunk, gs)
    _, _, sens.weights = cache_layout(lm.model, request.context)
    sens.bits = allocate(sens, request.target_bits)
    weights = [w if sens.bits[i] else 0 for i, w in enumerate(sens.weights)]
    mean_bits = sum((b or 0) * w for b, w in zip(sens.bits, weights, strict=False)) / (sum(weights) or 1)
    data = {
        "group_size": gs, "bits": sens.bits, "layers": sens.layers, "kinds": sens.kinds,
        "target_bits": request.target_bits, "mean_bits": round(mean_bits, 3), "context": request.context,
        "kl": {str(b): [round(x, 8) for x in v] for b, v in sens.kl.items()},
        "calibration": tokens.meta(), "chunk": request.chunk,
        "seconds": round(sens.seconds, 1), "forward_passes": sens.forward_passes,
    }
    path = kv_config.write(Path(lm.path), data)
    return {**data, "file": str(path)}

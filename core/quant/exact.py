"""The exact per-tensor measure: quantize one tensor, run the text, KL of the logits against the float model.

Slow (tensors × candidates forward passes) but the ground truth the fast estimates are judged against.
The sensitivity pass (core/quant/sensitivity) is the production path; this small exact pass serves the
tests and the quality benchmark when that module is not available, and as a check on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .candidates import Candidate
from .evaluate import model_logprobs
from .scores import SensitivityTable


def fake_quantize(weight: Any, c: Candidate) -> Any:
    """Quantize and dequantize a weight (same dtype back): what the model sees after quantization."""
    import mlx.core as mx

    q = mx.quantize(weight, group_size=c.group_size, bits=c.bits, mode=c.mode)
    biases = q[2] if len(q) == 3 else None
    return mx.dequantize(q[0], q[1], biases, group_size=c.group_size, bits=c.bits, mode=c.mode).astype(weight.dtype)


def exact_scores(
    model: Any, table: SensitivityTable, chunks: Sequence[Sequence[int]], candidates: Sequence[Candidate],
    *, on_tensor: Callable[[int, int, str], None] | None = None, quant_dtype: Any = None,
) -> SensitivityTable:
    """Fill `table` (an inventory of `model`) with exact ΔKL per tensor per candidate. Engine thread only.

    `quant_dtype`: the dtype the weights will really be quantized in, when the model runs in another
    one for speed (e.g. a bf16 model scored in float32: scales are still computed in bf16)."""
    refs = [model_logprobs(model, c) for c in chunks]
    probs = [np.exp(r) for r in refs]
    modules = dict(model.named_modules())
    for i, t in enumerate(table.tensors):
        module = modules[t.path]
        original = module.weight
        for c in candidates:
            if not c.fits(t.shape):
                continue
            source = original if quant_dtype is None else original.astype(quant_dtype)
            module.weight = fake_quantize(source, c).astype(original.dtype)
            kl = [float((p * (r - model_logprobs(model, ch))).sum(axis=-1).mean())
                  for p, r, ch in zip(probs, refs, chunks, strict=True)]
            t.scores[c.key] = max(float(np.mean(kl)), 0.0)
            t.methods[c.key] = "exact"
        module.weight = original
        if on_tensor:
            on_tensor(i + 1, len(table.tensors), t.path)
    table.candidates = [c.key for c in sorted(candidates, key=lambda c: (c.bits_per_weight(), c.key))]
    return table

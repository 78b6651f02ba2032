"""Fast sensitivity estimate: diagonal Fisher information × quantization error, all tensors at once.

For a small weight change ΔW, the KL between the model's next-token distributions before and after is,
to second order, ½ ΔWᵀ F ΔW, with F the Fisher information of the model's own predictions. We keep
F's diagonal, estimated from one backward pass per calibration chunk with labels *sampled from the
model itself* (then the cross-token terms of the squared sequence gradient vanish in expectation, so
Σ_chunks g² estimates the summed per-token Fisher diagonal). Quantization errors of different weights
are nearly independent, which is what makes the diagonal a fair approximation. Then for every
tensor and candidate, with ΔW the fake-quantization error:

    ΔKL_est = ½ · Σ_ij F_ij · ΔW_ij²  / tokens          (nats per token, same scale as the exact KL)

Cost: one forward + backward per chunk (plus cheap quantize/dequantize per candidate), against
tensors × candidates forward passes for the exact measure. Being second order, it underestimates
large errors (2-3 bit) where the KL is no longer quadratic; hybrid mode corrects the scale per
candidate from the tensors it measures exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import kl
from .candidates import Candidate
from .tensors import QTensor, fake_quantize


def fisher_diagonal(model: Any, chunks: np.ndarray, tensors: list[QTensor], *, seed: int = 0,
                    draws: int = 1, check: Callable[[], None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Per tensor path: Σ over chunks of the squared gradient of the chunk's log-likelihood of labels
    sampled from the model (averaged over `draws` label samples). fp32 arrays shaped like the weights."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    def loss_fn(m: Any, x: Any, key: Any) -> Any:
        logits = kl.forward(m, x)
        labels = mx.stop_gradient(mx.random.categorical(mx.stop_gradient(logits), key=key))
        return nn.losses.cross_entropy(logits, labels, reduction="sum")

    grad_fn = nn.value_and_grad(model, loss_fn)
    wanted = {t.path + ".weight": t.path for t in tensors}
    acc: dict[str, Any] = {}
    key = mx.random.key(seed)
    for i in range(chunks.shape[0]):
        x = mx.array(chunks[i:i + 1])
        for _ in range(draws):
            if check is not None:
                check()
            key, sub = mx.random.split(key)
            _, grads = grad_fn(model, x, sub)
            for name, g in tree_flatten(grads):
                if name in wanted:
                    path = wanted[name]
                    sq = g.astype(mx.float32) ** 2
                    acc[path] = acc[path] + sq if path in acc else sq
            mx.eval(list(acc.values()))
        if progress is not None:
            progress(i + 1, chunks.shape[0])
    return {p: a / draws for p, a in acc.items()}


def estimate_scores(tensor: QTensor, fisher: Any, candidates: list[Candidate], tokens: int,
                    storage_dtype: Any = None) -> dict[str, float]:
    """ΔKL estimate (nats/token) for each candidate that fits this tensor."""
    import mlx.core as mx

    weight = tensor.module["weight"]
    out: dict[str, float] = {}
    for c in candidates:
        if not c.fits(tensor.shape):
            continue
        err = fake_quantize(weight, c, storage_dtype).astype(mx.float32) - weight.astype(mx.float32)
        out[c.key] = float((0.5 * (fisher * err * err).sum() / tokens).item())
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    if len(a) != len(b) or len(a) < 2:
        return float("nan")
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), dtype=float)
    ranks[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):   # ties share their mean rank
        idx = np.nonzero(v == value)[0]
        if len(idx) > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks

"""Fast sensitivity estimate from the Fisher information: all tensors and candidates in one pass.

For a small weight change ΔW, the KL between the model's next-token distributions before and after is,
to second order, ½ ΔWᵀ F ΔW, with F the Fisher information of the model's own predictions. One
backward pass per calibration chunk, with labels *sampled from the model itself*, gives a sequence
gradient G_s whose outer product estimates F (the cross-token terms vanish in expectation). With ΔW
the fake-quantization error of a tensor under a candidate, two estimates of ΔWᵀ F ΔW come from the
same gradients:

- diagonal:  Σ_s Σ_ij G_s,ij² ΔW_ij²  (F's diagonal only: low variance, but blind to errors that are
  correlated within a row, e.g. the shared rounding offset of a 2-bit group)
- projected: Σ_s ⟨G_s, ΔW⟩²            (the full empirical Fisher: unbiased, noisy with few chunks)

The score is their mean (shrinkage of the projected form toward the diagonal), in nats per token:

    ΔKL_est = ½ · ½ (diagonal + projected) / tokens

On the trained fixture this ranks tensors better at 2 bits than either form alone and as well as the
diagonal at 3-8 bits (docs/benchmarks/sensitivity_rank.md). Cost: one forward + backward per chunk
plus one quantize/dequantize per tensor and candidate (kept in memory when they fit `cache_bytes`,
else redone per chunk), against tensors × candidates forward passes for the exact measure. Being
second order, it still underestimates some large (2-bit) errors; hybrid mode measures the most
damaging tensors exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import kl
from .candidates import Candidate
from .tensors import QTensor, fake_quantize


def fisher_estimates(model: Any, chunks: np.ndarray, tensors: list[QTensor], candidates: list[Candidate], *,
                     storage_dtype: Any = None, seed: int = 0, draws: int = 1,
                     check: Callable[[], None] | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     cache_bytes: int = 1 << 30) -> dict[str, dict[str, float]]:
    """Per tensor path, per fitting candidate key: the ΔKL estimate in nats per token."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    def loss_fn(m: Any, x: Any, key: Any) -> Any:
        logits = kl.forward(m, x)
        labels = mx.stop_gradient(mx.random.categorical(mx.stop_gradient(logits), key=key))
        return nn.losses.cross_entropy(logits, labels, reduction="sum")

    fits = {t.path: [c for c in candidates if c.fits(t.shape)] for t in tensors}
    keep = sum(t.params * len(fits[t.path]) * 4 for t in tensors) <= cache_bytes
    deltas: dict[tuple[str, str], Any] = {}

    def delta(t: QTensor, c: Candidate) -> Any:
        if (t.path, c.key) in deltas:
            return deltas[(t.path, c.key)]
        w = t.module["weight"].astype(mx.float32)
        d = fake_quantize(w, c, storage_dtype).astype(mx.float32) - w
        if keep:
            deltas[(t.path, c.key)] = d
        return d

    grad_fn = nn.value_and_grad(model, loss_fn)
    by_name = {t.path + ".weight": t for t in tensors}
    diag = {(t.path, c.key): 0.0 for t in tensors for c in fits[t.path]}
    proj = dict(diag)
    key = mx.random.key(seed)
    n = chunks.shape[0]
    for i in range(n):
        x = mx.array(chunks[i:i + 1])
        for _ in range(draws):
            if check is not None:
                check()
            key, sub = mx.random.split(key)
            _, grads = grad_fn(model, x, sub)
            sums: dict[tuple[str, str], tuple[Any, Any]] = {}
            for name, g in tree_flatten(grads):
                t = by_name.get(name)
                if t is None:
                    continue
                g = g.astype(mx.float32)
                g2 = g * g
                mine = {}
                for c in fits[t.path]:
                    d = delta(t, c)
                    mine[(t.path, c.key)] = ((g2 * d * d).sum(), (g * d).sum())
                mx.eval([v for pair in mine.values() for v in pair], list(deltas.values()) if keep else [])
                sums.update(mine)
            for k, (dg, pj) in sums.items():
                diag[k] += dg.item() / draws
                proj[k] += pj.item() ** 2 / draws
        if progress is not None:
            progress(i + 1, n)
    tokens = int(chunks.size)
    out: dict[str, dict[str, float]] = {t.path: {} for t in tensors}
    for (path, ckey), dg in diag.items():
        out[path][ckey] = 0.25 * (dg + proj[(path, ckey)]) / tokens
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

"""The output head's passes (logit_head.py) with the vocabulary-wide exp and log in NumPy, for MLX on a CPU.

MLX's CPU backend computes transcendental functions with scalar code: on this project's 2-core x86 machine
`mx.exp` costs 15-20 ns per element (compiled or not) against ~0.5 ns for NumPy's vectorised `np.exp`, and
a SmolLM2 Fisher sequence (256 tokens × 49,152 vocabulary: 12.6M logits, each through an exp in pass A, a
Gumbel noise of two logs, and another exp in pass B) spent 1.08 s in the head, 0.47 s this way. The products
with the head stay in MLX (the BLAS temper preloads); only the element-wise work moves, a vocabulary slice
at a time (the same `slice_rows`, the same `Kept` holder: memory as in logit_head.py).

Labels are sampled by inverse CDF during pass B (one uniform per token, against the running mass of
softmax(z) over the slices) instead of Gumbel-max in pass A: the same distribution, other draws, and pass
B's probabilities are the ones the sampling reads. A label's one-hot is subtracted in the slice it falls in,
before that slice's product, so d(loss)/d(logits) is final when it is multiplied and kept for pass C.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .host_math import host
from .logit_head import Head, Kept, ranges


def rng_from_key(key: Any) -> np.random.Generator:
    """A NumPy generator seeded by an MLX PRNG key (the pass's per-sequence key: reproducible draws)."""
    return np.random.default_rng([int(v) for v in np.array(key).reshape(-1)])


def _logits(head: Head, h: Any, a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(capped logits, d capped / d raw) of rows a..b as float32 NumPy; the product in MLX."""
    z = host(h @ head.rows(a, b).T)                 # read in place, never written to below
    if head.softcap is None:
        return z, None
    t = np.tanh(z / np.float32(head.softcap))
    return t * np.float32(head.softcap), 1.0 - t * t


def normaliser(head: Head, h: Any, rows: int, kept: Kept | None = None) -> np.ndarray:
    """Pass A: per token, the logsumexp of the logits (float32), by a running max and sum over the slices."""
    m = s = None
    for a, b in ranges(head.vocab, rows):
        z, dcap = _logits(head, h, a, b)
        top = z.max(axis=1).astype(np.float64)
        if m is None:
            m, s = top, np.exp(z - top[:, None].astype(np.float32)).sum(axis=1, dtype=np.float64)
        else:
            new = np.maximum(m, top)
            s = s * np.exp(m - new) + np.exp(z - new[:, None].astype(np.float32)).sum(axis=1, dtype=np.float64)
            m = new
        if kept is not None and kept.on:
            kept.put(a, *((z,) if dcap is None else (z, dcap)))
    assert m is not None and s is not None
    return (m + np.log(s)).astype(np.float32)


def hidden_grad(head: Head, h: Any, lse: np.ndarray, rng: np.random.Generator, rows: int,
                kept: Kept | None = None) -> tuple[Any, np.ndarray]:
    """Pass B: (dL/dh (T × D, fp32 MLX), labels (T,) int32) with labels drawn from softmax(logits) here. With
    `kept`, each slice's d/d(raw logits), one-hot included, replaces its logits there."""
    import mlx.core as mx

    tokens = lse.shape[0]
    u = rng.random(tokens)
    mass = np.zeros(tokens)
    labels = np.full(tokens, -1, dtype=np.int64)
    out = None
    for a, b in ranges(head.vocab, rows):
        held = kept.get(a) if kept is not None else None
        z, dcap = (held if len(held) == 2 else (held[0], None)) if held is not None else _logits(head, h, a, b)
        p = np.exp(z - lse[:, None])
        here = p.sum(axis=1, dtype=np.float64)
        cross = np.nonzero((labels < 0) & (mass + here > u))[0]
        if b == head.vocab:                                  # float rounding left a little mass out: take
            cross = np.nonzero(labels < 0)[0]                #   the last slice for those rows
        if len(cross):
            c = np.cumsum(p[cross], axis=1, dtype=np.float64) + mass[cross, None]
            idx = np.minimum((c <= u[cross, None]).sum(axis=1), b - a - 1)
            labels[cross] = a + idx
            p[cross, idx] -= 1.0
        mass += here
        g = p if dcap is None else p * dcap
        part = mx.array(g) @ head.rows(a, b)
        out = part if out is None else out + part
        mx.eval(out)
        if kept is not None and kept.on:
            kept.slices[a] = (g,)
            kept.grads = True
    return out, labels.astype(np.int32)


def weight_grads(head: Head, h: Any, lse: np.ndarray, labels: np.ndarray, rows: int,
                 each: Callable[[int, int, Any], None], kept: Kept | None = None) -> None:
    """Pass C: `each(a, b, G)` with G = dL/dW[a:b] (fp32 MLX), from pass B's kept gradients when `kept`
    holds them, else recomputed from the logits, `lse` and `labels`."""
    import mlx.core as mx

    tokens = np.arange(len(labels))
    for a, b in ranges(head.vocab, rows):
        held = kept.get(a) if kept is not None and kept.grads else None
        if held is not None:
            g = held[0]
        else:
            z, dcap = _logits(head, h, a, b)
            g = np.exp(z - lse[:, None])
            inside = (labels >= a) & (labels < b)
            g[tokens[inside], labels[inside] - a] -= 1.0
            if dcap is not None:
                g *= dcap
        if kept is not None:
            kept.slices.pop(a, None)
        each(a, b, mx.array(g).T @ h)

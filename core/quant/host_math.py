"""The vocabulary-wide math of reference.py (logsumexp, exp of log-probs for KL, argmax, the tail's
tail mass) in NumPy, used when MLX computes on the CPU.

MLX's CPU backend computes exp and log with scalar code, ~15-20 ns an element even when compiled, while
NumPy's are SIMD at ~0.5 ns; additions, gathers and matrix products are fast in both. So on a CPU the
log-softmax of (tokens x 49152) logits cost more than the model's forward pass. The model's forward stays
in MLX; its logits are read in place (`host`: after mx.eval, NumPy shares the CPU buffer, no copy), and each
function here walks the positions in slices of at most `SLICE_BYTES` of logits, so its temporaries stay that
small whatever the vocabulary. Sums over the vocabulary accumulate in float64 (where MLX sums in float32),
results are float32. On Metal and CUDA nothing here runs: the MLX path is fast there and copying logits to
the host would not be.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

SLICE_BYTES = 32 << 20      # logits per step: the temporaries below are at most this large
FORCE: bool | None = None   # None: NumPy exactly when MLX computes on the CPU; True / False: always / never
#                             (the one switch for every NumPy form: here, logit_head_np.py, fisher_scoring_np.py)


def active() -> bool:
    """Whether the NumPy forms run: reference.py's vocabulary-wide math here, the Fisher head and the affine
    scoring (on MLX's CPU backend, unless FORCE says)."""
    if FORCE is not None:
        return FORCE
    from ..accel.compute import on_cpu_backend

    return on_cpu_backend()


def host(a: Any) -> np.ndarray:
    """An MLX array as NumPy, evaluated first; shares the buffer (no copy) for fp32 and integer arrays."""
    import mlx.core as mx

    if isinstance(a, np.ndarray):
        return a
    if a.dtype in (mx.bfloat16, mx.float16):
        a = a.astype(mx.float32)
    mx.eval(a)
    return np.asarray(a)


def _rows(a: np.ndarray) -> tuple[np.ndarray, Iterator[slice]]:
    """`a` as (positions, V) and slices of positions of at most SLICE_BYTES each."""
    flat = a.reshape(-1, a.shape[-1])
    step = max(1, SLICE_BYTES // max(1, flat.shape[1] * flat.itemsize))
    return flat, (slice(s, s + step) for s in range(0, flat.shape[0], step))


def logsumexp(a: np.ndarray) -> np.ndarray:
    """log(sum(exp(a))) over the last axis, kept as a (…, 1) float32 axis (as mx.logsumexp(keepdims=True))."""
    flat, slices = _rows(a)
    out = np.empty((flat.shape[0], 1), np.float32)
    for s in slices:
        m = flat[s].max(axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0).astype(np.float32)
        e = flat[s] - m
        np.exp(e, out=e)
        with np.errstate(divide="ignore"):      # every value -inf: -inf, as MLX
            out[s] = np.log(e.sum(axis=-1, keepdims=True, dtype=np.float64)) + m
    return out.reshape(*a.shape[:-1], 1)


def argmax(a: np.ndarray) -> np.ndarray:
    """Index of the largest value over the last axis."""
    return a.argmax(axis=-1)


def tail_mass(top: np.ndarray) -> np.ndarray:
    """log(1 - sum(exp(top))) over the last axis, kept: the log of the mass outside the top-k log-probs `top`,
    clamped away from -inf (as reference._log1mexp). In float64: the difference loses the digits that the top-k
    hold (a tail of 1e-3 keeps 4 fewer), which fp32 (MLX's path) cannot spare."""
    mass = np.exp(top.astype(np.float64)).sum(axis=-1, keepdims=True)
    return np.log(np.maximum(1.0 - mass, 1e-12)).astype(np.float32)


def nll(logits: np.ndarray, x: np.ndarray, lse: np.ndarray) -> float:
    """Minus the summed log-probs of each position's next token (the last position has none)."""
    if x.shape[-1] < 2:
        return 0.0
    picked = np.take_along_axis(logits[:, :-1], x[:, 1:, None].astype(np.int64), axis=-1)
    return -float((picked - lse[:, :-1]).sum(dtype=np.float64))


def kl_full(logp: np.ndarray, logits: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """Per position: sum(exp(logp) * (logp - (logits - lse))), the reference's full log-probs `logp`."""
    ref, _ = _rows(logp)
    flat, slices = _rows(logits)
    shift = lse.reshape(-1, 1)
    out = np.empty(flat.shape[0], np.float32)
    for s in slices:
        d = flat[s] - shift[s]               # the model's log-probs
        np.subtract(ref[s], d, out=d)        # log p - log q
        p = np.exp(ref[s])
        np.multiply(p, d, out=p)
        out[s] = p.sum(axis=-1, dtype=np.float64)
    return np.maximum(out.reshape(logits.shape[:-1]), 0.0)


def kl_top(idx: np.ndarray, top: np.ndarray, tail: np.ndarray, logits: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """Per position: KL with the reference kept as its top-k log-probs `top` (token ids `idx`) plus the log
    of the mass outside them `tail`; the model's mass outside the same ids is one outcome too."""
    q_top = np.take_along_axis(logits, idx.astype(np.int64), axis=-1) - lse
    q_tail = tail_mass(q_top)
    kl = (np.exp(top) * (top - q_top)).sum(axis=-1, dtype=np.float64) + \
        (np.exp(tail) * (tail - q_tail)).sum(axis=-1, dtype=np.float64)
    return np.maximum(kl.astype(np.float32), 0.0)

"""GPTQ's H-weighted clip search (rounding._choose_with_h) in NumPy on a thread pool, for MLX on a CPU.

For every (row, group) and every shrink factor p, the search rounds the group to the grid of p·(scale, bias)
and measures the output error dᵀ·H_gg·d. On MLX's CPU backend the element-wise part (a division, a rounding,
a clip: ~7 passes over every weight, 11 times) runs one kernel at a time on one thread; here groups are cut in
slices that the pool's threads search at once (NumPy's ufuncs and products release the GIL), each slice small
enough to stay in cache. The values are MLX's: the same float32 operations in the same order (np.rint is
mx.round's round-half-to-even); only the product dᵀ·H·d sums in another order, so a shrink whose error ties
another's to float32 rounding may be picked either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .fisher_scoring_np import pool, threads
from .rounding import keep_better, to_dtype

SLICE_ELEMENTS = 1 << 18      # weights per slice (1 MB of float32): a slice's temporaries stay in cache


def _search(wg: np.ndarray, hb: np.ndarray, s1: np.ndarray, b1: np.ndarray, bits: int, dtype: Any,
            shrinks: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """One slice of groups: wg (groups, rows, gs), hb (groups, gs, gs), s1/b1 (groups, rows) -> best (s, b)."""
    top = np.float32(2 ** bits - 1)
    best = None
    d = np.empty_like(wg)
    for p in shrinks:
        s, b = to_dtype(s1 * np.float32(p), dtype), to_dtype(b1 * np.float32(p), dtype)
        sx, bx = s[..., None], b[..., None]
        np.subtract(wg, bx, out=d)                   # d = s·clip(round((w - b) / s), 0, top) + b - w
        np.divide(d, sx, out=d)
        np.rint(d, out=d)
        np.clip(d, 0, top, out=d)
        np.multiply(d, sx, out=d)
        d += bx
        d -= wg
        best = keep_better(best, np.einsum("grk,grk->gr", np.matmul(d, hb), d), s, b)
    assert best is not None
    return best[1], best[2]


def choose_with_h(wg: np.ndarray, h_blocks: np.ndarray, s1: np.ndarray, b1: np.ndarray, bits: int, dtype: Any,
                  shrinks: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """rounding._choose_with_h's result: wg (rows, groups, gs) float32, h_blocks (groups, gs, gs), s1/b1 (rows,
    groups) mx.quantize's scale and bias -> the chosen (scales, biases), (rows, groups) float32."""
    rows, groups, gs = wg.shape
    w = np.ascontiguousarray(wg.transpose(1, 0, 2), dtype=np.float32)       # (groups, rows, gs)
    hb = np.ascontiguousarray(h_blocks, dtype=np.float32)
    st, bt = np.ascontiguousarray(s1.T), np.ascontiguousarray(b1.T)       # (groups, rows)
    step_g = max(1, SLICE_ELEMENTS // max(1, rows * gs))
    step_r = rows if step_g > 1 or rows * gs <= SLICE_ELEMENTS else max(1, SLICE_ELEMENTS // gs)
    jobs = [(g, r) for g in range(0, groups, step_g) for r in range(0, rows, step_r)]
    out_s = np.empty((groups, rows), np.float32)
    out_b = np.empty_like(out_s)

    def one(g: int, r: int) -> None:
        gg, rr = slice(g, g + step_g), slice(r, r + step_r)
        out_s[gg, rr], out_b[gg, rr] = _search(w[gg, rr], hb[gg], st[gg, rr], bt[gg, rr], bits, dtype, shrinks)

    if threads() == 1 or len(jobs) == 1:
        for job in jobs:
            one(*job)
    else:
        for f in [pool().submit(one, *job) for job in jobs]:
            f.result()
    return np.ascontiguousarray(out_s.T), np.ascontiguousarray(out_b.T)

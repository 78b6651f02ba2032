"""The Fisher scoring (fisher_scoring.py) for affine candidates in NumPy, on two threads, for MLX on a CPU.

MLX's CPU backend runs one element-wise kernel at a time on one thread (a second stream does not run
beside the first), and its compiled CPU kernels are not vectorised well. NumPy's ufuncs release the GIL,
so row slices scored on a small thread pool use every core: SmolLM2-135M's 211 tensors × 18 candidates
took 28 s in MLX on the 2-core dev machine (load ~2). The numbers are the MLX kernel's: the same fake
quantization (mx.quantize's grid, scales and biases rounded to the stored dtype, mx.dequantize's rounding
order, checked value for value in tests/core/test_estimate_kernel.py) and the same diagonal + grouped
terms, summed in float64.

Memory: the main thread converts one row slice (weights, D and S as float32, ≤ SLICE_BYTES each) at a time
and at most `threads` + 1 slices are in flight, so the working set stays a few slices whatever the tensor.
MLX is only touched on the calling (engine) thread; the workers see NumPy arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .candidates import Candidate
from .host_math import host
from .rounding import dtype_name, to_dtype

SLICE_BYTES = 1 << 20            # float32 bytes of weights per row slice: cache-sized (NumPy's passes stay fast),
#                                  and SmolLM2's 1.3-3.5 MB weights make several slices, one per thread at a time
#                                  (at 4 MB each was one slice on one thread: 123 -> 39 ms for a 1536 x 576 weight)
_POOL: ThreadPoolExecutor | None = None


def threads() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def pool() -> ThreadPoolExecutor:
    """The NumPy forms' worker threads (the scoring here, GPTQ's clip search), started on first use."""
    global _POOL
    if _POOL is None:
        from ..accel.numpy_blas import single_threaded

        single_threaded()        # the pool is the parallelism: NumPy's own BLAS threads in each oversubscribed
        _POOL = ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="temper-score")
    return _POOL


def affine(wg: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int, dtype: Any) -> np.ndarray:
    """fisher_scoring._affine in NumPy: mx.quantize → mx.dequantize's values of groups `wg` (rows, groups,
    gs; float32 holding `dtype` values) from their min and max."""
    nb = np.float32(2 ** bits - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.maximum((hi - lo) / nb, np.float32(1e-7))
        low = np.abs(lo) > np.abs(hi)
        s = np.where(low, s, -s)
        edge = np.where(low, lo, hi)
        q0 = np.rint(edge / s)
        nonzero = q0 != 0
        s = np.where(nonzero, edge / np.where(nonzero, q0, np.float32(1)), s)
        b = np.where(nonzero, edge, np.float32(0))
        q = np.subtract(wg, b)          # clip(rint((w - b) / s), 0, nb), then s·q + b: in place, one array
        np.divide(q, s, out=q)
        np.rint(q, out=q)
        np.clip(q, 0, nb, out=q)
    s, b = to_dtype(s, dtype), to_dtype(b, dtype)
    np.multiply(q, s, out=q)
    _round_to(q, dtype)
    q += b
    return _round_to(q, dtype)


def _round_to(x: np.ndarray, dtype: Any) -> np.ndarray:
    """rounding.to_dtype in place on a C-contiguous float32 array (the same bits: one temporary, not five)."""
    name = dtype_name(dtype)
    if name == "float16":
        x[...] = x.astype(np.float16)
    elif name == "bfloat16":
        u = x.view(np.uint32)
        t = u >> np.uint32(16)
        t &= np.uint32(1)
        t += np.uint32(0x7FFF)
        u += t
        u &= np.uint32(0xFFFF0000)
    return x


def _slice_terms(w: np.ndarray, dd: np.ndarray, sg: np.ndarray, bits: list[int], group: int,
                 dtype: Any) -> tuple[list[float], list[np.ndarray]]:
    """Per candidate width: (diagonal + grouped terms of this row slice, float64; per-row α)."""
    rows = w.shape[0]
    norm = np.maximum(np.einsum("rc,rc->r", w, w), np.float32(1e-30))
    wg = w.reshape(rows, -1, group)
    lo, hi = wg.min(-1, keepdims=True), wg.max(-1, keepdims=True)
    sums, alphas = [], []
    for b in bits:
        d = affine(wg, lo, hi, b, dtype)
        d -= wg
        d = d.reshape(w.shape)
        alpha = np.einsum("rc,rc->r", d, w) / norm
        r = np.multiply(alpha[:, None], w)      # d2 = d - α·w, then r = d2 - its group means m (in place)
        np.subtract(d, r, out=r)
        m = r.reshape(rows, -1, group).mean(-1)
        r.reshape(rows, -1, group)[...] -= m[..., None]
        d *= d                                  # d·d + r·r
        r *= r
        d += r
        total = float(np.einsum("rc,rc->", dd, d, dtype=np.float64))
        total += float(np.einsum("rg,rg->", sg, m * m, dtype=np.float64))
        sums.append(total)
        alphas.append(alpha)
    return sums, alphas


def score_affine(parts: list[tuple[Any, Any]], group: int, members: list[Candidate], storage_dtype: Any,
                 check: Callable[[], None]) -> list[float]:
    """Scores of affine `members` (one group size) over `parts` [(weight rows, statistics)]: the same value
    as fisher_scoring.score_candidates's kernel, one float per member."""
    import mlx.core as mx

    dtype = storage_dtype if storage_dtype is not None else parts[0][0].dtype
    bits = [c.bits for c in members]
    totals = np.zeros(len(members))
    proj: list[np.ndarray | None] = [None] * len(members)
    for w, st in parts:
        step = max(1, SLICE_BYTES // (4 * w.shape[-1]))
        pending: list[Future] = []
        results: list[tuple[list[float], list[np.ndarray]]] = []
        for a in range(0, w.shape[0], step):
            check()
            ref = w[a:a + step].astype(storage_dtype) if storage_dtype is not None else w[a:a + step]
            arrays = [ref.astype(mx.float32), st.d[a:a + step].astype(mx.float32),
                      st.s[group][a:a + step].astype(mx.float32)]
            ws, dd, sg = (host(x) for x in arrays)       # read in place by the workers, never written to
            pending.append(pool().submit(_slice_terms, ws, dd, sg, bits, group, dtype))
            while len(pending) > threads():
                results.append(pending.pop(0).result())
        results += [f.result() for f in pending]
        q = np.array(mx.stack(st.q), dtype=np.float64)     # sequences × rows
        for k in range(len(members)):
            totals[k] += sum(r[0][k] for r in results)
            part = q @ np.concatenate([r[1][k] for r in results]).astype(np.float64)
            proj[k] = part if proj[k] is None else proj[k] + part
    return [float(totals[k] + (proj[k] * proj[k]).sum()) if proj[k] is not None else float(totals[k])
            for k in range(len(members))]

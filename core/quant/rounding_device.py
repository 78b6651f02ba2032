"""GPTQ rounding on the accelerator: the same algorithm as `rounding.gptq`, in MLX on the default device.

On a CPU, `rounding.gptq` (NumPy column loop, MLX products) is the fast form. On a GPU machine the host's
NumPy pays for every small product of the column loop with a wake-up of all its BLAS threads: the H100 run
of 2026-12-06 spent ~220 s of a 248 s SmolLM2-shaped quantize there (docs/benchmarks/sensitivity_scale.md).
Here the weights stay on the device and each 16-column step is one compiled MLX function (the rank-1
updates inside the step fuse into a few kernels); the products onto the rest of the block and onto the
later columns are device matmuls. Parameter choice (`choose_params`), the inverse Cholesky factor and
packing are shared with `rounding`, so both forms choose the same scales and biases; the integers agree up
to float32 ties (tested against `rounding.gptq`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .rounding import BLOCK, DAMP, INNER, SHRINKS, choose_params, diag_blocks, inverse_cholesky


def on_accelerator() -> bool:
    """True when MLX's default device is a GPU (Metal or CUDA): then `gptq_on_device` is the fast form."""
    import mlx.core as mx

    return mx.default_device().type == mx.gpu


@lru_cache(maxsize=8)
def _step(n: int, bits: int) -> Any:
    """A compiled function rounding `n` consecutive columns (held as rows of `w`, shape (n, rows)) in order,
    each one's error spread onto the later ones through `u` (n, n) (the block of U for these columns)."""
    import mlx.core as mx

    top = float(2 ** bits - 1)

    def step(w: Any, s: Any, b: Any, u: Any) -> tuple[Any, Any]:
        cols = [w[k] for k in range(n)]
        qs, errs = [], []
        for k in range(n):
            x = cols[k]
            q = mx.clip(mx.round((x - b[k]) / s[k]), 0.0, top)
            e = (x - (s[k] * q + b[k])) / u[k, k]
            for m in range(k + 1, n):
                cols[m] = cols[m] - u[k, m] * e
            qs.append(q)
            errs.append(e)
        return mx.stack(qs), mx.stack(errs)

    return mx.compile(step)


def gptq_on_device(w: np.ndarray, h: np.ndarray, bits: int, group_size: int, dtype: Any, *, clip: bool = True,
                   act_order: bool = False, damp: float = DAMP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`rounding.gptq` with the column loop on MLX's default device. Same arguments and results:
    (q uint8 (rows, cols) in the original column order, scales and biases float32 (rows, groups))."""
    import mlx.core as mx

    w = np.array(w, dtype=np.float32)
    h = np.array(h, dtype=np.float32)
    rows, cols = w.shape
    if group_size % INNER or cols % group_size:
        raise ValueError(f"group size {group_size} with {cols} columns: the device form needs whole 16-column steps")
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    shrinks = SHRINKS if clip else (1.0,)
    block = max(BLOCK // group_size, 1) * group_size
    groups = cols // group_size
    perm = None
    if act_order:
        scales, biases = choose_params(w, diag_blocks(h, group_size), bits, group_size, dtype, shrinks)
        perm = np.argsort(-np.diag(h), kind="stable")
        w, h = w[:, perm], h[np.ix_(perm, perm)]          # one gather (3x faster than two at 6144²)
        take = mx.array((perm // group_size).astype(np.int32))
        s_cols = mx.array(np.ascontiguousarray(scales.T))[take]           # (cols, rows), permuted order
        b_cols = mx.array(np.ascontiguousarray(biases.T))[take]
        st, bt = np.ascontiguousarray(scales.T), np.ascontiguousarray(biases.T)
    else:
        st = np.empty((groups, rows), dtype=np.float32)
        bt = np.empty_like(st)
    u_np = inverse_cholesky(h, damp)
    u = mx.array(u_np)
    rest = mx.array(np.ascontiguousarray(w.T))                            # (cols, rows): columns not yet rounded
    q_parts: list[Any] = []
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        inner = rest[: i2 - i1]                                           # this block, errors of earlier blocks in
        later = rest[i2 - i1:]
        errs: list[Any] = []
        for j1 in range(i1, i2, INNER):
            j2 = j1 + INNER
            if not act_order and j1 % group_size == 0:                    # a new group: choose from updated weights
                g = j1 // group_size
                wg = np.array(inner[: group_size]).T                      # (rows, gs)
                hb = h[j1:j1 + group_size, j1:j1 + group_size][None]
                s_g, b_g = choose_params(wg, hb, bits, group_size, dtype, shrinks)
                st[g], bt[g] = s_g[:, 0], b_g[:, 0]
                s_grp = mx.broadcast_to(mx.array(st[g])[None], (group_size, rows))
                b_grp = mx.broadcast_to(mx.array(bt[g])[None], (group_size, rows))
            if act_order:
                s_c, b_c = s_cols[j1:j2], b_cols[j1:j2]
            else:
                off = j1 % group_size
                s_c, b_c = s_grp[off:off + INNER], b_grp[off:off + INNER]
            q, e = _step(INNER, bits)(inner[:INNER], s_c, b_c, u[j1:j2, j1:j2])
            q_parts.append(q.astype(mx.uint8))
            errs.append(e)
            inner = inner[INNER:]
            if j2 < i2:                                                   # this step's errors onto the block's rest
                inner = inner - u[j1:j2, j2:i2].T @ e
        if i2 < cols:                                                     # the block's errors onto later columns
            later = later - u[i1:i2, i2:].T @ mx.concatenate(errs)
        rest = later
        mx.eval(rest, *q_parts[-(i2 - i1) // INNER:])
    q_all = np.array(mx.concatenate(q_parts).T)                           # (rows, cols), permuted order
    if perm is not None:
        q_all = q_all[:, np.argsort(perm)]
    return np.ascontiguousarray(q_all), np.ascontiguousarray(st.T), np.ascontiguousarray(bt.T)

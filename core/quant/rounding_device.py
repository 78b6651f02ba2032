"""GPTQ rounding on the accelerator: the same algorithm as `rounding.gptq`, in MLX on the default device.

On a CPU, `rounding.gptq` (NumPy column loop, BLAS products) is the fast form. On a GPU the weights stay on
the device. GPTQ's rows never interact: each row is rounded column by column, its own rounding errors spread
onto its later columns through the upper Cholesky factor U of H⁻¹. So a run of columns (a 128-column block
with act-order, one group without) is one kernel (`column_kernel.py`: a thread per row walks the run in its
own array; CUDA and Metal), and the run's errors reach the later columns by one device matmul. Where the
kernel is off or failed its self-check, each 16-column step is one compiled MLX function whose rank-1
updates fuse into a few kernels, with products for the rest of the run. On an H200 (gptq_forms.py,
2026-12-07) SmolLM2's 30 blocks took 7.5 s by the kernel, 17.2 s by steps and 17.2 s by the NumPy form.
Given MLX weights (gptq.py's device path), nothing model-sized crosses to the host: the clip search runs on
the device (clip_search_mx.py), an H at least 4096 wide is permuted and factored there (factor_device.py),
and the integers come back as MLX arrays for packing on the device (packing.device_arrays). The parameter
choice and the factor compute what `rounding`'s do, so every form chooses the same scales and biases up to
float32 ties; the integers agree up to float32 ties (tested against `rounding.gptq`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from . import column_kernel, factor_device
from .rounding import BLOCK, DAMP, INNER, SHRINKS, choose_params, group_blocks, prepared

IN_FLIGHT = 4        # blocks queued (mx.async_eval) before one is waited for: each holds the later columns' copy


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


def steps(w: Any, s: Any, b: Any, u: Any, bits: int) -> tuple[Any, Any]:
    """A run of columns by compiled 16-column steps, each step's errors onto the run's rest by a matmul."""
    import mlx.core as mx

    n = w.shape[0]
    qs, errs = [], []
    for j1 in range(0, n, INNER):
        j2 = j1 + INNER
        q, e = _step(INNER, bits)(w[:INNER], s[j1:j2], b[j1:j2], u[j1:j2, j1:j2])
        qs.append(q.astype(mx.uint8))
        errs.append(e)
        w = w[INNER:]
        if j2 < n:
            w = w - u[j1:j2, j2:].T @ e
    return mx.concatenate(qs), mx.concatenate(errs)


def round_run(w: Any, s: Any, b: Any, u: Any, bits: int) -> tuple[Any, Any]:
    """Columns `w` (n, rows) rounded in order on per-column scales and biases `s`, `b` (n, rows), each column's
    error (divided by U's diagonal) spread onto the later ones through `u` (n, n). Returns (q uint8 (n, rows),
    errors float32 (n, rows)), lazily: by the column kernel (CUDA, Metal) where it passed its self-check, else by
    compiled 16-column steps."""
    out = column_kernel.run(w, s, b, u, bits)
    if out is not None:
        return out
    if w.shape[0] % INNER:
        raise ValueError(f"a run of {w.shape[0]} columns: the step form needs whole {INNER}-column steps")
    return steps(w, s, b, u, bits)


def gptq_on_device(w: Any, h: Any, bits: int, group_size: int, dtype: Any, *,
                   clip: bool = True, act_order: bool = False, damp: float = DAMP,
                   factors: dict[Any, Any] | None = None) -> tuple[Any, Any, Any]:
    """`rounding.gptq` with the column loop on MLX's default device. Same arguments and results:
    (q uint8 (rows, cols) in the original column order, scales and biases float32 (rows, groups)), as NumPy
    arrays for NumPy weights; for MLX weights as MLX arrays, the weights never leaving the device.
    `factors`: as `rounding.gptq`'s (what depends on H alone, made once per H), plus the factor on the device."""
    import mlx.core as mx

    as_numpy = isinstance(w, np.ndarray)
    w = mx.array(np.asarray(w, dtype=np.float32)) if as_numpy else w.astype(mx.float32)
    rows, cols = w.shape
    if cols % group_size or (group_size % INNER and not column_kernel.available()):
        raise ValueError(f"group size {group_size} with {cols} columns: the device form needs whole 16-column steps")
    cache = {} if factors is None else factors
    if ("gpu", act_order, damp) in cache or factor_device.wanted(cols):
        dead, perm, u = factor_device.prepared(h, act_order, damp, group_size, cache)     # a wide H: on the GPU
    else:
        _h, dead, perm, _ordered, u_host = prepared(None if h is None else np.asarray(h), act_order, damp, cache)
        if ("device", act_order, damp) not in cache:
            cache[("device", act_order, damp)] = mx.array(u_host)
        u = cache[("device", act_order, damp)]
    blocks = group_blocks(cache, group_size)
    if dead.any():
        w = mx.where(mx.array(dead)[None], 0.0, w)
    shrinks = SHRINKS if clip else (1.0,)
    block = max(BLOCK // group_size, 1) * group_size
    st: list[Any] = []                          # per-group scales and biases, (rows,) each, without act-order
    bt: list[Any] = []
    if perm is not None:
        scales, biases = _choose(w, blocks, bits, group_size, dtype, shrinks)
        w = mx.take(w, mx.array(perm.astype(np.int32)), axis=1)
        take = mx.array((perm // group_size).astype(np.int32))
        s_cols, b_cols = scales.T[take], biases.T[take]                   # (cols, rows), permuted order
    rest = mx.contiguous(w.T)                                             # (cols, rows): columns not yet rounded
    q_parts: list[Any] = []
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        inner = rest[: i2 - i1]                                           # this block, errors of earlier blocks in
        later = rest[i2 - i1:]
        if act_order:                                                     # static groups: the block is one run
            q, e = round_run(inner, s_cols[i1:i2], b_cols[i1:i2], u[i1:i2, i1:i2], bits)
            q_parts.append(q)
            errs = [e]
        else:                                                             # a run per group, its parameters
            errs = []                                                     # chosen from the updated weights
            for j1 in range(i1, i2, group_size):
                j2, g = j1 + group_size, j1 // group_size
                s_g, b_g = _choose(inner[:group_size].T, blocks[g:g + 1], bits, group_size, dtype, shrinks)
                st.append(s_g[:, 0])
                bt.append(b_g[:, 0])
                shape = (group_size, rows)
                q, e = round_run(inner[:group_size], mx.broadcast_to(st[-1][None], shape),
                                 mx.broadcast_to(bt[-1][None], shape), u[j1:j2, j1:j2], bits)
                q_parts.append(q)
                errs.append(e)
                inner = inner[group_size:]
                if j2 < i2:                                               # this group's errors onto the block's rest
                    inner = inner - u[j1:j2, j2:i2].T @ e
        if i2 < cols:                                                     # the block's errors onto later columns
            later = later - u[i1:i2, i2:].T @ (errs[0] if len(errs) == 1 else mx.concatenate(errs))
        rest = later
        if (i1 // block) % IN_FLIGHT == IN_FLIGHT - 1 or i2 >= cols:
            mx.eval(rest, *q_parts[-len(errs):])
        else:                                                             # queued: the host builds the next block
            mx.async_eval(rest, *q_parts[-len(errs):])                    # while the device runs this one
    q_all = mx.concatenate(q_parts).T                                     # (rows, cols), permuted order
    if perm is not None:
        q_all = mx.take(q_all, mx.array(np.argsort(perm).astype(np.int32)), axis=1)
    else:
        scales, biases = mx.stack(st, axis=1), mx.stack(bt, axis=1)
    if as_numpy:
        return np.ascontiguousarray(np.array(q_all)), np.array(scales), np.array(biases)
    q_all = mx.contiguous(q_all)
    mx.eval(q_all, scales, biases)
    return q_all, scales, biases


def _choose(w: Any, blocks: np.ndarray, bits: int, group_size: int, dtype: Any,
            shrinks: tuple[float, ...]) -> tuple[Any, Any]:
    """`rounding.choose_params` of MLX weights, as MLX arrays: on the device (clip_search_mx.py) where MLX
    computes on a GPU, by the NumPy form on MLX's CPU backend (the same values as `rounding.gptq`'s)."""
    import mlx.core as mx

    from . import host_math

    if host_math.active():
        s, b = choose_params(np.array(w), blocks, bits, group_size, dtype, shrinks)
        return mx.array(s), mx.array(b)
    from .clip_search_mx import choose

    return choose(w, bits, group_size, dtype, shrinks, blocks)

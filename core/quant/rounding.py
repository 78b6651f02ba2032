"""Rounding a weight matrix into MLX's affine format: clip search and error-compensated (GPTQ) rounding.

MLX's affine format stores, per row and per group of `group_size` input columns, a scale s and a bias b
(in the model's float dtype) and packed integers q in [0, 2^bits - 1]; the weight reads back as s·q + b.
`mx.quantize` picks s and b from the group's min and max and rounds to nearest. Here:

- `choose_params`: s and b per (row, group) from a grid of shrink factors (the group's range scaled by
  p ∈ SHRINKS toward zero), keeping for each (row, group) the one with the least output error
  Δᵀ·H_gg·Δ, where H_gg is the group's diagonal block of the input second-moment matrix H = Σ xᵀx (the
  identity where no activations are known: plain squared error). p = 1 is always a candidate, so the
  chosen grid is never worse than mx.quantize's by that measure.
- `gptq`: columns are rounded one at a time and each column's rounding error is spread over the columns
  not yet rounded through the upper Cholesky factor of H⁻¹ (Frantar et al., 2022), in blocks of 128
  columns. Group parameters are chosen once per group, from the error-updated weights when the group
  starts (or from the original weights up front with act-order, whose column order crosses groups).
- `pack`: the integers packed exactly as `mx.quantize` packs them (a little-endian bit stream in uint32
  words), so plain `mlx_lm.load` reads the result and `mx.dequantize` gives back s·q + b.

Scales and biases are rounded to the stored dtype before any integer is chosen, so the error fed back is
the error of what is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SHRINKS = (1.0, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.825, 0.8, 0.775, 0.75)
BLOCK = 128
DAMP = 0.01


def dequant_error(w: Any, s: Any, b: Any, bits: int) -> Any:
    """(rounded − w) for weights `w` (..., gs) with scale/bias broadcast over the last axis."""
    import mlx.core as mx

    q = mx.clip(mx.round((w - b) / s), 0, 2 ** bits - 1)
    return s * q + b - w


def choose_params(w: Any, h_blocks: Any | None, bits: int, group_size: int, dtype: Any,
                  shrinks: tuple[float, ...] = SHRINKS) -> tuple[Any, Any]:
    """Scales and biases (rows, groups), float32 holding `dtype` values, for weights `w` (rows, cols).

    `h_blocks`: (groups, gs, gs) diagonal blocks of H for these columns, or None for plain squared error."""
    import mlx.core as mx

    rows, cols = w.shape
    ng = cols // group_size
    wg = w.reshape(rows, ng, group_size)
    best_err = best_s = best_b = None
    for p in shrinks:
        _, s, b = mx.quantize((w * p).astype(dtype), group_size=group_size, bits=bits)
        s, b = s.astype(mx.float32)[..., None], b.astype(mx.float32)[..., None]
        d = dequant_error(wg, s, b, bits)
        if h_blocks is None:
            err = (d * d).sum(-1)
        else:
            dg = d.transpose(1, 0, 2)                     # (groups, rows, gs): one BLAS product per group
            err = ((dg @ h_blocks) * dg).sum(-1).T
        if best_err is None:
            best_err, best_s, best_b = err, s, b
        else:
            better = (err < best_err)[..., None]
            best_err = mx.minimum(err, best_err)
            best_s, best_b = mx.where(better, s, best_s), mx.where(better, b, best_b)
        mx.eval(best_err, best_s, best_b)
    return best_s[..., 0], best_b[..., 0]


def diag_blocks(h: Any, group_size: int) -> Any:
    """(groups, gs, gs) diagonal blocks of a square matrix."""
    import mlx.core as mx

    n = h.shape[0] // group_size
    return mx.stack([h[g * group_size:(g + 1) * group_size, g * group_size:(g + 1) * group_size]
                     for g in range(n)])


def inverse_cholesky(h: Any, damp: float = DAMP) -> Any:
    """Upper Cholesky factor U of (H + λI)⁻¹ (λ = damp × mean diagonal), computed on the CPU in float32."""
    import mlx.core as mx

    with mx.stream(mx.cpu):
        n = h.shape[0]
        lam = damp * mx.mean(mx.diag(h)) + 1e-8
        hd = h + lam * mx.eye(n, dtype=mx.float32)
        lower = mx.linalg.cholesky(hd)
        hinv = mx.linalg.cholesky_inv(lower)
        upper = mx.linalg.cholesky(hinv, upper=True)
        mx.eval(upper)
    return upper


def gptq(w: Any, h: Any, bits: int, group_size: int, dtype: Any, *, clip: bool = True,
         act_order: bool = False, damp: float = DAMP) -> tuple[Any, Any, Any]:
    """Error-compensated rounding of `w` (rows, cols) against H (cols, cols).

    Returns (q, scales, biases): q integer-valued float32 (rows, cols) in the original column order,
    scales/biases float32 (rows, groups) holding `dtype`-representable values."""
    import mlx.core as mx

    w = w.astype(mx.float32)
    h = h.astype(mx.float32)
    rows, cols = w.shape
    dead = mx.diag(h) <= 0
    h = h + mx.diag(dead.astype(mx.float32))
    w = mx.where(dead[None, :], 0.0, w)
    shrinks = SHRINKS if clip else (1.0,)
    perm = None
    scales = biases = None
    if act_order:
        # static groups: parameters from the original weights, chosen before any column moves
        scales, biases = choose_params(w, diag_blocks(h, group_size), bits, group_size, dtype, shrinks)
        perm = mx.argsort(-mx.diag(h))
        w = w[:, perm]
        h = h[perm][:, perm]
        group_of = (perm // group_size)
        mx.eval(group_of)
        group_of = np.array(group_of)
    u = np.array(inverse_cholesky(h, damp))
    nb = 2 ** bits - 1
    # The column loop runs in NumPy: each step is a few vector operations on one column, and MLX's
    # per-operation overhead (graph building, evaluation every few columns) made it ~100x slower.
    w_np = np.array(w)
    q_np = np.empty((rows, cols), dtype=np.float32)
    if act_order:
        s_np, b_np = np.array(scales), np.array(biases)
    s_groups: list[Any] = []
    b_groups: list[Any] = []
    s_col = b_col = None
    for i1 in range(0, cols, BLOCK):
        i2 = min(i1 + BLOCK, cols)
        w1 = w_np[:, i1:i2].copy()
        u1 = u[i1:i2, i1:i2]
        err = np.empty((rows, i2 - i1), dtype=np.float32)
        for i in range(i2 - i1):
            col = i1 + i
            if act_order:
                g = int(group_of[col])
                s_col, b_col = s_np[:, g], b_np[:, g]
            elif col % group_size == 0:
                hb = diag_blocks(h[col:col + group_size, col:col + group_size], group_size)
                s_g, b_g = choose_params(mx.array(w1[:, i:i + group_size]), hb, bits, group_size, dtype, shrinks)
                s_col, b_col = np.array(s_g[:, 0]), np.array(b_g[:, 0])
                s_groups.append(s_col)
                b_groups.append(b_col)
            x = w1[:, i]
            q = np.clip(np.round((x - b_col) / s_col), 0, nb)
            e = (x - (s_col * q + b_col)) / u1[i, i]
            w1[:, i:] -= np.outer(e, u1[i, i:])
            q_np[:, col] = q
            err[:, i] = e
        if i2 < cols:
            w_np[:, i2:] -= err @ u[i1:i2, i2:]
    q_all = mx.array(q_np)
    if act_order:
        q_all = q_all[:, mx.argsort(perm)]
    else:
        scales, biases = mx.array(np.stack(s_groups, axis=1)), mx.array(np.stack(b_groups, axis=1))
    mx.eval(q_all, scales, biases)
    return q_all, scales, biases


def round_to_grid(w: Any, scales: Any, biases: Any, bits: int, group_size: int) -> Any:
    """Round-to-nearest integers of `w` on given per-group scales and biases."""
    import mlx.core as mx

    rows, cols = w.shape
    wg = w.astype(mx.float32).reshape(rows, cols // group_size, group_size)
    q = mx.clip(mx.round((wg - biases[..., None]) / scales[..., None]), 0, 2 ** bits - 1)
    return q.reshape(rows, cols)


def pack(q: Any, bits: int) -> Any:
    """Integers (rows, cols) → uint32 words (rows, cols·bits/32), laid out as mx.quantize lays them."""
    import mlx.core as mx

    q_np = np.asarray(q, dtype=np.float32).astype(np.uint8 if bits <= 8 else np.uint16)
    rows, cols = q_np.shape
    out = np.empty((rows, cols * bits // 32), dtype=np.uint32)
    step = max(1, (64 << 20) // max(cols * bits, 1))
    for r in range(0, rows, step):
        part = q_np[r:r + step]
        bitplanes = (part[..., None] >> np.arange(bits, dtype=part.dtype)) & 1
        packed = np.packbits(bitplanes.reshape(part.shape[0], -1).astype(np.uint8), axis=-1, bitorder="little")
        out[r:r + step] = packed.view("<u4")
    return mx.array(out)


def quantized_arrays(q: Any, scales: Any, biases: Any, bits: int, dtype: Any) -> tuple[Any, Any, Any]:
    """The (weight, scales, biases) triple MLX's QuantizedLinear / QuantizedEmbedding hold."""
    import mlx.core as mx

    mx.eval(q)
    return pack(np.array(q), bits), scales.astype(dtype), biases.astype(dtype)

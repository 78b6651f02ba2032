"""The plain clip search of a weight without activations (rounding.clip_rounded) in MLX, for a GPU.

Embeddings are rounded to nearest with a shrink search of each group's range (squared error, no H). In NumPy
that is ~10 passes over every weight per shrink on one host core: gemma4 E2B's per-layer input embedding
(262,144 × 8,960, 2.35 B weights) kept the H200 session of 2026-12-07 waiting minutes on its last tensor.
Here the same float32 operations run on the device, a row slice at a time, and the integers are packed on
the device too (`packing.pack_mx`: MLX's little-endian bit stream in uint32 words), so only the
packed weights, scales and biases exist at the end. The values are `rounding.choose_params`'s: the same
operations in the same order (mx.round is np.rint's round-half-to-even; casting through the stored dtype is
`to_dtype`), only the per-group error sums in another order, so a shrink that ties another to float32
rounding may be picked either way.
"""

from __future__ import annotations

from typing import Any

from .packing import pack_mx
from .rounding import SHRINKS, dtype_name, minmax_params

ROWS_PER_SLICE = 4096          # a slice of a 262k-row table (E2B per-layer input: 147 MB in float32); the
#                                error of each shrink is one compiled kernel, so few temporaries of that size


def _grid(wg: Any, s: Any, b: Any, bits: int) -> Any:
    import mlx.core as mx

    return mx.clip(mx.round((wg - b[..., None]) / s[..., None]), 0, 2 ** bits - 1)


_ERR: dict[int, Any] = {}
_H_ERR: dict[int, Any] = {}


def _err(bits: int) -> Any:
    """Compiled: squared error per group of rounding (rows, groups, gs) weights to the grid of (s, b)."""
    import mlx.core as mx

    if bits not in _ERR:
        def err(wg: Any, s: Any, b: Any) -> Any:
            d = s[..., None] * _grid(wg, s, b, bits) + b[..., None] - wg
            return (d * d).sum(-1)

        _ERR[bits] = mx.compile(err)
    return _ERR[bits]


def _h_err(bits: int) -> Any:
    """Compiled: (weights (groups, rows, gs), scales, biases (groups, rows, 1), H blocks (groups, gs, gs)) ->
    (groups, rows) output error dᵀ·H_g·d of rounding to that grid (the element-wise part fused)."""
    import mlx.core as mx

    if bits not in _H_ERR:
        top = float(2 ** bits - 1)

        def err(wg: Any, s: Any, b: Any, hb: Any) -> Any:
            d = s * mx.clip(mx.round((wg - b) / s), 0.0, top) + b - wg
            return ((d @ hb) * d).sum(-1)

        _H_ERR[bits] = mx.compile(err)
    return _H_ERR[bits]


def choose(w: Any, bits: int, group_size: int, dtype: Any, shrinks: tuple[float, ...] = SHRINKS,
           h_blocks: Any = None) -> tuple[Any, Any]:
    """Scales and biases (rows, groups), float32 holding `dtype` values, of MLX weights `w` (rows, cols): each
    group's shrink of least squared error, or with `h_blocks` ((groups, gs, gs) diagonal blocks of H, NumPy or
    MLX) of least output error dᵀ·H_g·d, as `rounding.choose_params` picks them."""
    import mlx.core as mx

    rows, cols = w.shape
    dtype = getattr(mx, dtype_name(dtype))          # an MLX or NumPy dtype, or its name
    wg = w.astype(mx.float32).reshape(rows, cols // group_size, group_size)
    s1, b1 = minmax_params(wg, bits, mx)
    if h_blocks is not None:                    # groups first: one product per group (rounding._choose_with_h)
        wm, hb = wg.transpose(1, 0, 2), mx.array(h_blocks)
    best = None
    for p in shrinks:
        s = (s1 * p).astype(dtype).astype(mx.float32)
        b = (b1 * p).astype(dtype).astype(mx.float32)
        err = _err(bits)(wg, s, b) if h_blocks is None else _h_err(bits)(wm, s.T[..., None], b.T[..., None], hb).T
        if best is None:
            best = (err, s, b)
        else:
            better = err < best[0]
            best = (mx.where(better, err, best[0]), mx.where(better, s, best[1]), mx.where(better, b, best[2]))
        mx.eval(*best)
    assert best is not None
    return best[1], best[2]


def clip_rounded(weight: Any, bits: int, group_size: int) -> tuple[Any, Any, Any]:
    """rounding.clip_rounded on the device: (packed weight, scales, biases) in the weight's dtype."""
    import mlx.core as mx

    dtype = weight.dtype
    parts = []
    for r in range(0, weight.shape[0], ROWS_PER_SLICE):
        w = weight[r:r + ROWS_PER_SLICE].astype(mx.float32)
        s, b = choose(w, bits, group_size, dtype)
        rows, cols = w.shape
        q = _grid(w.reshape(rows, cols // group_size, group_size), s, b, bits).reshape(rows, cols)
        part = (pack_mx(q, bits), s.astype(dtype), b.astype(dtype))
        mx.eval(*part)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return tuple(mx.concatenate([p[i] for p in parts], axis=0) for i in range(3))    # type: ignore[return-value]

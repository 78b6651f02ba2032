"""Rounding a weight matrix into MLX's affine format: clip search and error-compensated (GPTQ) rounding.

MLX's affine format stores, per row and per group of `group_size` input columns, a scale s and a bias b
(in the model's float dtype) and packed integers q in [0, 2^bits - 1]; the weight reads back as s·q + b.
`mx.quantize` picks s and b from the group's min and max (`minmax_params`, the same arithmetic) and
rounds to nearest. Here, in float32: element-wise work and the column loop in NumPy, the products and
factorisations in MLX (on a CPU its BLAS/LAPACK is the fast library temper preloads, while NumPy's bundled
one thrashes its threads on a busy machine: a 1536² Cholesky took 10 s in NumPy, 0.25 s in MLX):

- `choose_params`: s and b per (row, group) from a grid of shrink factors (the group's range scaled by
  p ∈ SHRINKS toward zero), keeping for each (row, group) the one with the least output error
  Δᵀ·H_gg·Δ, where H_gg is the group's diagonal block of the input second-moment matrix H = Σ xᵀx (the
  identity where no activations are known: plain squared error). p = 1 is mx.quantize's own choice, so the
  chosen grid is never worse than mx.quantize's by that measure.
- `gptq`: columns are rounded one at a time and each column's rounding error is spread over the columns
  not yet rounded through the upper Cholesky factor U of H⁻¹ (Frantar et al., 2022), lazily: by rank-1
  updates inside 16 columns, by a matrix product onto the rest of the 128-column block, by one matrix
  product per block onto the later columns. The
  weights are held transposed (columns contiguous). Group parameters are chosen when the loop reaches a
  group, from the error-updated weights, or, with act-order (columns in order of decreasing H diagonal,
  which crosses groups), once up front from the original weights ("static groups").
- packing (packing.py): the integers packed exactly as `mx.quantize` packs them, so plain `mlx_lm.load`
  reads the result and `mx.dequantize` gives back s·q + b.

Scales and biases are rounded to the stored dtype before any integer is chosen, so the error fed back is
the error of what is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SHRINKS = (1.0, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.825, 0.8, 0.775, 0.75)
BLOCK = 128
INNER = 16                     # rank-1 updates inside 16 columns, a product for the rest of the block
DAMP = 0.01
ROWS_PER_SLICE = 4096          # clip search without H works on row slices (a 262k-row embedding)


def dtype_name(dtype: Any) -> str:
    """'bfloat16' | 'float16' | 'float32' for an MLX or NumPy dtype or a name."""
    name = str(dtype).rsplit(".", 1)[-1]
    if name not in ("bfloat16", "float16", "float32"):
        raise ValueError(f"scales cannot be stored as {name}")
    return name


def to_dtype(x: np.ndarray, dtype: Any) -> np.ndarray:
    """float32 values rounded (to nearest even) to what `dtype` can hold, still as float32."""
    x = np.asarray(x, dtype=np.float32)
    name = dtype_name(dtype)
    if name == "float32":
        return x
    if name == "float16":
        return x.astype(np.float16).astype(np.float32)
    u = np.ascontiguousarray(x).view(np.uint32)
    u = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return u.view(np.float32)


def minmax_params(wg: Any, bits: int, xp: Any = np) -> tuple[Any, Any]:
    """Scale and bias of each group (last axis) as mx.quantize computes them (before the dtype cast): the extreme
    of larger magnitude lands exactly on the grid. `xp`: NumPy, or mlx.core (clip_search_mx.py, on the device)."""
    nb = 2 ** bits - 1
    hi, lo = wg.max(-1), wg.min(-1)
    low_edge = xp.abs(lo) > xp.abs(hi)
    s = xp.maximum((hi - lo) / nb, 1e-7)
    s = xp.where(low_edge, s, -s)
    edge = xp.where(low_edge, lo, hi)
    q0 = xp.round(edge / s)                       # round half to even, as np.rint
    with np.errstate(divide="ignore", invalid="ignore"):
        s = xp.where(q0 != 0, edge / xp.where(q0 != 0, q0, 1), s)
    b = xp.where(q0 == 0, 0.0, edge)
    if xp is np:
        return s.astype(np.float32), b.astype(np.float32)
    return s, b


def grid(wg: np.ndarray, s: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """Integers (as float32) of `wg` (..., gs) on scale/bias (...,) broadcast over the last axis."""
    return np.clip(np.rint((wg - b[..., None]) / s[..., None]), 0, 2 ** bits - 1)


def choose_params(w: np.ndarray, h_blocks: np.ndarray | None, bits: int, group_size: int, dtype: Any,
                  shrinks: tuple[float, ...] = SHRINKS) -> tuple[np.ndarray, np.ndarray]:
    """Scales and biases (rows, groups), float32 holding `dtype` values, for weights `w` (rows, cols).

    `h_blocks`: (groups, gs, gs) diagonal blocks of H for these columns, or None for plain squared error."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    if h_blocks is None and rows > ROWS_PER_SLICE:
        parts = [choose_params(w[r:r + ROWS_PER_SLICE], None, bits, group_size, dtype, shrinks)
                 for r in range(0, rows, ROWS_PER_SLICE)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    wg = w.reshape(rows, cols // group_size, group_size)
    s1, b1 = minmax_params(wg, bits)     # the range scaled by p gives p·s and p·b: one min/max pass
    if h_blocks is not None:
        return _choose_with_h(wg, h_blocks, s1, b1, bits, dtype, shrinks)
    best = None
    for p in shrinks:
        s, b = to_dtype(s1 * np.float32(p), dtype), to_dtype(b1 * np.float32(p), dtype)
        d = s[..., None] * grid(wg, s, b, bits) + b[..., None] - wg
        best = keep_better(best, np.einsum("rgk,rgk->rg", d, d), s, b)
    assert best is not None
    return best[1], best[2]


Best = tuple[np.ndarray, np.ndarray, np.ndarray]


def keep_better(best: Best | None, err: np.ndarray, s: np.ndarray, b: np.ndarray) -> Best:
    """(error, scales, biases) so far in a clip search, after one more shrink's: the lower error per group
    (the earlier shrink on a tie)."""
    if best is None:
        return err, s, b
    better = err < best[0]
    return np.where(better, err, best[0]), np.where(better, s, best[1]), np.where(better, b, best[2])


def _choose_with_h(wg: np.ndarray, h_blocks: np.ndarray, s1: np.ndarray, b1: np.ndarray, bits: int, dtype: Any,
                   shrinks: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The shrink search weighted by H's diagonal blocks: in MLX (clip_search_mx.py), only the (rows, groups)
    scales and biases come back to NumPy; on MLX's CPU backend in NumPy on a thread pool (clip_search_np.py:
    MLX's element-wise CPU kernels run on one thread)."""
    from . import host_math

    if host_math.active():
        from .clip_search_np import choose_with_h

        return choose_with_h(wg, h_blocks, s1, b1, bits, dtype, shrinks)
    from .clip_search_mx import choose

    rows, groups, gs = wg.shape
    s, b = choose(_mx_array(wg.reshape(rows, groups * gs)), bits, gs, dtype, shrinks, h_blocks)
    return np.array(s), np.array(b)


def _mx_array(x: np.ndarray) -> Any:
    import mlx.core as mx

    return mx.array(np.ascontiguousarray(x, dtype=np.float32))


def diag_blocks(h: np.ndarray, group_size: int) -> np.ndarray:
    """(groups, gs, gs) diagonal blocks of a square matrix."""
    n = h.shape[0] // group_size
    return np.stack([h[g * group_size:(g + 1) * group_size, g * group_size:(g + 1) * group_size]
                     for g in range(n)])


def inverse_cholesky(h: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """Upper Cholesky factor U of (H + λI)⁻¹, λ = damp × mean diagonal, in float32 (λ raised tenfold while
    the factor is not finite). By OpenBLAS's `spotrf` and `strtri` wherever one is at hand (`accel/lapack.py`:
    the preloaded one, else NumPy's bundled copy: a CUDA build's MLX CPU stream has only the reference LAPACK,
    20x slower at 1536²); else on MLX's CPU stream where that has a fast LAPACK (Accelerate), else NumPy's
    `cholesky` and `inv`. The first is bit-identical to MLX's CPU stream with the preloaded OpenBLAS."""
    from ..accel import lapack
    from ..accel.blas import cpu_linalg_fast
    from . import host_math

    n = h.shape[0]
    mean = float(np.mean(np.diag(h))) + 1e-8
    if lapack.find() is not None or not cpu_linalg_fast():
        factor = _upper_inv_chol_numpy
    else:
        factor = _upper_inv_chol_mlx_reversed if host_math.active() else _upper_inv_chol_mlx
    for attempt in range(6):
        u = factor(h, damp * 10 ** attempt * mean, n)
        if np.isfinite(u).all() and (np.diag(u) > 0).all():
            return u
    raise ValueError("H is not positive definite even with 10^5 x the damping")


def _upper_inv_chol_mlx(h: np.ndarray, lam: float, n: int) -> np.ndarray:
    import mlx.core as mx

    with mx.stream(mx.cpu):
        lower = mx.linalg.cholesky(_mx_array(h) + lam * mx.eye(n, dtype=mx.float32))
        return np.array(mx.linalg.cholesky(mx.linalg.cholesky_inv(lower), upper=True))


def _upper_inv_chol_mlx_reversed(h: np.ndarray, lam: float, n: int) -> np.ndarray:
    """`_upper_inv_chol_numpy`'s reversal on MLX's CPU stream: a Cholesky factorization and a triangular inverse
    (half the LAPACK work of factorize, invert, factorize again; 2x on GPTQ's factors at SmolLM2's sizes)."""
    import mlx.core as mx

    with mx.stream(mx.cpu):
        lower = mx.linalg.cholesky(_mx_array(h[::-1, ::-1]) + lam * mx.eye(n, dtype=mx.float32))
        return np.ascontiguousarray(np.array(mx.linalg.tri_inv(lower, upper=False))[::-1, ::-1])


def _upper_inv_chol_numpy(h: np.ndarray, lam: float, n: int) -> np.ndarray:
    """U = J·L⁻¹·J with L the lower Cholesky factor of J(H + λI)J (J reverses the order): upper triangular with
    a positive diagonal and UᵀU = (H + λI)⁻¹, so it is that matrix's upper Cholesky factor, from one
    factorization and one triangular inverse (half the work of factorizing the inverse). By OpenBLAS's own
    `spotrf` and `strtri` (`accel/lapack.py`: NumPy's bundled copy on a CUDA build), else NumPy's `cholesky`
    and `inv` (a general inverse: ~10x slower at 3072²)."""
    from ..accel import lapack

    a = np.ascontiguousarray(h[::-1, ::-1], dtype=np.float32)
    a.flat[::n + 1] += np.float32(lam)
    inv_lower = lapack.lower_inverse_cholesky(a, overwrite=True)
    if inv_lower is None:
        with np.errstate(all="ignore"):
            try:
                inv_lower = np.linalg.inv(np.linalg.cholesky(a))
            except np.linalg.LinAlgError:
                return np.full((n, n), np.nan, dtype=np.float32)
    return np.ascontiguousarray(inv_lower[::-1, ::-1], dtype=np.float32)


def prepared(h: np.ndarray | None, act_order: bool, damp: float,
             cache: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """What GPTQ needs of H alone, made at the first call for that H and kept in `cache` (the caller's, per H):
    (H float32 with dead inputs' diagonal set to 1, the dead mask, the act-order permutation or None, H in that
    order, the inverse Cholesky factor of the ordered H). `h` may be None once the cache holds it."""
    if "h" not in cache:
        hf = np.array(h, dtype=np.float32)
        dead = np.diag(hf) <= 0
        hf[dead, dead] = 1.0
        cache["h"], cache["dead"] = hf, dead
    hf = cache["h"]
    if (act_order, damp) not in cache:
        perm = np.argsort(-np.diag(hf), kind="stable") if act_order else None
        ordered = hf if perm is None else hf[np.ix_(perm, perm)]     # one gather: 3x faster than two at 6144²
        cache[(act_order, damp)] = (perm, ordered, inverse_cholesky(ordered, damp))
    return (hf, cache["dead"], *cache[(act_order, damp)])


def group_blocks(cache: dict[Any, Any], group_size: int) -> np.ndarray:
    """H's diagonal blocks per group (the clip search's weights), made once per H and group size."""
    if ("blocks", group_size) not in cache:
        cache[("blocks", group_size)] = diag_blocks(cache["h"], group_size)
    return cache[("blocks", group_size)]


def gptq(w: np.ndarray, h: np.ndarray, bits: int, group_size: int, dtype: Any, *, clip: bool = True,
         act_order: bool = False, damp: float = DAMP,
         factors: dict[Any, Any] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error-compensated rounding of `w` (rows, cols) against H (cols, cols), both float32 NumPy.

    `factors`: a dict the caller keeps per H (Linears fed one input, row slices of one weight): what depends
    on H alone (its column order, its inverse Cholesky factor) is computed at the first call and reused, the
    same arrays. Returns (q, scales, biases): q uint8 (rows, cols) in the original column order, scales/biases
    float32 (rows, groups) holding `dtype`-representable values."""
    w = np.array(w, dtype=np.float32)
    rows, cols = w.shape
    cache = {} if factors is None else factors
    h, dead, perm, ordered, u = prepared(h, act_order, damp, cache)
    from ..accel import gemm
    from . import host_math

    direct = host_math.active() and gemm.available()     # the column loop's products on NumPy's buffers
    w[:, dead] = 0.0
    shrinks = SHRINKS if clip else (1.0,)
    nb = 2 ** bits - 1
    block = max(BLOCK // group_size, 1) * group_size      # blocks hold whole groups
    group_of = st = bt = None
    if perm is not None:                                   # act order: `ordered` is H in that order
        scales, biases = choose_params(w, group_blocks(cache, group_size), bits, group_size, dtype, shrinks)
        st, bt = np.ascontiguousarray(scales.T), np.ascontiguousarray(biases.T)   # (groups, rows)
        w = w[:, perm]
        group_of = perm // group_size
    else:
        st = np.empty((cols // group_size, rows), dtype=np.float32)
        bt = np.empty_like(st)
    inv = (1.0 / np.diag(u)).astype(np.float32)
    wt = np.ascontiguousarray(w.T)                         # (cols, rows): a column is one contiguous row
    qt = np.empty((cols, rows), dtype=np.uint8)
    x = np.empty(rows, dtype=np.float32)                   # the column being rounded (its integers, as floats)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = wt[i1:i2].copy()
        err = np.empty_like(w1)
        for i in range(i2 - i1):
            col = i1 + i
            if i % INNER == 0 and i:                       # the previous INNER columns' errors, in one product
                j = i - INNER
                _sub_mm_t(w1[i:], u[i1 + j:col, col:i2], err[j:i], direct)
            if group_of is not None:
                g = int(group_of[col])
            else:
                g = col // group_size
                if col % group_size == 0:
                    hb = h[col:col + group_size, col:col + group_size][None]
                    s_g, b_g = choose_params(w1[i:i + group_size].T, hb, bits, group_size, dtype, shrinks)
                    st[g], bt[g] = s_g[:, 0], b_g[:, 0]
            sg, bg, e = st[g], bt[g], err[i]
            np.subtract(w1[i], bg, out=x)                  # q = clip(rint((w - b) / s), 0, nb), in place
            np.divide(x, sg, out=x)
            np.rint(x, out=x)
            np.clip(x, 0, nb, out=x)
            qt[col] = x
            np.multiply(sg, x, out=e)                      # e = (w - (s·q + b)) / u_cc
            e += bg
            np.subtract(w1[i], e, out=e)
            e *= inv[col]
            end = min((i // INNER + 1) * INNER, i2 - i1)
            if end > i + 1:
                w1[i + 1:end] -= u[col, col + 1:i1 + end, None] * e
        if i2 < cols:
            _sub_mm_t(wt[i2:], u[i1:i2, i2:], err, direct)
    q_all = qt.T
    if perm is not None:
        q_all = q_all[:, np.argsort(perm)]
    return np.ascontiguousarray(q_all), np.ascontiguousarray(st.T), np.ascontiguousarray(bt.T)


def _mm_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """aᵀ·b in MLX (the BLAS temper preloads; NumPy's own spins its threads on a busy machine)."""
    return np.array(_mx_array(a).T @ _mx_array(b))


def _sub_mm_t(c: np.ndarray, a: np.ndarray, b: np.ndarray, direct: bool) -> None:
    """c -= aᵀ·b: in place by that BLAS on NumPy's buffers when `direct` (core/accel/gemm.py: no copies in and
    out of MLX), else as an MLX product."""
    if direct:
        from ..accel import gemm

        gemm.sub_at_b(c, a, b)
    else:
        c -= _mm_t(a, b)


def round_to_grid(w: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int, group_size: int) -> np.ndarray:
    """Round-to-nearest integers (uint8) of `w` on given per-group scales and biases."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    q = grid(w.reshape(rows, cols // group_size, group_size), scales, biases, bits)
    return q.reshape(rows, cols).astype(np.uint8)


def clip_rounded(weight: Any, bits: int, group_size: int) -> tuple[Any, Any, Any]:
    """Clip-searched round-to-nearest of an MLX weight (no H) as MLX's (weight, scales, biases), ROWS_PER_SLICE
    rows at a time: rows are independent, so the result is the whole tensor's, while a 262k-row embedding is
    never in fp32 (nor its grid temporaries) at once: that took the write phase 0.8 GB over the Fisher pass. On a
    GPU the same search runs on the device (clip_search_mx.py)."""
    import mlx.core as mx

    from . import host_math
    from .packing import quantized_arrays

    if not host_math.active():
        from . import clip_search_mx

        return clip_search_mx.clip_rounded(weight, bits, group_size)

    parts: list[tuple[Any, Any, Any]] = []
    for r in range(0, weight.shape[0], ROWS_PER_SLICE):
        w = np.array(weight[r:r + ROWS_PER_SLICE].astype(mx.float32))
        s, b = choose_params(w, None, bits, group_size, weight.dtype)
        part = quantized_arrays(round_to_grid(w, s, b, bits, group_size), s, b, bits, weight.dtype)
        mx.eval(*part)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return tuple(mx.concatenate([p[i] for p in parts], axis=0) for i in range(3))    # type: ignore[return-value]

"""GPTQ's inverse Cholesky factor of a wide H on the GPU: blocked, its products on the device.

`rounding.inverse_cholesky` factors on the host (OpenBLAS `spotrf` + `strtri`): n³/3 + n³/3 float operations
plus the copies of an n² matrix, which for a Llama-3-8B down projection (n = 14,336, 822 MB in float32) is
seconds per layer on the host and most of the write phase. Here the same factor is built by blocks:

- U = J·L⁻¹·J with L the lower Cholesky factor of J(H + λI)J (J reverses the order), as on the host;
- L by right-looking blocks: each BLOCK² diagonal block is factored on the host (OpenBLAS, float32 like the
  host path; a few ms), its panel below is one device product with that block's inverse, and the trailing
  matrix loses the panel's outer product (a device product);
- L⁻¹ by block rows: row i is -L_ii⁻¹·(L_i,<i · L⁻¹_<i,<i), one device product per row block.

Every device product of float32 operands is split (`exact_mm`): MLX-CUDA runs float32 products on TF32 tensor
cores (10-bit mantissa) unless MLX_ENABLE_TF32=0, which would cost the factor its precision; with each
operand written as a TF32-exact high part (its low 13 mantissa bits cleared) plus the rest, three products
keep ~2⁻²⁰ relative error.
On the first use in a process the result is checked against the host factor on a fixed problem; on a
mismatch the device form is off for the process (`failure` says why) and the host factor runs.
`TEMPER_GPTQ_DEVICE_FACTOR=0` turns it off (the benchmark's A/B: docs/benchmarks/gptq_forms.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ENV = "TEMPER_GPTQ_DEVICE_FACTOR"
BLOCK = 512                  # rows of a diagonal block factored on the host (host work ∝ n·BLOCK²)
MIN_N = 4096                 # below this the host factor is milliseconds: not worth the launches
CHECK_N, CHECK_BLOCK = 768, 256
TOLERANCE = 2e-3             # relative Frobenius error against the host factor on the check problem

failure: str | None = None
_checked = False


def split_needed() -> bool:
    """Whether float32 products may be reduced-precision here (MLX-CUDA: TF32 unless MLX_ENABLE_TF32=0)."""
    import os

    from ..accel.blas import cuda_build

    return cuda_build() and os.environ.get("MLX_ENABLE_TF32", "1") != "0"


def exact_mm(a: Any, b: Any, split: bool) -> Any:
    """a @ b to near float32 accuracy even where the hardware rounds float32 operands to TF32: each operand as
    a TF32-exact high part plus the rest (~2⁻¹¹ of it), three products (low × low is ~2⁻²² of the result)."""
    if not split:
        return matmul(a, b)
    ah, bh = _tf32_high(a), _tf32_high(b)
    return matmul(ah, bh) + (matmul(ah, b - bh) + matmul(a - ah, bh))


def matmul(a: Any, b: Any) -> Any:
    """The device product (a seam: the tests put a TF32-rounding product here to check the split)."""
    return a @ b


def _tf32_high(a: Any) -> Any:
    """`a` with the 13 mantissa bits TF32 drops cleared: exact in a TF32 product."""
    import mlx.core as mx

    return (a.view(mx.uint32) & 0xFFFFE000).view(mx.float32)


def _host_lower(a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(L, L⁻¹) of a small symmetric block on the host; None where it is not positive definite. By OpenBLAS's
    `spotrf` + `strtri` where one is at hand: float32 like the host path's whole-H factor (rounding.py), 2.5x
    faster than `dpotrf` + `dtrtri` at 512² (3.0 against 7.7 ms on the dev machine) and a small fraction of
    NumPy's float64 `cholesky` + general `inv`, which runs where no OpenBLAS is found."""
    from ..accel.lapack import cholesky_pair

    got = cholesky_pair(a, "s")
    if got is not None:
        return got if got is not False and np.isfinite(got[0]).all() else None
    try:
        low = np.linalg.cholesky(a.astype(np.float64))
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(low).all():
        return None
    inv = np.linalg.inv(low)
    return low, np.tril(inv)


def upper_inverse_factor(h: Any, lam: float, block: int = BLOCK) -> Any | None:
    """U (MLX float32, on the default device) with UᵀU = (H + λI)⁻¹, upper triangular with a positive diagonal,
    for a symmetric positive semi-definite MLX `h` (n, n); None where H + λI is not positive definite."""
    import mlx.core as mx

    split = split_needed()
    n = h.shape[0]
    a = h[::-1, ::-1]              # J·H·J; λ joins each diagonal block on the host (updates never touch it)
    starts = list(range(0, n, block))
    diag_inv: list[np.ndarray] = []
    panels: list[Any] = []           # column panels of L: rows k0.., columns k0..k1
    trailing = a
    for k0 in starts:
        k1 = min(k0 + block, n)
        m = k1 - k0
        akk = np.array(trailing[:m, :m])          # float32, as the factor below takes it (no float64 round trip)
        got = _host_lower((akk + akk.T) / 2 + np.float32(lam) * np.eye(m, dtype=np.float32))
        if got is None:
            return None
        low, inv = got
        diag_inv.append(inv)
        top = mx.array(low.astype(np.float32))
        if k1 < n:
            below = exact_mm(trailing[m:, :m], mx.array(inv.T.astype(np.float32)), split)
            trailing = trailing[m:, m:] - exact_mm(below, below.T, split)
            panel = mx.concatenate([top, below])
        else:
            panel = top
        mx.eval(trailing, panel)
        panels.append(panel)
    # L⁻¹ by block rows: X_ii = L_ii⁻¹; X_i,<i = -X_ii · (L_i,<i · X_<i,<i)
    rows_x: list[Any] = []
    for i, k0 in enumerate(starts):
        k1 = min(k0 + block, n)
        xii = mx.array(diag_inv[i].astype(np.float32))
        if i == 0:
            row = xii
        else:
            l_row = mx.concatenate([panels[j][k0 - starts[j]:k1 - starts[j]] for j in range(i)], axis=1)
            x_prev = mx.concatenate([mx.pad(r, [(0, 0), (0, k0 - r.shape[1])]) for r in rows_x])
            row = mx.concatenate([-exact_mm(xii, exact_mm(l_row, x_prev, split), split), xii], axis=1)
        mx.eval(row)
        rows_x.append(row)
    del panels, trailing, a
    x = mx.concatenate([mx.pad(r, [(0, 0), (0, n - r.shape[1])]) for r in rows_x])
    del rows_x
    u = x[::-1, ::-1]
    mx.eval(u)
    return u


def available() -> bool:
    """Whether the device factor is on: a GPU default device, and it passed its check in this process."""
    global failure, _checked
    from .rounding_device import on_accelerator

    if failure is not None or not on_accelerator():
        return False
    if not _checked:
        _checked = True
        try:
            _self_check()
        except Exception as exc:       # a wrong or failed device factor must never round a model
            failure = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return failure is None


def _self_check() -> None:
    import mlx.core as mx

    from .rounding import inverse_cholesky

    rng = np.random.default_rng(7)
    x = rng.standard_normal((CHECK_N, CHECK_N // 2)).astype(np.float32) * np.linspace(0.1, 3, CHECK_N)[:, None]
    h = (x @ x.T).astype(np.float32)
    lam = 0.01 * float(np.mean(np.diag(h)))
    want = inverse_cholesky(h, damp=0.01)
    got = upper_inverse_factor(mx.array(h), lam, block=CHECK_BLOCK)
    if got is None:
        raise ValueError("the device factor found the check matrix not positive definite")
    err = float(np.linalg.norm(np.array(got) - want) / np.linalg.norm(want))
    if not err < TOLERANCE:
        raise ValueError(f"device factor differs from the host factor by {err:.2e} (relative)")


def inverse_cholesky(h: Any, damp: float) -> Any:
    """`rounding.inverse_cholesky` on the device for an MLX `h`: λ = damp × mean diagonal, raised tenfold
    while H + λI is not positive definite. Returns U as an MLX array."""
    import mlx.core as mx

    mean = float(mx.mean(mx.diagonal(h)).item()) + 1e-8
    for attempt in range(6):
        u = upper_inverse_factor(h, damp * 10 ** attempt * mean)
        if u is not None and bool(mx.all(mx.isfinite(u)).item()):
            return u
    raise ValueError("H is not positive definite even with 10^5 x the damping")


def wanted(n: int) -> bool:
    """Whether GPTQ's factor of an n-wide H is made here (wide enough, and the device form is on)."""
    import os

    return n >= MIN_N and os.environ.get(ENV, "") != "0" and available()


def prepared(h: Any, act_order: bool, damp: float, group_size: int,
             cache: dict[Any, Any]) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """`rounding.prepared`'s device form: (the dead-input mask, the act-order permutation or None, U on the
    device), made at the first call for that H and kept in `cache` (the caller's, per H), plus H's diagonal
    blocks per group under ("blocks", group_size) as `rounding.group_blocks` keeps them. `h`: NumPy or MLX; a
    NumPy H is read, never copied whole on the host (the dead inputs' unit diagonal is set in the device copy and in the blocks)."""
    import mlx.core as mx

    if "raw" not in cache:                 # NumPy (from a spill) or MLX (the device registry): kept as it is
        raw = h if isinstance(h, mx.array) else np.asarray(h, dtype=np.float32)
        cache["raw"] = raw
        cache["dead"] = (np.array(mx.diagonal(raw)) if isinstance(raw, mx.array) else np.diag(raw)) <= 0
    raw, dead = cache["raw"], cache["dead"]
    raw_diag = (np.array(mx.diagonal(raw)) if isinstance(raw, mx.array) else np.diag(raw)).astype(np.float32)
    diag = np.where(dead, np.float32(1.0), raw_diag)
    key = ("gpu", act_order, damp)
    if key not in cache:
        hd = mx.array(raw).astype(mx.float32)
        if dead.any():
            hd = hd + mx.diag(mx.array((diag - raw_diag).astype(np.float32)))
        perm = np.argsort(-diag, kind="stable") if act_order else None
        if perm is not None:                                   # rounding.prepared's order: same diagonal
            idx = mx.array(perm.astype(np.int32))
            hd = mx.take(mx.take(hd, idx, axis=0), idx, axis=1)
        cache[key] = (perm, inverse_cholesky(hd, damp))
    if ("blocks", group_size) not in cache:
        n, gs = raw.shape[0], group_size
        pieces = [raw[g * gs:(g + 1) * gs, g * gs:(g + 1) * gs] for g in range(n // gs)]
        blocks = np.array(mx.stack(pieces)) if isinstance(raw, mx.array) else np.stack(pieces)
        i = np.flatnonzero(dead)
        blocks[i // gs, i % gs, i % gs] = 1.0
        cache[("blocks", group_size)] = blocks.astype(np.float32)
    return (dead, *cache[key])

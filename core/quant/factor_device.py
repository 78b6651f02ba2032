"""GPTQ's inverse Cholesky factor of a wide H on the GPU: blocked, its products on the device.

`rounding.inverse_cholesky` factors on the host (OpenBLAS `spotrf` + `strtri`): n³/3 + n³/3 float operations
plus the copies of an n² matrix, which for a Llama-3-8B down projection (n = 14,336, 822 MB in float32) is
seconds per layer on the host and most of the write phase. Here the same factor is built by halves:

- U = J·L⁻¹·J with L the lower Cholesky factor of J(H + λI)J (J reverses the order), as on the host;
- L⁻¹ recursively (`_lower_inverse`): the first half's, then the Schur complement's of the second half, joined
  by two device products; blocks of at most BLOCK rows are factored on the host (OpenBLAS, float32 like the host
  path; a few ms each), the only waits on the device.

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
# rows of a diagonal block factored on the host (host work ∝ n·BLOCK²). On an H100 (factor_leaves.py, session 13)
# leaves of 512/256/128 rows took 57.5/38.8/41.9 ms at n = 4,096 and 299/206/178 ms at n = 14,336
BLOCK = 256
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

    a = h[::-1, ::-1]              # J·H·J; λ joins each diagonal block on the host (updates never touch it)
    x = _lower_inverse(a, np.float32(lam), block, split_needed())
    if x is None:
        return None
    u = x[::-1, ::-1]
    mx.eval(u)
    return u


def _lower_inverse(a: Any, lam: np.float32, block: int, split: bool) -> Any | None:
    """L⁻¹ for L the lower Cholesky factor of a + λI, by halves: with a = [[A, Bᵀ], [B, C]],
    L₁₁⁻¹ from A; L₂₁ = B·L₁₁⁻ᵀ; L₂₂⁻¹ from the Schur complement C − L₂₁·L₂₁ᵀ; L⁻¹'s lower-left block
    −L₂₂⁻¹·L₂₁·L₁₁⁻¹. Blocks of at most `block` rows are factored on the host: the only waits on the device,
    one per such block. Each level's products are few and large (n/block − 1 halvings in all) and its arrays
    halve in size, where a block-by-block sweep copied the growing L⁻¹ once per block row (n³/block bytes)."""
    import mlx.core as mx

    n = a.shape[0]
    if n <= block:
        akk = np.array(a)                         # float32, as the factor below takes it (no float64 round trip)
        got = _host_lower((akk + akk.T) / 2 + lam * np.eye(n, dtype=np.float32))
        return None if got is None else mx.array(got[1].astype(np.float32))
    n1 = block * -(-(n // 2) // block)            # a multiple of `block` near the middle: the leaves stay full
    x11 = _lower_inverse(a[:n1, :n1], lam, block, split)
    if x11 is None:
        return None
    l21 = exact_mm(a[n1:, :n1], x11.T, split)
    x22 = _lower_inverse(a[n1:, n1:] - exact_mm(l21, l21.T, split), lam, block, split)
    if x22 is None:
        return None
    x21 = -exact_mm(x22, exact_mm(l21, x11, split), split)
    top = mx.concatenate([x11, mx.zeros((n1, n - n1), dtype=x11.dtype)], axis=1)
    return mx.concatenate([top, mx.concatenate([x21, x22], axis=1)])


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

"""C -= Aᵀ·B on NumPy float32 arrays, in place, through the preloaded OpenBLAS's `cblas_sgemm` (no copies).

GPTQ's column loop (core/quant/rounding.py) subtracts, per block of columns, products of a slice of H's inverse
Cholesky factor with the block's errors from the weights still to round. The products are small (16 or 128
columns deep): as MLX products they cost a copy of each operand into MLX, one of the result out and MLX's
dispatch, which at SmolLM2's shapes came to 10 s of a quantize whose products are 0.1 TFLOP. The OpenBLAS that
temper preloads for MLX (preload.py) multiplies NumPy's buffers where they lie, row-sliced views included,
and adds into the destination (beta = 1). `available()` says whether that library is in the process's
global scope (as syrk.py); callers keep their MLX product otherwise.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112     # cblas enums


@lru_cache(maxsize=1)
def _sgemm() -> Any:
    """The global `cblas_sgemm` with its argument types (int width from the library's build), or None."""
    from .openblas_symbols import cblas_function

    return cblas_function("cblas_sgemm", "eeeiiifpipifpi")


def available() -> bool:
    return _sgemm() is not None


def _rows(a: np.ndarray, name: str) -> int:
    """The leading dimension of a 2-D float32 array whose rows are contiguous (a row slice of one is too)."""
    if a.dtype != np.float32 or a.ndim != 2 or (a.shape[1] > 1 and a.strides[1] != 4) or a.strides[0] % 4:
        raise ValueError(f"{name} must be 2-D float32 with contiguous rows")
    return max(a.strides[0] // 4, a.shape[1], 1)


def sub_at_b(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """c -= aᵀ·b in place: a (k, m), b (k, n), c (m, n), float32 with contiguous rows (views of larger arrays
    allowed)."""
    fn = _sgemm()
    if fn is None:
        raise RuntimeError("no cblas_sgemm in this process (check gemm.available() first)")
    k, m = a.shape
    if b.shape[0] != k or c.shape != (m, b.shape[1]):
        raise ValueError(f"shapes {a.shape}ᵀ·{b.shape} do not make {c.shape}")
    lda, ldb, ldc = _rows(a, "a"), _rows(b, "b"), _rows(c, "c")
    if not (m and k and b.shape[1]):
        return
    pointer = ctypes.POINTER(ctypes.c_float)
    fn(ROW_MAJOR, TRANS, NO_TRANS, m, b.shape[1], k, -1.0, a.ctypes.data_as(pointer), lda,
       b.ctypes.data_as(pointer), ldb, 1.0, c.ctypes.data_as(pointer), ldc)

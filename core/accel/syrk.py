"""H += xᵀx through the preloaded OpenBLAS's `cblas_ssyrk`: half the work of a matrix product, in place.

GPTQ accumulates, for every Linear input of every block, H = Σ xᵀx over the calibration tokens: on a CPU that
costs about as much as the model's forward pass. MLX has no symmetric rank-k product (its `x.T @ x` computes
both triangles, and a new array per chunk); the OpenBLAS temper preloads for MLX (preload.py) has one, and it
updates the upper triangle of a NumPy float32 accumulator in place. `available()` says whether that library
is in the process's global scope (Linux with the preload; not macOS, not MLX's reference BLAS, not NumPy's
own bundled copy, whose symbols are renamed); callers keep their MLX product otherwise.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

import numpy as np

ROW_MAJOR, UPPER, TRANS = 101, 121, 112     # cblas enums


@lru_cache(maxsize=1)
def _ssyrk() -> Any:
    """The global `cblas_ssyrk` with its argument types (int width from the library's build), or None."""
    from .openblas_symbols import cblas_function

    return cblas_function("cblas_ssyrk", "eeeiifpifpi")


def available() -> bool:
    return _ssyrk() is not None


def accumulate(upper: np.ndarray, x: np.ndarray) -> None:
    """upper += xᵀx on the upper triangle (the lower one is left as it was): `upper` (n, n) and `x` (k, n),
    C-contiguous float32 (x is copied when it is not)."""
    fn = _ssyrk()
    if fn is None:
        raise RuntimeError("no cblas_ssyrk in this process (check syrk.available() first)")
    n = upper.shape[0]
    if upper.dtype != np.float32 or upper.shape != (n, n) or not upper.flags.c_contiguous:
        raise ValueError("the accumulator must be a C-contiguous float32 square array")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"x has shape {x.shape}, the accumulator {upper.shape}")
    if not x.shape[0]:
        return
    pointer = ctypes.POINTER(ctypes.c_float)
    fn(ROW_MAJOR, UPPER, TRANS, n, x.shape[0], 1.0, x.ctypes.data_as(pointer), n, 1.0,
       upper.ctypes.data_as(pointer), n)


def symmetric(upper: np.ndarray) -> np.ndarray:
    """The full symmetric matrix from its upper triangle."""
    return np.triu(upper) + np.triu(upper, 1).T

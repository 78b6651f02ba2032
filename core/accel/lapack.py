"""OpenBLAS's own Cholesky factorization and triangular inverse (`spotrf`, `strtri`; `dpotrf`, `dtrtri` for
float64), called through ctypes.

GPTQ needs, per group of Linears, the upper Cholesky factor of (H + λI)⁻¹. Where MLX's CPU stream has no fast
LAPACK (a CUDA build: `blas.cpu_linalg_fast()` is False) temper used NumPy's `cholesky` and a general `inv`
(an LU factorization for a triangular matrix: six times the work of a triangular inverse). On the H100 that
was 73% of the gemma4-E2B write phase (py-spy, docs/benchmarks/quantize_gpu.md, session 8): its down
projections have 6144- and 12288-wide H. OpenBLAS implements both routines natively (blocked and threaded),
and every pip-installed NumPy ships an OpenBLAS, so they are always within reach:

1. the OpenBLAS in the process's global scope (the one temper preloads for MLX on Linux CPU builds,
   `preload.py`), whose LAPACK names are plain (`spotrf_`), with 32- or 64-bit integers per its build;
2. NumPy's bundled copy (`numpy.libs/libscipy_openblas*.so`), whose names are prefixed and suffixed
   (`scipy_spotrf_64_`; NumPy 1.26's `spotrf_64_`): usable through ctypes even though MLX cannot link it.

3072² on one thread of the dev machine: NumPy's `cholesky` + `inv` 2.55 s, `spotrf` + `strtri` 0.26 s.
`cholesky_pair` (L and L⁻¹, either precision) serves the device factor's diagonal blocks (factor_device.py).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

# (prefix, suffix, 64-bit integers) of the LAPACK names in NumPy's bundled OpenBLAS, newest first.
_NUMPY_NAMES = (("scipy_", "_64_", True), ("scipy_", "_", False), ("", "_64_", True))


@dataclass(frozen=True)
class Lapack:
    potrf: Any
    trtri: Any
    integer: Any      # ctypes.c_int or c_int64, per the library's build
    source: str       # "global" or the bundled library's file name


def _bind(potrf: Any, trtri: Any, wide: bool, source: str) -> Lapack:
    integer = ctypes.c_int64 if wide else ctypes.c_int
    ref = ctypes.POINTER(integer)
    char, length = ctypes.c_char_p, ctypes.c_size_t       # gfortran passes each character argument's length
    potrf.argtypes = [char, ref, ctypes.c_void_p, ref, ref, length]
    trtri.argtypes = [char, char, ref, ctypes.c_void_p, ref, ref, length, length]
    potrf.restype = trtri.restype = None
    return Lapack(potrf, trtri, integer, source)


def _global(p: str) -> Lapack | None:
    from .openblas_symbols import global_function

    potrf, trtri = global_function(f"{p}potrf_"), global_function(f"{p}trtri_")
    if potrf is None or trtri is None:
        return None
    return _bind(potrf[0], trtri[0], potrf[1] is ctypes.c_int64, "global")


def _numpy_bundled(p: str) -> Lapack | None:
    from .numpy_blas import numpy_openblas_library

    lib = numpy_openblas_library()
    if lib is None:
        return None
    for prefix, suffix, wide in _NUMPY_NAMES:
        try:
            potrf, trtri = (getattr(lib, f"{prefix}{p}potrf{suffix}"),
                            getattr(lib, f"{prefix}{p}trtri{suffix}"))
        except AttributeError:
            continue
        return _bind(potrf, trtri, wide, os.path.basename(lib._name))
    return None


@lru_cache(maxsize=2)
def find(precision: str = "s") -> Lapack | None:
    """The OpenBLAS LAPACK to call for float32 ("s") or float64 ("d"), or None (macOS's NumPy uses Accelerate;
    a source-built NumPy)."""
    if precision not in ("s", "d"):
        raise ValueError(f"precision is 's' or 'd', not {precision!r}")
    return _global(precision) or _numpy_bundled(precision)


def lower_inverse_cholesky(a: np.ndarray, lapack: Lapack | None = None, *, overwrite: bool = False) \
        -> np.ndarray | None:
    """L⁻¹ for L the lower Cholesky factor of the symmetric positive definite float32 `a` (lower triangular,
    float32), or NaNs where `a` is not positive definite; None when no OpenBLAS LAPACK was found.

    A C-ordered array read as Fortran's is its transpose, the same matrix here: `spotrf('U')` leaves U with
    A = UᵀU in Fortran's upper triangle, which is Uᵀ = L in the C lower one; `strtri('U')` turns it into U⁻¹,
    which reads as L⁻¹ there. `overwrite`: work in `a` itself when it is a C-contiguous float32 array."""
    lapack = lapack or find()
    if lapack is None:
        return None
    work = np.array(a, dtype=np.float32, order="C", copy=not overwrite)
    if not _factor(work, lapack) or not _invert(work, lapack):
        return np.full(work.shape, np.nan, dtype=np.float32)
    return np.tril(work)


def cholesky_pair(a: np.ndarray, precision: str = "d") -> tuple[np.ndarray, np.ndarray] | None | bool:
    """(L, L⁻¹) for the symmetric `a`, by `?potrf` and `?trtri` in float64 ("d") or float32 ("s"); False where
    `a` is not positive definite, None when no OpenBLAS LAPACK was found (the caller's NumPy form runs)."""
    lapack = find(precision)
    if lapack is None:
        return None
    work = np.array(a, dtype=np.float64 if precision == "d" else np.float32, order="C")
    if not _factor(work, lapack):
        return False
    low = np.tril(work)
    if not _invert(work, lapack):
        return False
    return low, np.tril(work)


def _factor(work: np.ndarray, lapack: Lapack) -> bool:
    """`?potrf('U')` in place on the square C-ordered `work` (L in its lower triangle); False if not definite."""
    n = work.shape[0]
    if work.shape != (n, n):
        raise ValueError(f"a square matrix is needed, not {work.shape}")
    size, info = lapack.integer(n), lapack.integer(0)
    lapack.potrf(b"U", ctypes.byref(size), work.ctypes.data, ctypes.byref(size), ctypes.byref(info), 1)
    return info.value == 0


def _invert(work: np.ndarray, lapack: Lapack) -> bool:
    """`?trtri('U')` in place: the factor `_factor` left becomes L⁻¹ in the lower triangle."""
    size, info = lapack.integer(work.shape[0]), lapack.integer(0)
    lapack.trtri(b"U", b"N", ctypes.byref(size), work.ctypes.data, ctypes.byref(size), ctypes.byref(info), 1, 1)
    return info.value == 0

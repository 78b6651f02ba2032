"""NumPy's bundled OpenBLAS goes to one thread when temper's NumPy thread pool starts (core/accel/numpy_blas.py);
the OpenBLAS preloaded for MLX keeps its own thread count."""

from __future__ import annotations

import ctypes

import pytest


def _threads(path: str | None, name: str) -> int:
    lib = ctypes.CDLL(path)
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    return int(fn())


def test_the_pool_leaves_numpys_blas_one_thread_and_mlxs_its_own():
    from temper.core.accel import numpy_blas
    from temper.core.accel.preload import ensure_fast_blas
    from temper.core.quant.fisher_scoring_np import pool

    ensure_fast_blas(quiet=True)
    path = numpy_blas.numpy_openblas()
    if path is None:
        pytest.skip("this NumPy has no bundled scipy-openblas")
    getter = next(n for n in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads")
                  if hasattr(ctypes.CDLL(path), n))
    preloaded = None
    try:
        preloaded = _threads(None, "openblas_get_num_threads")       # the global (preloaded) library
    except AttributeError:
        pass
    pool()
    assert _threads(path, getter) == 1
    assert numpy_blas.single_threaded() is True
    if preloaded is not None:
        assert _threads(None, "openblas_get_num_threads") == preloaded

"""GPTQ's column-loop products in place through the preloaded OpenBLAS (core/accel/gemm.py, on MLX's CPU
backend): c -= aᵀ·b on row-sliced views, and the same rounding as the MLX products gave."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def blas():
    from temper.core.accel import gemm
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas(quiet=True)
    if not gemm.available():
        pytest.skip("no preloaded OpenBLAS in this process")
    return gemm


def test_sub_at_b_subtracts_in_place_on_views(blas):
    rng = np.random.default_rng(0)
    u = rng.standard_normal((40, 40)).astype(np.float32)
    err = rng.standard_normal((12, 9)).astype(np.float32)
    w = rng.standard_normal((40, 9)).astype(np.float32)
    got = w.copy()
    blas.sub_at_b(got[17:30], u[5:17, 17:30], err)          # slices of larger arrays, as GPTQ's loop has them
    want = w.copy()
    want[17:30] -= u[5:17, 17:30].astype(np.float64).T @ err
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert (got[:17] == w[:17]).all() and (got[30:] == w[30:]).all()
    blas.sub_at_b(got[40:], u[5:17, 40:], err)             # nothing to do
    with pytest.raises(ValueError):
        blas.sub_at_b(got[17:30], u[5:17, 17:30], err[:, ::2])   # rows not contiguous
    with pytest.raises(ValueError):
        blas.sub_at_b(got[17:31], u[5:17, 17:30], err)


def test_gptq_rounds_the_same_with_either_product(blas, monkeypatch):
    import mlx.core as mx
    from temper.core.quant import host_math, rounding

    monkeypatch.setattr(host_math, "FORCE", True)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((48, 320)).astype(np.float32)
    x = rng.standard_normal((600, 320)).astype(np.float32)
    h = x.T @ x
    out = {}
    for direct in (True, False):
        monkeypatch.setattr(blas, "available", lambda direct=direct: direct)
        calls = []
        sub = blas.sub_at_b
        monkeypatch.setattr(blas, "sub_at_b", lambda *a, sub=sub, calls=calls: calls.append(1) or sub(*a))
        out[direct] = (rounding.gptq(w, h, 4, 32, mx.bfloat16, act_order=True), len(calls))
        monkeypatch.setattr(blas, "sub_at_b", sub)
    assert out[True][1] > 0 and out[False][1] == 0
    for a, b in zip(out[True][0], out[False][0], strict=True):
        assert (a == b).mean() >= 0.999

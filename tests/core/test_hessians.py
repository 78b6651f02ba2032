"""GPTQ's H accumulators: the preloaded OpenBLAS's in-place syrk (core/accel/syrk.py, used on MLX's CPU backend)
gives the H that MLX's xᵀx products give, per input name, with the registry's bookkeeping unchanged."""

from __future__ import annotations

import numpy as np
import pytest


def test_syrk_accumulates_the_upper_triangle_in_place():
    from temper.core.accel import syrk

    if not syrk.available():
        pytest.skip("no preloaded OpenBLAS in this process")
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((40, 24)).astype(np.float32), rng.standard_normal((7, 24)).astype(np.float32)
    acc = np.zeros((24, 24), np.float32)
    acc[np.tril_indices(24, -1)] = 5.0                      # the lower triangle is never read nor written
    syrk.accumulate(acc, x1)
    syrk.accumulate(acc, x2[:, :].T.copy().T)              # a non-contiguous view is copied first
    syrk.accumulate(acc, x2[:0])                           # no rows: nothing happens
    want = x1.T.astype(np.float64) @ x1 + x2.T.astype(np.float64) @ x2
    np.testing.assert_allclose(syrk.symmetric(acc), want, rtol=1e-5, atol=1e-4)
    assert (acc[np.tril_indices(24, -1)] == 5.0).all()
    with pytest.raises(ValueError):
        syrk.accumulate(acc, x1[:, :20])
    with pytest.raises(ValueError):
        syrk.accumulate(acc.astype(np.float64), x1)


def test_host_and_mlx_registries_agree(engine):
    from temper.core.accel import syrk
    from temper.core.quant.hessians import HRegistry

    if not syrk.available():
        pytest.skip("no preloaded OpenBLAS in this process")

    def run(ctx):
        import mlx.core as mx

        regs = {True: HRegistry(host=True), False: HRegistry(host=False)}
        rng = np.random.default_rng(1)
        for _ in range(3):
            xa = mx.array(rng.standard_normal((1, 16, 32)).astype(np.float32))
            xb = mx.array(rng.standard_normal((2, 5, 48)).astype(np.float32)).astype(mx.bfloat16)
            for reg in regs.values():
                reg.add("a", xa)
                reg.add("b", xb)
        out = {}
        for host, reg in regs.items():
            mx.eval(*reg.pending())
            out[host] = (len(reg.pending()), reg.tokens.copy(), reg.peak_count, reg.peak_bytes,
                         np.array(reg.get("a")), np.array(reg.pop("b")), sorted(reg.live))
        return out

    out = engine.run(run)
    host, mlx = out[True], out[False]
    assert host[0] == 0 and mlx[0] == 2
    assert host[1:4] == mlx[1:4] == ({"a": 48, "b": 30}, 2, 4 * (32 * 32 + 48 * 48))
    np.testing.assert_allclose(host[4], mlx[4], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(host[5], mlx[5], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(host[4], host[4].T)
    assert host[6] == mlx[6] == ["a"]

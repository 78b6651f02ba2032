"""GPTQ's blocked inverse Cholesky factor on the device (`factor_device`) equals the host factor, keeps its
precision where float32 products are rounded to TF32 (simulated here), and rounds a weight exactly as the host
factor does once `gptq_on_device` takes it. Run on MLX's CPU device, the device form forced on."""

from __future__ import annotations

import numpy as np
import pytest
from quant_support import gptq_output_error, gptq_problem


def _spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n // 2)).astype(np.float32) * np.linspace(0.05, 4.0, n, dtype=np.float32)[:, None]
    return (x @ x.T).astype(np.float32)


def _tf32_matmul(a, b):
    """A float32 product whose operands are first rounded to TF32 (10 mantissa bits), as tensor cores do."""
    import mlx.core as mx

    def tf32(x):
        return ((x.view(mx.uint32) + 0x1000) & 0xFFFFE000).view(mx.float32)

    return tf32(a) @ tf32(b)


def _relative(got, want) -> float:
    return float(np.linalg.norm(np.asarray(got) - want) / np.linalg.norm(want))


@pytest.mark.parametrize("n,block", [(600, 128), (512, 512), (333, 100)])
def test_device_factor_equals_host_factor(engine, n, block):
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant import factor_device, rounding

        h = _spd(n, seed=n)
        lam = 0.01 * float(np.mean(np.diag(h)))
        u = factor_device.upper_inverse_factor(mx.array(h), lam, block=block)
        return np.array(u), rounding.inverse_cholesky(h, 0.01)

    got, want = engine.run(run)
    assert np.allclose(np.tril(got, -1), 0.0) and (np.diag(got) > 0).all()
    assert _relative(got, want) < 1e-4


def test_split_products_keep_the_factor_exact_under_tf32(engine, monkeypatch):
    """With every device product rounding its operands to TF32, the split products still give the host factor
    to ~1e-4; unsplit, the same factor is off by far more (why the split exists)."""
    from temper.core.quant import factor_device

    monkeypatch.setattr(factor_device, "matmul", _tf32_matmul)

    def run(ctx):
        import mlx.core as mx
        from temper.core.quant import rounding

        h = _spd(640, seed=3)
        lam = 0.01 * float(np.mean(np.diag(h)))
        want = rounding.inverse_cholesky(h, 0.01)
        errs = {}
        for split in (True, False):
            monkeypatch.setattr(factor_device, "split_needed", lambda split=split: split)
            errs[split] = _relative(factor_device.upper_inverse_factor(mx.array(h), lam, block=128), want)
        return errs

    errs = engine.run(run)
    assert errs[True] < 1e-4
    assert errs[False] > 10 * errs[True]


def test_not_positive_definite_is_refused_then_damped(engine):
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant import factor_device

        h = _spd(300, seed=1)
        h[7, 7] = -50.0 * float(np.mean(np.diag(h)))          # not positive semi-definite
        refused = factor_device.upper_inverse_factor(mx.array(h), 1e-6, block=128)
        return refused, np.array(factor_device.inverse_cholesky(mx.array(h), 0.01))

    refused, damped = engine.run(run)
    assert refused is None
    assert np.isfinite(damped).all() and (np.diag(damped) > 0).all()


@pytest.mark.parametrize("act_order", [True, False])
def test_gptq_on_device_with_the_device_factor_rounds_as_with_the_host_one(engine, monkeypatch, act_order):
    from temper.core.quant import factor_device

    def run(ctx):
        import mlx.core as mx
        from temper.core.quant.rounding_device import gptq_on_device

        w, h = gptq_problem(40, 384, seed=11)                    # input 5 is dead
        monkeypatch.setattr(factor_device, "wanted", lambda n: False)
        host = gptq_on_device(w, h, 4, 64, mx.bfloat16, act_order=act_order)
        monkeypatch.setattr(factor_device, "wanted", lambda n: True)
        monkeypatch.setattr(factor_device, "BLOCK", 128)
        factors: dict = {}
        dev = gptq_on_device(w, h, 4, 64, mx.bfloat16, act_order=act_order, factors=factors)
        again = gptq_on_device(w, None, 3, 64, mx.bfloat16, act_order=act_order, factors=factors)
        return host, dev, again, gptq_output_error(w, h, *host, 64), gptq_output_error(w, h, *dev, 64), sorted(
            map(str, factors))

    (q0, s0, b0), (q1, s1, b1), again, e0, e1, keys = engine.run(run)
    if act_order:
        assert np.array_equal(s0, s1) and np.array_equal(b0, b1)
    assert np.mean(q0 == q1) > 0.995
    assert abs(e1 - e0) <= 0.01 * e0
    assert again[0].max() <= 7                                  # the cached factor served a 3-bit call
    assert "raw" in keys and "h" not in keys                    # the host H was never copied whole

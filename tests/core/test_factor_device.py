"""GPTQ's blocked inverse Cholesky factor on the device (`factor_device`) equals the host factor, keeps its
precision where float32 products are rounded to TF32 (simulated here), and rounds a weight exactly as the host
factor does once `gptq_on_device` takes it. Run on MLX's CPU device, the device form forced on."""

from __future__ import annotations

import numpy as np
import pytest
from quant_support import gptq_output_error, gptq_problem, gptq_rounded_layers


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


def test_mlx_weights_and_h_stay_on_the_device_with_the_numpy_results(engine):
    """Given MLX weights (and an MLX H, as the device registry holds it), `gptq_on_device` returns MLX arrays,
    equal to what it returns for the same NumPy inputs."""
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant.rounding_device import gptq_on_device

        w, h = gptq_problem(24, 256, seed=2)
        ref = gptq_on_device(w, h, 3, 32, mx.bfloat16, act_order=True)
        got = gptq_on_device(mx.array(w).astype(mx.bfloat16), mx.array(h), 3, 32, mx.bfloat16, act_order=True)
        w16 = np.array(mx.array(w).astype(mx.bfloat16).astype(mx.float32))
        ref16 = gptq_on_device(w16, h, 3, 32, mx.bfloat16, act_order=True)
        return ref, [type(a).__name__ for a in got], [np.array(a) for a in got], ref16

    ref, kinds, got, ref16 = engine.run(run)
    assert kinds == ["array"] * 3
    assert got[0].dtype == np.uint8 and got[0].shape == ref[0].shape
    assert all(np.array_equal(a, b) for a, b in zip(got, ref16, strict=True))


@pytest.mark.parametrize("bits", [2, 4])
def test_device_clip_search_with_h_picks_the_numpy_shrinks(engine, bits):
    """clip_search_mx.choose with H's blocks (the GPU's search) against rounding.choose_params' NumPy form."""
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant import clip_search_mx
        from temper.core.quant.rounding import choose_params, diag_blocks

        w, h = gptq_problem(64, 256, seed=bits)
        blocks = diag_blocks(h + np.eye(256, dtype=np.float32), 64)
        ref = choose_params(w, blocks, bits, 64, mx.bfloat16)
        got = clip_search_mx.choose(mx.array(w), bits, 64, mx.bfloat16, h_blocks=blocks)
        return ref, [np.array(a) for a in got]

    (s0, b0), (s1, b1) = engine.run(run)
    assert s1.shape == s0.shape
    assert np.mean((s0 == s1) & (b0 == b1)) > 0.99          # a shrink tied to float32 rounding may go either way


def test_device_path_rounds_row_slices_as_one_call(trained_tiny, engine, monkeypatch):
    """The device path of `round_with_gptq` (MLX weights in, packed on the device) in slices of 5 rows gives
    the parameters of unsliced calls."""
    from temper.core.quant import gptq as gptq_module
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan

    plan = build_plan("uniform-4", load_inventory(trained_tiny), RecipeRequest())

    def run(ctx, elements):
        monkeypatch.setattr(gptq_module, "on_accelerator", lambda: True)
        monkeypatch.setattr(gptq_module, "SLICE_ELEMENTS", elements)
        return gptq_rounded_layers(trained_tiny, plan)

    whole = engine.run(lambda ctx: run(ctx, 1 << 25))
    sliced = engine.run(lambda ctx: run(ctx, 5 * 64))
    assert whole.keys() == sliced.keys()
    assert all(np.array_equal(whole[k], sliced[k]) for k in whole)


def test_float64_cholesky_pair_by_lapack_matches_numpy():
    """The device factor's diagonal blocks: OpenBLAS's dpotrf + dtrtri give NumPy's L and L⁻¹, and say False
    for a matrix that is not positive definite."""
    from temper.core.accel import lapack

    rng = np.random.default_rng(5)
    x = rng.standard_normal((96, 200))
    a = x @ x.T / 200
    got = lapack.cholesky_pair(a)
    if got is None:
        pytest.skip("no OpenBLAS LAPACK in this NumPy")
    low, inv = got
    want = np.linalg.cholesky(a)
    assert np.allclose(low, want, atol=1e-12) and np.allclose(inv, np.linalg.inv(want), atol=1e-9)
    a[3, 3] = -1.0
    assert lapack.cholesky_pair(a) is False

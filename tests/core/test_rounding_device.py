"""GPTQ on the accelerator (`rounding_device.gptq_on_device`) rounds as the NumPy form does: same scales and
biases, the same integers up to float32 ties, the same output error. Run here on MLX's CPU device."""

from __future__ import annotations

import numpy as np
import pytest
from quant_support import gptq_output_error as _output_error
from quant_support import gptq_problem as _problem
from quant_support import gptq_rounded_layers


@pytest.mark.parametrize("act_order", [True, False])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("bits,group_size", [(3, 64), (4, 32), (4, 128)])
def test_device_gptq_equals_numpy_gptq(engine, act_order, clip, bits, group_size):
    def run(ctx):
        import mlx.core as mx
        from temper.core.quant.rounding import gptq
        from temper.core.quant.rounding_device import gptq_on_device

        w, h = _problem(48, 384, seed=bits * 7 + group_size)
        ref = gptq(w, h, bits, group_size, mx.bfloat16, clip=clip, act_order=act_order)
        got = gptq_on_device(w, h, bits, group_size, mx.bfloat16, clip=clip, act_order=act_order)
        return ref, got, _output_error(w, h, *ref, group_size), _output_error(w, h, *got, group_size)

    (q0, s0, b0), (q1, s1, b1), e0, e1 = engine.run(run)
    assert q1.dtype == np.uint8 and q1.shape == q0.shape and s1.shape == s0.shape
    if act_order:                                          # chosen up front from the same weights: identical
        assert np.array_equal(s0, s1) and np.array_equal(b0, b1)
    assert np.mean(q0 == q1) > 0.995                       # float32 summation order may flip a rare tie
    assert abs(e1 - e0) <= 0.01 * e0


def test_device_gptq_refuses_partial_steps(engine):
    def run(ctx):
        import mlx.core as mx
        import numpy as np
        from temper.core.quant.rounding_device import gptq_on_device

        try:
            gptq_on_device(np.ones((4, 24), np.float32), np.eye(24, dtype=np.float32), 4, 24, mx.float32)
        except ValueError as exc:
            return str(exc)
        return None
    assert "16-column" in engine.run(run)


def test_model_rounding_takes_the_device_form_on_an_accelerator(trained_tiny, engine, monkeypatch):
    """With an accelerator, `round_with_gptq` rounds every Linear through `gptq_on_device`, and the model it
    writes holds the same integers, scales and biases as the CPU form's."""
    from temper.core.quant import gptq as gptq_module
    from temper.core.quant import rounding_device
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan

    plan = build_plan("uniform-4", load_inventory(trained_tiny), RecipeRequest())
    calls = []
    real = rounding_device.gptq_on_device

    def counted(*a, **k):
        calls.append(a[0].shape)
        return real(*a, **k)

    def run(ctx, accelerator):
        monkeypatch.setattr(gptq_module, "on_accelerator", lambda: accelerator)
        monkeypatch.setattr(gptq_module, "gptq_on_device", counted)
        return gptq_rounded_layers(trained_tiny, plan)

    cpu = engine.run(lambda ctx: run(ctx, False))
    assert not calls
    dev = engine.run(lambda ctx: run(ctx, True))
    assert calls                                                     # every rounded group went through it
    assert cpu.keys() == dev.keys()
    for k in cpu:
        if k.endswith(".weight") and cpu[k].dtype == np.uint32:
            assert np.mean(cpu[k] == dev[k]) > 0.99, k                # packed words: a flipped tie changes one
        else:
            assert np.allclose(cpu[k], dev[k], atol=1e-6), k


def test_large_tensors_are_rounded_in_row_slices_with_the_same_result(trained_tiny, engine, monkeypatch):
    """Rows never interact in GPTQ, so a 262k-row head can be rounded a slice at a time (bounded memory):
    slices of 5 rows (crossing the stacked q/k/v and gate/up members) give the integers of one call."""
    from temper.core.quant import gptq as gptq_module
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from test_gptq import calib_chunks

    plan = build_plan("uniform-3", load_inventory(trained_tiny), RecipeRequest())
    shapes = []
    real = gptq_module.gptq

    def counted(w, *a, **k):
        shapes.append(w.shape)
        return real(w, *a, **k)

    def run(ctx, elements):
        import mlx.core as mx
        from mlx.utils import tree_flatten
        from mlx_lm.utils import load_model

        monkeypatch.setattr(gptq_module, "SLICE_ELEMENTS", elements)
        monkeypatch.setattr(gptq_module, "gptq", counted)
        model, _ = load_model(trained_tiny, lazy=True)
        gptq_module.round_with_gptq(model, plan, calib_chunks(trained_tiny, count=2), gptq_module.Rounding(),
                                    on_tensor=lambda _p: None)
        return {k: np.array(v if v.dtype == mx.uint32 else v.astype(mx.float32))
                for k, v in tree_flatten(model.parameters()) if "layers" in k or "lm_head" in k}

    whole = engine.run(lambda ctx: run(ctx, 1 << 25))
    calls_whole = len(shapes)
    shapes.clear()
    sliced = engine.run(lambda ctx: run(ctx, 5 * 64))
    assert len(shapes) > calls_whole and all(r <= max(1, 5 * 64 // c) for r, c in shapes)
    assert whole.keys() == sliced.keys()
    for k in whole:
        assert np.mean(whole[k] == sliced[k]) > 0.999, k


def test_device_form_factors_each_h_once(engine, monkeypatch):
    """Linears that share an input but not a width (q at 4 bits, k at 3) are separate calls with one H: given
    the caller's `factors`, its permutation and inverse Cholesky factor are made once, and each call's result is
    the one it gives alone."""
    from temper.core.quant import rounding

    made = []
    real = rounding.inverse_cholesky
    monkeypatch.setattr(rounding, "inverse_cholesky", lambda *a, **k: made.append(1) or real(*a, **k))

    def run(ctx):
        import mlx.core as mx
        from temper.core.quant.rounding_device import gptq_on_device

        w, h = _problem(32, 256, seed=5)
        alone = [gptq_on_device(w, h, bits, 64, mx.bfloat16, act_order=True) for bits in (4, 3)]
        before = len(made)
        factors: dict = {}
        shared = [gptq_on_device(w, h if not factors else None, bits, 64, mx.bfloat16, act_order=True,
                                 factors=factors) for bits in (4, 3)]
        return alone, shared, len(made) - before

    alone, shared, factorizations = engine.run(run)
    assert factorizations == 1
    for a, s in zip(alone, shared, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, s, strict=True))

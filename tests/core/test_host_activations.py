"""The NumPy stand-ins for the model's SiLU and attention (core/quant/host_activations.py, used on MLX's CPU
backend) give MLX's values and gradients: alone, for every mask form and grouped-query shape, and inside a whole
model's forward pass and Fisher estimate; `swapped` puts the originals back, nested or not, and does nothing
when off."""

from __future__ import annotations

import numpy as np
import pytest


def _rand(*shape, seed=0):
    import mlx.core as mx

    return mx.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 2)


def test_silu_and_softmax_match_mlx_with_gradients(engine):
    import mlx.core as mx
    import mlx.nn as nn
    from temper.core.quant import host_activations as ha

    def run(ctx):
        x, w = _rand(3, 7, 40), _rand(3, 7, 40, seed=1)
        out = {"silu": (ha.silu(x), nn.silu(x)),
               "silu bf16": (ha.silu(x.astype(mx.bfloat16)), nn.silu(x.astype(mx.bfloat16))),
               "softmax": (ha.softmax(x), mx.softmax(x, axis=-1, precise=True)),
               "silu grad": (mx.grad(lambda a: (ha.silu(a) * w).sum())(x),
                             mx.grad(lambda a: (nn.silu(a) * w).sum())(x)),
               "softmax grad": (mx.grad(lambda a: (ha.softmax(a) * w).sum())(x),
                                mx.grad(lambda a: (mx.softmax(a, axis=-1) * w).sum())(x))}
        return {k: (np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32)), str(a.dtype))
                for k, (a, b) in out.items()}

    for name, (got, want, dtype) in engine.run(run).items():
        assert dtype.endswith("bfloat16") == ("bf16" in name), name
        tol = 1e-2 if "bf16" in name else 1e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)


MASKS = ["none", "causal", "bool", "additive", "bool4d"]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("heads,length", [((4, 4), 6), ((6, 2), 6), ((6, 2), 3)], ids=["mha", "gqa", "gqa-offset"])
def test_attention_matches_mlx_with_gradients(engine, mask, heads, length):
    import mlx.core as mx
    from temper.core.quant import host_activations as ha

    hq, hk = heads

    def run(ctx):
        keys = 6
        q, k, v = _rand(2, hq, length, 8), _rand(2, hk, keys, 8, seed=1), _rand(2, hk, keys, 8, seed=2)
        causal = mx.arange(keys)[None] <= (mx.arange(length) + keys - length)[:, None]
        m = {"none": None, "causal": "causal", "bool": causal,
             "additive": mx.where(causal, 0.0, -1e9) + _rand(length, keys, seed=3) * 0.1,
             "bool4d": mx.broadcast_to(causal, (2, hq, length, keys))}[mask]
        ours = ha.attention(mx.fast.scaled_dot_product_attention)
        w = _rand(2, hq, length, 8, seed=4)

        def both(fn):
            value = fn(q, k, v, scale=0.3, mask=m)
            grads = mx.grad(lambda a, b, c: (fn(a, b, c, scale=0.3, mask=m) * w).sum(), argnums=(0, 1, 2))(q, k, v)
            return [np.array(a) for a in (value, *grads)]

        return both(ours), both(mx.fast.scaled_dot_product_attention)

    got, want = engine.run(run)
    assert got[0].shape == (2, hq, length, 8)
    for name, a, b in zip(("value", "dq", "dk", "dv"), got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


def test_swapped_restores_nests_and_stays_off(engine):
    import mlx.core as mx
    import mlx.nn as nn
    from temper.core.quant import host_activations as ha

    def run(ctx):
        silu, sdpa = nn.silu, mx.fast.scaled_dot_product_attention
        seen = []
        with ha.swapped(False):
            seen.append(nn.silu is silu and mx.fast.scaled_dot_product_attention is sdpa)
        with ha.swapped(True):
            inner = mx.fast.scaled_dot_product_attention
            seen.append(nn.silu is ha.silu and inner is not sdpa)
            with ha.swapped(True):
                seen.append(mx.fast.scaled_dot_product_attention is inner)    # not wrapped twice
            seen.append(nn.silu is ha.silu)
        try:
            with ha.swapped(True):
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        seen.append(nn.silu is silu and mx.fast.scaled_dot_product_attention is sdpa)
        return seen

    assert engine.run(run) == [True, True, True, True, True]


def test_swiglu_is_swapped_and_compiled_callers_fall_back(engine):
    """mlx-lm's swiglu is mx.compile'd: once traced it keeps the silu it saw, so its name is swapped in the model
    modules; a compiled function that calls nn.silu itself gets MLX's values (the stand-in cannot evaluate there)."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.models import activations, llama
    from temper.core.quant import host_activations as ha

    def run(ctx):
        gate, x = _rand(2, 5, 16), _rand(2, 5, 16, seed=1)
        want = np.array(llama.swiglu(gate, x))                  # traced (and cached) with MLX's silu
        twice = mx.compile(lambda a: nn.silu(a) * 2)
        with ha.swapped(True):
            inside = llama.swiglu is ha.swiglu and activations.swiglu is not ha.swiglu
            got = np.array(llama.swiglu(gate, x))
            compiled = np.array(twice(gate))
        return want, got, compiled, np.array(nn.silu(gate) * 2), inside, llama.swiglu is activations.swiglu

    want, got, compiled, plain, inside, restored = engine.run(run)
    assert inside and restored
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled, plain, rtol=1e-6)


def test_model_forward_and_fisher_estimate_agree(engine, trained_tiny, monkeypatch):
    import mlx.core as mx
    from temper.core.engine.loader import load
    from temper.core.quant import estimate, host_math, reference
    from temper.core.quant import host_activations as ha
    from temper.core.quant.calibration import calibration_set
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.tensors import quantizable

    def run(ctx):
        lm = load(trained_tiny)
        lm.model.set_dtype(mx.float32)
        chunks = calibration_set(lm.tokenizer, samples=2, seq_len=32).chunks
        x = mx.array(chunks)
        tensors = quantizable(lm.model)
        cands = [Candidate(2, 64), Candidate(4, 64)]
        out = {}
        for on in (False, True, False):         # MLX first: the compiled swiglu is traced with its silu
            monkeypatch.setattr(host_math, "FORCE", on)        # the one switch: reference.forward reads it
            calls = []
            silu, exp = ha._np_silu, np.exp
            ha._np_silu = lambda a, calls=calls, silu=silu: calls.append("silu") or silu(a)
            monkeypatch.setattr(np, "exp", lambda *a, calls=calls, exp=exp, **k: calls.append("exp") or exp(*a, **k))
            try:
                logits = np.array(reference.forward(lm.model, x))
                forward = calls.count("silu")
                with ha.swapped(on):      # the NumPy head both times: the same labels, only the activations differ
                    est = estimate._fisher_estimates(lm.model, chunks, tensors, cands, numpy_head=True, seed=3)
            finally:
                ha._np_silu = silu
                monkeypatch.setattr(np, "exp", exp)
            out[on] = (logits, est, calls, forward)
        return out

    out = engine.run(run)
    assert "silu" not in out[False][2] and out[True][3] == 4          # 4 blocks: the forward's silus are ours
    assert out[True][2].count("silu") >= 4 + 2 * 4                    # and the Fisher pass's (2 sequences)
    assert out[True][2].count("exp") > out[False][2].count("exp") + 2 * 4           # softmaxes and sigmoids
    np.testing.assert_allclose(out[True][0], out[False][0], rtol=1e-4, atol=1e-4)
    ours, theirs = out[True][1], out[False][1]
    assert ours.keys() == theirs.keys()
    a = np.array([ours[p][k] for p in ours for k in ours[p]])
    b = np.array([theirs[p][k] for p in theirs for k in theirs[p]])
    np.testing.assert_allclose(a, b, rtol=1e-3)

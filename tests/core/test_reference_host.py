"""The NumPy path of the reference's vocabulary-wide math (core/quant/host_math.py, used on MLX's CPU backend)
gives what the MLX path gives: the stored reference, per-token KL, top-1 agreement, perplexity and the
sensitivity pass's mean KL, in the full and the top-k form, with the positions walked in small slices."""

from __future__ import annotations

import numpy as np
import pytest
from temper.core.quant import host_math
from temper.core.quant import reference as reference
from temper.core.quant.calibration import calibration_set
from temper.core.quant.candidates import Candidate
from temper.core.quant.tensors import fake_quantize, quantizable

TOKEN_LISTS = [[5, 9, 2, 7, 11, 3, 8, 40, 41, 7], [4, 4, 6, 1], [12, 30, 2, 9, 9, 17]]


def _run(trained_tiny, monkeypatch, *, on_host: bool, budget: int, lists: bool):
    """Reference, per-token scores against a 2-bit head, and kl(), all by one path (engine thread only)."""
    import mlx.core as mx
    from temper.core.engine.loader import load

    monkeypatch.setattr(host_math, "FORCE", on_host)
    if on_host:      # no MLX logsumexp on this path, and slices of 3 positions (the last one short)
        monkeypatch.setattr(host_math, "SLICE_BYTES", 3 * 1024 * 4)
        monkeypatch.setattr(mx, "logsumexp", lambda *a, **k: (_ for _ in ()).throw(AssertionError("MLX lse")))
    lm = load(trained_tiny)
    lm.model.set_dtype(mx.float32)
    if lists:
        ref = reference.Reference(lm.model, TOKEN_LISTS, budget_bytes=budget, replay=False)
    else:
        chunks = calibration_set(lm.tokenizer, samples=2, seq_len=32).chunks
        ref = reference.Reference(lm.model, chunks, vocab=1024, budget_bytes=budget)
    head = next(t for t in quantizable(lm.model) if t.path == "lm_head")
    original = head.module["weight"]
    head.module["weight"] = fake_quantize(original, Candidate(2, 64), mx.bfloat16)
    scores, kl = ref.per_token(lm.model), ref.kl(lm.model)
    head.module["weight"] = original
    stored = [{k: np.array(getattr(b, k)) for k in ("logp", "idx", "top", "tail") if getattr(b, k) is not None}
              for b in ref.batches]
    monkeypatch.undo()
    return ref, scores, kl, stored


@pytest.mark.parametrize("budget", [1 << 30, 0], ids=["full", "top-k"])
@pytest.mark.parametrize("lists", [False, True], ids=["array", "token-lists"])
def test_numpy_path_matches_mlx_path(engine, trained_tiny, monkeypatch, budget, lists):
    mlx_ref, mlx_s, mlx_kl, mlx_stored = engine.run(
        lambda ctx: _run(trained_tiny, monkeypatch, on_host=False, budget=budget, lists=lists))
    np_ref, np_s, np_kl, np_stored = engine.run(
        lambda ctx: _run(trained_tiny, monkeypatch, on_host=True, budget=budget, lists=lists))
    assert np_ref.kind == mlx_ref.kind and (np_ref.kind == "full") == bool(budget)
    assert np_ref.replay == mlx_ref.replay == (not lists)        # the replay check passes on both paths
    for got, want in zip(np_stored, mlx_stored, strict=True):
        assert got.keys() == want.keys()
        for key in got:
            if key == "tail":  # MLX's fp32 tail loses ~4 digits to cancellation; NumPy's (fp64) is checked below
                np.testing.assert_allclose(got[key], want[key], rtol=0, atol=2e-3)
                exact = np.log1p(-np.exp(got["top"].astype(np.float64)).sum(-1, keepdims=True))
                np.testing.assert_allclose(got[key], exact, rtol=1e-6, atol=1e-6)
            elif key == "idx":   # the same top-k ids (argpartition's order within them may differ: compare sets)
                assert (np.sort(got[key], axis=-1) == np.sort(want[key], axis=-1)).all()
            else:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=2e-5)
    assert np_ref.nll == pytest.approx(mlx_ref.nll, rel=1e-5) and np_ref.predicted == mlx_ref.predicted
    assert np_s.kl.shape == mlx_s.kl.shape and np_s.kl.dtype == np.float32
    assert np_s.kl.mean() > 1e-3                                  # the 2-bit head does diverge
    np.testing.assert_allclose(np_s.kl, mlx_s.kl, rtol=1e-4, atol=1e-6)
    assert np_s.kl.mean() == pytest.approx(mlx_s.kl.mean(), rel=1e-5)
    assert (np_s.top1 == mlx_s.top1).all() and 0 < np_s.top1.mean() < 1
    assert np_s.nll == pytest.approx(mlx_s.nll, rel=1e-5) and np_s.ppl == pytest.approx(mlx_s.ppl, rel=1e-5)
    assert np_kl == pytest.approx(mlx_kl, rel=1e-5)


def test_numpy_math_against_float64_and_slicing(monkeypatch):
    """logsumexp and both KL forms against a float64 computation, the positions in slices of 1, 2 or all."""
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((2, 5, 300)) * 4).astype(np.float32)
    other = (logits + rng.standard_normal(logits.shape)).astype(np.float32)
    want_lse = np.log(np.exp(logits.astype(np.float64)).sum(-1, keepdims=True))
    logp = (logits - want_lse).astype(np.float32)
    q = other.astype(np.float64) - np.log(np.exp(other.astype(np.float64)).sum(-1, keepdims=True))
    want_kl = (np.exp(logp.astype(np.float64)) * (logp - q)).sum(-1)
    idx = np.argsort(-logits, axis=-1)[..., :16]
    top = np.take_along_axis(logp, idx, -1)
    tail = np.log1p(-np.exp(top.astype(np.float64)).sum(-1, keepdims=True))
    q_top = np.take_along_axis(q, idx, -1)
    q_tail = np.log1p(-np.exp(q_top).sum(-1, keepdims=True))
    want_top = (np.exp(top) * (top - q_top)).sum(-1) + (np.exp(tail) * (tail - q_tail))[..., 0]
    for rows in (1, 2, 10):
        monkeypatch.setattr(host_math, "SLICE_BYTES", rows * 300 * 4)
        lse = host_math.logsumexp(other)
        np.testing.assert_allclose(host_math.logsumexp(logits), want_lse, rtol=1e-6)
        np.testing.assert_allclose(host_math.kl_full(logp, other, lse), want_kl, rtol=1e-4, atol=1e-6)
        got_top = host_math.kl_top(idx, top, tail.astype(np.float32), other, lse)
        np.testing.assert_allclose(got_top, want_top, rtol=1e-4, atol=1e-6)
    assert (host_math.logsumexp(np.full((1, 4), -np.inf, np.float32)) == -np.inf).all()


def test_numpy_path_follows_the_backend(monkeypatch):
    from temper.core.accel.compute import on_cpu_backend

    monkeypatch.setattr(host_math, "FORCE", None)
    assert host_math.active() == on_cpu_backend()
    monkeypatch.setattr(host_math, "FORCE", False)
    assert not host_math.active()


def test_numpy_logsumexp_is_float64_accurate_at_a_real_vocabulary():
    """At 49152 logits (SmolLM2's vocabulary) the fp32 result stays within fp32 rounding of float64: MLX's fp32
    accumulation is ~1e-4 nats low there (docs/benchmarks/eval_numpy_cpu.md), which is why the two paths'
    perplexities differ by ~1e-4 on a real model while agreeing to ~1e-6 on the 1024-token fixture."""
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((64, 49152)) * 3 + rng.standard_normal((64, 1)) * 10).astype(np.float32)
    exact = logits.astype(np.float64)
    top = exact.max(-1, keepdims=True)
    exact = np.log(np.exp(exact - top).sum(-1, keepdims=True)) + top
    err = host_math.logsumexp(logits).astype(np.float64) - exact
    assert np.abs(err).max() <= 4 * np.spacing(np.abs(exact).astype(np.float32)).max()

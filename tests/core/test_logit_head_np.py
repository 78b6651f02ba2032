"""The head's passes with NumPy's exp (logit_head_np.py) give logit_head.py's numbers: the same logsumexp, and
for the same labels the same gradients; the labels follow softmax(logits); kept and recomputed slices agree."""

from __future__ import annotations

import numpy as np
import pytest


def _head(vocab: int, dim: int, softcap: float | None, seed: int = 0):
    import mlx.core as mx
    from temper.core.quant.logit_head import Head

    rng = np.random.default_rng(seed)
    w = mx.array(rng.standard_normal((vocab, dim)).astype(np.float32) * 0.3)
    h = mx.array(rng.standard_normal((24, dim)).astype(np.float32))
    return Head({"weight": w}, "lm_head", False, softcap), h


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("keep", [True, False])
def test_numpy_passes_match_the_mlx_passes(engine, softcap, keep, monkeypatch):
    import mlx.core as mx
    from temper.core.quant import logit_head, logit_head_np

    if not keep:
        monkeypatch.setattr(logit_head, "KEEP_BYTES", 0)

    def run(ctx):
        head, h = _head(1000, 16, softcap)
        rows = 256                                            # four slices, the last one short
        kept_np = logit_head.Kept(24, 1000, softcap)
        lse = logit_head_np.normaliser(head, h, rows, kept_np)
        dh, labels = logit_head_np.hidden_grad(head, h, lse, np.random.default_rng(5), rows, kept_np)
        grads_np = {}
        logit_head_np.weight_grads(head, h, lse, labels, rows, lambda a, b, g: grads_np.update({a: np.array(g)}),
                                   kept_np)
        # the MLX passes for the same labels
        kept = logit_head.Kept(24, 1000, softcap)
        lse_mx, _ = logit_head.normaliser_and_labels(head, h, mx.random.key(0), rows, kept)
        dh_mx = logit_head.hidden_grad(head, h, lse_mx, mx.array(labels), rows, kept)
        grads = {}
        logit_head.weight_grads(head, h, lse_mx, mx.array(labels), rows,
                                lambda a, b, g: grads.update({a: np.array(g)}), kept)
        return lse, np.array(lse_mx), np.array(dh), np.array(dh_mx), labels, grads_np, grads

    lse, lse_mx, dh, dh_mx, labels, grads_np, grads = engine.run(run)
    assert np.allclose(lse, lse_mx, rtol=1e-5, atol=1e-5)
    assert labels.min() >= 0 and labels.max() < 1000
    assert np.allclose(dh, dh_mx, rtol=1e-4, atol=1e-5)
    assert sorted(grads_np) == sorted(grads) == [0, 256, 512, 768]
    for a in grads:
        assert np.allclose(grads_np[a], grads[a], rtol=1e-4, atol=1e-5), a


def test_sampled_labels_follow_the_softmax(engine):
    """Many draws over one token's 40-way softmax (five slices): each label's frequency is its probability."""
    import mlx.core as mx
    from temper.core.quant import logit_head, logit_head_np

    def run(ctx):
        rng = np.random.default_rng(1)
        w = mx.array(rng.standard_normal((40, 8)).astype(np.float32))
        h = mx.array(np.repeat(rng.standard_normal((1, 8)).astype(np.float32), 4000, axis=0))
        head = logit_head.Head({"weight": w}, "lm_head", False, None)
        lse = logit_head_np.normaliser(head, h, 8)
        _, labels = logit_head_np.hidden_grad(head, h, lse, np.random.default_rng(2), 8)
        logits = np.array(h[:1] @ w.T)[0]
        return labels, np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()

    labels, p = engine.run(run)
    freq = np.bincount(labels, minlength=40) / len(labels)
    se = np.sqrt(p * (1 - p) / len(labels))
    assert np.all(np.abs(freq - p) < 5 * se + 1e-3), np.abs(freq - p).max()

"""Attention with one shared prefix copy (core/evals/prefix_attention.py) against MLX's own attention over
the prefix copied into every row: the same numbers to float rounding, left padding and causal mask
included. (tests/core/test_evals_run.py checks whole completions on the trained tiny fixture.)"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("L", [1, 4])
def test_shared_prefix_attention_matches_the_copied_prefix(L: int):
    import mlx.core as mx
    from mlx_lm.models.base import create_causal_mask
    from temper.core.evals.prefix_attention import attention, with_prefix

    mx.random.seed(0)
    B, H, hkv, S, P, D = 3, 6, 2, 5, 7, 8
    q = mx.random.normal((B, H, L, D))
    k, v = mx.random.normal((B, hkv, S, D)), mx.random.normal((B, hkv, S, D))
    prefix = (mx.random.normal((1, hkv, P, D)), mx.random.normal((1, hkv, P, D)))
    mask = create_causal_mask(L, offset=S - L, left_padding=mx.array([0, 1, 2]))
    K = mx.concatenate([mx.broadcast_to(prefix[0], (B, hkv, P, D)), k], axis=2)
    V = mx.concatenate([mx.broadcast_to(prefix[1], (B, hkv, P, D)), v], axis=2)
    full = mx.concatenate([mx.ones((B, 1, L, P), dtype=mx.bool_), mx.broadcast_to(mask, (B, 1, L, S))], axis=-1)
    want = mx.fast.scaled_dot_product_attention(q, K, V, scale=0.3, mask=full)
    got = attention(q, k, v, prefix, 0.3, mask)
    assert mx.abs(got - want).max().item() < 1e-5
    wk, wv, wm = with_prefix(k, v, prefix, mask, L)
    assert mx.array_equal(wk, K) and mx.array_equal(wv, V)
    assert mx.array_equal(mx.broadcast_to(wm, full.shape), full)
    # a padded key (row 2's first two own tokens) changes nothing
    k2 = k.at[2, :, :2, :].add(100.0)
    assert mx.abs(attention(q, k2, v, prefix, 0.3, mask) - got).max().item() < 1e-5

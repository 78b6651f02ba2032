"""The fused scoring kernel of the Fisher estimate: its element-wise fake quantization gives mx.quantize →
mx.dequantize's values exactly, and scoring every candidate of a group size in one call gives each
candidate's own score (the per-candidate formula, with fake_quantize)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float16"])
def test_affine_fake_quantization_equals_mlx_quantize(dtype):
    import mlx.core as mx
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.fakequant import fake_quantize
    from temper.core.quant.fisher_scoring import _affine

    dt = getattr(mx, dtype)
    mx.random.seed(0)
    w = (mx.random.normal((96, 256)) * 0.05).astype(dt)
    w = mx.concatenate([w, mx.zeros((1, 256), dtype=dt), mx.full((1, 256), 0.25, dtype=dt)])  # flat groups
    wf = w.astype(mx.float32)
    for bits in (2, 3, 4, 5, 6, 8):
        for group in (32, 64, 128):
            wg = wf.reshape(wf.shape[0], -1, group)
            lo, hi = wg.min(-1, keepdims=True), wg.max(-1, keepdims=True)
            got = _affine(wg, lo, hi, bits, dt)        # eager here; compiled inside score_candidates (below)
            want = fake_quantize(w, Candidate(bits, group))
            mismatch = float((got.reshape(want.shape) != want).astype(mx.float32).mean().item())
            assert mismatch == 0.0, (dtype, bits, group, mismatch)


def test_one_call_per_group_size_scores_each_candidate_as_alone():
    import mlx.core as mx
    from temper.core.quant.candidates import grid
    from temper.core.quant.estimate import _Stats
    from temper.core.quant.fakequant import fake_quantize
    from temper.core.quant.fisher_scoring import score_candidates

    mx.random.seed(1)
    rows, cols = 48, 256
    w = (mx.random.normal((rows, cols)) * 0.05).astype(mx.bfloat16).astype(mx.float32)
    cands = grid(bits=(2, 3, 4, 8), group_sizes=(32, 64, 128))
    st = _Stats(rows, cols, [32, 64, 128], mx.float32)
    for _ in range(3):
        st.add(mx.random.normal((rows, cols)), w)
    got = score_candidates([(w, st)], cands, mx.bfloat16, lambda: None)
    for c in cands:                                  # the per-candidate formula, written out
        d = fake_quantize(w, c, mx.bfloat16) - w
        alpha = (d * w).sum(-1) / (w * w).sum(-1)
        d2 = d - alpha[:, None] * w
        m = d2.reshape(rows, -1, c.group_size).mean(-1)
        r = d2 - mx.repeat(m, c.group_size, axis=-1)
        proj = mx.stack(st.q) @ alpha
        want = float(((st.d * (d * d + r * r)).sum() + (st.s[c.group_size] * m * m).sum()
                      + (proj * proj).sum()).item())
        assert got[c.key] == pytest.approx(want, rel=1e-4), c.key


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float16"])
def test_numpy_fake_quantization_equals_the_mlx_kernels(dtype):
    """fisher_scoring_np.affine (the CPU path's NumPy form) gives _affine's values, bit for bit."""
    import mlx.core as mx
    import numpy as np
    from temper.core.quant.fisher_scoring import _affine
    from temper.core.quant.fisher_scoring_np import affine

    dt = getattr(mx, dtype)
    mx.random.seed(2)
    w = (mx.random.normal((64, 256)) * 0.05).astype(dt)
    w = mx.concatenate([w, mx.zeros((1, 256), dtype=dt), mx.full((1, 256), -0.25, dtype=dt)])
    wf = w.astype(mx.float32)
    for bits in (2, 3, 4, 5, 6, 8):
        for group in (32, 64, 128):
            wg = wf.reshape(wf.shape[0], -1, group)
            lo, hi = wg.min(-1, keepdims=True), wg.max(-1, keepdims=True)
            want = np.array(_affine(wg, lo, hi, bits, dt))
            got = affine(np.array(wg), np.array(lo), np.array(hi), bits, dt)
            assert np.array_equal(got, want), (dtype, bits, group, float((got != want).mean()))


def test_numpy_scores_equal_the_mlx_kernels_scores(monkeypatch):
    """The thread-pool NumPy scoring gives the MLX kernel's scores, over several row slices and parts."""
    import mlx.core as mx
    from temper.core.quant import fisher_scoring_np
    from temper.core.quant.candidates import grid
    from temper.core.quant.estimate import _Stats
    from temper.core.quant.fisher_scoring import score_candidates

    monkeypatch.setattr(fisher_scoring_np, "SLICE_BYTES", 8 * 256 * 4)     # 8 rows a slice: many slices
    mx.random.seed(3)
    parts = []
    for rows in (40, 27):
        w = (mx.random.normal((rows, 256)) * 0.05).astype(mx.bfloat16).astype(mx.float32)
        st = _Stats(rows, 256, [32, 64, 128], mx.float32)
        for _ in range(3):
            st.add(mx.random.normal((rows, 256)), w)
        parts.append((w, st))
    cands = grid(bits=(2, 3, 4, 6, 8), group_sizes=(32, 64, 128))
    mlx_scores = score_candidates(parts, cands, mx.bfloat16, lambda: None, numpy_path=False)
    np_scores = score_candidates(parts, cands, mx.bfloat16, lambda: None, numpy_path=True)
    for c in cands:
        assert np_scores[c.key] == pytest.approx(mlx_scores[c.key], rel=1e-5), c.key


def test_a_small_models_weight_is_scored_on_every_thread(monkeypatch):
    """SmolLM2's weights (576 x 576 to 1536 x 576) are cut into at least one row slice per pool thread, so the
    NumPy scoring keeps both cores busy (4 MB slices made each one slice: one thread)."""
    import mlx.core as mx
    from temper.core.quant import fisher_scoring_np
    from temper.core.quant.candidates import grid
    from temper.core.quant.estimate import _Stats

    jobs = []
    real = fisher_scoring_np.pool()
    submit = real.submit
    monkeypatch.setattr(real, "submit", lambda fn, *a: jobs.append(a[0].shape) or submit(fn, *a))
    monkeypatch.setattr(fisher_scoring_np, "threads", lambda: 2)
    for rows in (576, 1536):
        jobs.clear()
        w = mx.zeros((rows, 576))
        st = _Stats(rows, 576, [64], mx.bfloat16)
        st.q = [mx.zeros((rows,))]
        fisher_scoring_np.score_affine([(w, st)], 64, grid(bits=(4,), group_sizes=(64,)), mx.bfloat16,
                                       lambda: None)
        assert len(jobs) >= 2 and sum(s[0] for s in jobs) == rows, (rows, jobs)

"""GPTQ's H-weighted clip search in NumPy (clip_search_np.py, on MLX's CPU backend) picks what the MLX kernel
picks, whatever the slicing of groups and rows over the thread pool."""

from __future__ import annotations

import numpy as np
import pytest


def _problem(rows: int, groups: int, gs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, groups * gs)) * np.linspace(0.2, 2.0, groups * gs)).astype(np.float32)
    x = rng.standard_normal((4 * gs, groups * gs)).astype(np.float32)
    x[:, ::7] *= 5                                            # uneven activation energy: H is not the identity
    return w, (x.T @ x).astype(np.float32)


@pytest.mark.parametrize("bits,dtype", [(3, "bfloat16"), (4, "float32")])
def test_numpy_search_picks_the_mlx_kernels_grid(engine, monkeypatch, bits, dtype):
    from temper.core.quant import clip_search_np, host_math, rounding

    w, h = _problem(rows=96, groups=6, gs=32)
    blocks = rounding.diag_blocks(h, 32)

    def run(ctx, on_host: bool, slice_elements: int):
        monkeypatch.setattr(host_math, "FORCE", on_host)
        monkeypatch.setattr(clip_search_np, "SLICE_ELEMENTS", slice_elements)
        return rounding.choose_params(w, blocks, bits, 32, dtype)

    mlx_s, mlx_b = engine.run(lambda ctx: run(ctx, False, 1 << 18))
    whole = engine.run(lambda ctx: run(ctx, True, 1 << 18))              # one slice
    by_groups = engine.run(lambda ctx: run(ctx, True, 2 * 96 * 32))      # 3 slices of 2 groups
    by_rows = engine.run(lambda ctx: run(ctx, True, 40 * 32))            # one group, 40 rows at a time
    for s, b in (whole, by_groups, by_rows):
        np.testing.assert_array_equal(s, whole[0])
        np.testing.assert_array_equal(b, whole[1])
    same = (whole[0] == mlx_s) & (whole[1] == mlx_b)
    assert same.mean() > 0.99                      # float32 ties of two shrinks' errors may go either way
    # and each choice is the best of the grid by the MLX error measure, to float32 rounding
    wg = w.reshape(96, 6, 32)
    err = [((d := s[..., None] * rounding.grid(wg, s, b, bits) + b[..., None] - wg)[..., None, :]
            @ blocks[None] @ d[..., None])[..., 0, 0] for s, b in ((whole[0], whole[1]), (mlx_s, mlx_b))]
    np.testing.assert_allclose(err[0], err[1], rtol=1e-4, atol=1e-6)
    assert not np.array_equal(whole[0], rounding.choose_params(w, None, bits, 32, dtype, shrinks=(1.0,))[0])

"""rounding.clip_rounded: the clip-searched round-to-nearest of a whole tensor, computed in row slices."""

from __future__ import annotations


def test_row_slices_give_the_whole_tensors_result(engine, monkeypatch) -> None:
    from temper.core.quant import rounding

    def run(ctx):
        import mlx.core as mx
        import numpy as np

        mx.random.seed(1)
        weight = (mx.random.normal((300, 128)) * mx.linspace(0.1, 3.0, 128)).astype(mx.bfloat16)
        w = np.array(weight.astype(mx.float32))
        s, b = rounding.choose_params(w, None, 3, 32, weight.dtype)
        whole = rounding.quantized_arrays(rounding.round_to_grid(w, s, b, 3, 32), s, b, 3, weight.dtype)
        monkeypatch.setattr(rounding, "ROWS_PER_SLICE", 64)             # 5 slices, the last one short
        sliced = rounding.clip_rounded(weight, 3, 32)
        same = [bool(mx.array_equal(x, y).item()) for x, y in zip(whole, sliced, strict=True)]
        deq = mx.dequantize(*sliced, group_size=32, bits=3)
        return same, [x.shape for x in sliced], float(mx.abs(deq - weight).mean().item())

    same, shapes, err = engine.run(run, timeout=60)
    assert same == [True, True, True], shapes
    assert shapes == [(300, 12), (300, 4), (300, 4)]
    assert 0 < err < 0.5

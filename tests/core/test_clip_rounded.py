"""rounding.clip_rounded: the clip-searched round-to-nearest of a whole tensor, computed in row slices."""

from __future__ import annotations


def test_row_slices_give_the_whole_tensors_result(engine, monkeypatch) -> None:
    from temper.core.quant import packing, rounding

    def run(ctx):
        import mlx.core as mx
        import numpy as np

        mx.random.seed(1)
        weight = (mx.random.normal((300, 128)) * mx.linspace(0.1, 3.0, 128)).astype(mx.bfloat16)
        w = np.array(weight.astype(mx.float32))
        s, b = rounding.choose_params(w, None, 3, 32, weight.dtype)
        whole = packing.quantized_arrays(rounding.round_to_grid(w, s, b, 3, 32), s, b, 3, weight.dtype)
        monkeypatch.setattr(rounding, "ROWS_PER_SLICE", 64)             # 5 slices, the last one short
        sliced = rounding.clip_rounded(weight, 3, 32)
        same = [bool(mx.array_equal(x, y).item()) for x, y in zip(whole, sliced, strict=True)]
        deq = mx.dequantize(*sliced, group_size=32, bits=3)
        return same, [x.shape for x in sliced], float(mx.abs(deq - weight).mean().item())

    same, shapes, err = engine.run(run, timeout=60)
    assert same == [True, True, True], shapes
    assert shapes == [(300, 12), (300, 4), (300, 4)]
    assert 0 < err < 0.5


def test_device_form_gives_the_numpy_forms_result(engine, monkeypatch) -> None:
    """clip_search_mx (the GPU form, run here on MLX's CPU device) picks the NumPy form's scales and biases and
    packs the same words, at every width (3, 5 and 6 bits straddle the uint32 words), in row slices."""
    from temper.core.quant import clip_search_mx, packing, rounding

    monkeypatch.setattr(clip_search_mx, "ROWS_PER_SLICE", 96)          # 3 slices of 200 rows, the last short

    def run(ctx):
        import mlx.core as mx
        import numpy as np

        mx.random.seed(2)
        weight = (mx.random.normal((200, 256)) * mx.linspace(0.1, 3.0, 256)).astype(mx.bfloat16)
        w = np.array(weight.astype(mx.float32))
        out = {}
        for bits, gs in ((2, 64), (3, 32), (4, 64), (5, 32), (6, 64), (8, 128)):
            s, b = rounding.choose_params(w, None, bits, gs, weight.dtype)
            ref = packing.quantized_arrays(rounding.round_to_grid(w, s, b, bits, gs), s, b, bits, weight.dtype)
            got = clip_search_mx.clip_rounded(weight, bits, gs)
            out[bits] = [float(mx.mean(x == y).item()) for x, y in zip(ref, got, strict=True)]
        return out

    for bits, same in engine.run(run, timeout=120).items():
        assert min(same) > 0.998, (bits, same)           # a float32 tie between two shrinks may go either way


def test_gpu_backends_take_the_device_form(monkeypatch) -> None:
    """Where the NumPy forms are off (MLX on a GPU: host_math.active() is False), clip_rounded is the device form."""
    from temper.core.quant import clip_search_mx, host_math, rounding

    calls = []
    monkeypatch.setattr(clip_search_mx, "clip_rounded", lambda *a: calls.append(a) or ("w", "s", "b"))
    monkeypatch.setattr(host_math, "FORCE", False)
    assert rounding.clip_rounded("weight", 4, 64) == ("w", "s", "b") and calls == [("weight", 4, 64)]

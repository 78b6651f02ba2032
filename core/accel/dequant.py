"""Dequantize a large packed tensor a slice of rows at a time.

`mx.dequantize` on MLX's CPU backend holds ~34 bytes of temporaries per weight (measured, MLX 0.32: a
262,144 x 640 embedding at 6 bits peaked at 5.7 GB for a 0.67 GB fp32 result), so one call on a
large-vocabulary head or embedding multiplies the memory a load or an import needs. In slices the extra is
one slice's temporaries plus the result's parts before they are joined.
"""

from __future__ import annotations

from typing import Any

SLICE_ELEMENTS = 1 << 22   # weights dequantized per slice (16 MB in fp32; ~140 MB of temporaries on a CPU)


def dequantize_rows(weight: Any, scales: Any, biases: Any, *, group_size: int, bits: int, mode: str = "affine",
                    dtype: Any = None) -> Any:
    """mx.dequantize(weight, scales, biases, ...) cast to `dtype` (None: as dequantized), the same values,
    computed SLICE_ELEMENTS weights at a time along the rows (the first axis of 2-D weights; experts of
    3-D ones are sliced the same way) and evaluated slice by slice."""
    import mlx.core as mx

    rows = weight.shape[0]
    cols = weight.shape[-1] * 32 // bits
    per_row = cols * (1 if weight.ndim == 2 else int(weight.shape[1]))
    step = max(1, SLICE_ELEMENTS // max(per_row, 1))

    def one(part: slice) -> Any:
        out = mx.dequantize(weight[part], scales[part], None if biases is None else biases[part],
                            group_size=group_size, bits=bits, mode=mode)
        return out if dtype is None else out.astype(dtype)

    if rows <= step:
        return one(slice(0, rows))
    parts = []
    for start in range(0, rows, step):
        parts.append(one(slice(start, min(start + step, rows))))
        mx.eval(parts[-1])
    return mx.concatenate(parts, axis=0)

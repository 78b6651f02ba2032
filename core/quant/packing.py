"""MLX's packed layout of affine-quantized integers, as `mx.quantize` writes it and `mx.dequantize` reads it.

Per row, the integers of `bits` bits each form one little-endian bit stream (bit j of integer i is stream bit
i·bits + j) cut into uint32 words, so widths that do not divide 32 (3, 5, 6) straddle words. `pack` builds it
in NumPy (GPTQ's integers come from the host), `pack_mx` on the device (clip_search_mx.py), and
`quantized_arrays` gives the (weight, scales, biases) triple a QuantizedLinear or QuantizedEmbedding holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pack(q: Any, bits: int) -> Any:
    """Integers (rows, cols) → uint32 words (rows, cols·bits/32), laid out as mx.quantize lays them."""
    import mlx.core as mx

    q_np = np.asarray(q).astype(np.uint8 if bits <= 8 else np.uint16)
    rows, cols = q_np.shape
    out = np.empty((rows, cols * bits // 32), dtype=np.uint32)
    step = max(1, (64 << 20) // max(cols * bits, 1))
    for r in range(0, rows, step):
        part = q_np[r:r + step]
        bitplanes = (part[..., None] >> np.arange(bits, dtype=part.dtype)) & 1
        packed = np.packbits(bitplanes.reshape(part.shape[0], -1).astype(np.uint8), axis=-1, bitorder="little")
        out[r:r + step] = packed.view("<u4")
    return mx.array(out)


def pack_mx(q: Any, bits: int) -> Any:
    """`pack` on the device, for MLX integers (rows, cols): bit j of integer i is bit i·bits + j of the
    row's little-endian stream, as mx.quantize lays them out."""
    import mlx.core as mx

    rows, cols = q.shape
    q = q.astype(mx.uint32)
    planes = (q[..., None] >> mx.arange(bits, dtype=mx.uint32)) & 1                  # (rows, cols, bits)
    stream = planes.reshape(rows, cols * bits // 32, 32)
    return (stream << mx.arange(32, dtype=mx.uint32)).sum(-1).astype(mx.uint32)


def quantized_arrays(q: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int,
                     dtype: Any) -> tuple[Any, Any, Any]:
    """The (weight, scales, biases) triple MLX's QuantizedLinear / QuantizedEmbedding hold."""
    import mlx.core as mx

    return (pack(q, bits), mx.array(np.asarray(scales, dtype=np.float32)).astype(dtype),
            mx.array(np.asarray(biases, dtype=np.float32)).astype(dtype))


PACK_ROWS = 4096             # rows packed at once on the device: the bit planes are 4·bits bytes a weight


def device_arrays(q: Any, scales: Any, biases: Any, bits: int, dtype: Any) -> tuple[Any, Any, Any]:
    """`quantized_arrays` for MLX integers, scales and biases: packed on the device in row slices."""
    import mlx.core as mx

    packed = []
    for r in range(0, q.shape[0], PACK_ROWS):
        packed.append(pack_mx(q[r:r + PACK_ROWS], bits))
        mx.eval(packed[-1])                 # one slice's bit planes at a time
    return (packed[0] if len(packed) == 1 else mx.concatenate(packed)), scales.astype(dtype), biases.astype(dtype)

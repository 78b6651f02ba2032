"""Quantized layers that keep their packed weights for decode and run prefill through the fast BLAS.

On MLX's CPU backend a quantized matrix-vector product (one token: decode) reads the packed 4-bit weights
and is as fast as an fp32 one while reading 1/8 of the bytes; a quantized matrix-matrix product (many
tokens: prefill) has no BLAS path and runs ~10x slower than fp32 BLAS (docs/benchmarks/cpu_speed.md).
`PrefillDequantizedLinear` picks per call: fewer than `PREFILL_ROWS` input rows go through the quantized
kernel; more dequantize that one layer's weights to the compute dtype and multiply with BLAS. The
dequantized copy lives only while its product is computed, so memory stays that of the quantized model
(plus one layer), unlike a full fp32 copy (4-8x the quantized size). The numbers are the same up to
float rounding: `mx.dequantize` gives exactly the weights the quantized kernel uses.

MLX calls: run on the engine thread.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

PREFILL_ROWS = 8  # rows (tokens x batch) from which dequantize + BLAS beats the quantized kernel
SLICE_ELEMENTS = 1 << 16  # weights dequantized at a time (256 KiB in fp32)


class PrefillDequantizedLinear(nn.QuantizedLinear):
    def __call__(self, x: mx.array) -> mx.array:
        if x.size < PREFILL_ROWS * x.shape[-1]:
            return super().__call__(x)
        # A slice of rows at a time, each made only once the previous slice's product exists (mx.depends):
        # MLX's scheduler cannot then dequantize many layers ahead and hold them all, and the extra memory
        # is one slice. Measured on SmolLM2-135M 4-bit, 40-token prompt, peak MB: quantized kernel 128.4;
        # whole layers ~210; slices of 4M / 1M / 64K elements 147.9 / 133.5 / 128.9
        rows = self["weight"].shape[0]
        step = max(1, SLICE_ELEMENTS // max(x.shape[-1], 1))
        outs, after = [], x
        biases = self.get("biases")
        for start in range(0, rows, step):
            part = slice(start, min(start + step, rows))
            weight = mx.dequantize(mx.depends(self["weight"][part], after), scales=self["scales"][part],
                                   biases=None if biases is None else biases[part],
                                   group_size=self.group_size, bits=self.bits, mode=self.mode)
            after = x @ weight.T
            outs.append(after)
        out = outs[0] if len(outs) == 1 else mx.concatenate(outs, axis=-1)
        if "bias" in self:
            out = out + self["bias"]
        return out


def keep_packed(model: Any) -> int:
    """Make every plain `nn.QuantizedLinear` of `model` a `PrefillDequantizedLinear` (same parameters, no
    copy); return how many. Subclasses (other quantized layer types) are left as they are."""
    count = 0
    for _, module in model.named_modules():
        if type(module) is nn.QuantizedLinear:
            module.__class__ = PrefillDequantizedLinear
            count += 1
    return count

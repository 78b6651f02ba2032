"""Fake quantization: quantize -> dequantize a weight, so quality passes run on fast fp32 kernels.

A sensitivity pass (ΔKL of logits per tensor and candidate) or a quality evaluation needs the model's
output *as if* some tensors were quantized. Running MLX's quantized kernels for that is slow on CPUs
(~3.5 GFLOP/s here, no BLAS path) while fp32 products with a fast BLAS run at 100+ GFLOP/s. The fake
-quantized weight holds exactly the values the quantized kernel would use (`mx.dequantize` of the same
`mx.quantize` output), so the outputs agree up to float rounding of the activations.

Typical use (on the engine thread):

    from temper.core.quant.fakequant import fake_quantize, fake_quantized
    w_hat = fake_quantize(layer.weight, Candidate(4, 64))          # same shape, fp32
    with fake_quantized(model, {"model.layers.3.mlp.down_proj": Candidate(3, 64)}):
        logits = model(tokens)                                      # that one layer as if quantized
    # the original weights are back here

The model should be in fp32 first for speed (`temper.core.accel.compute.maybe_upcast(model, "fp32")`, or
load with compute="fp32"); the functions work on any dtype.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import QuantError
from .candidates import Candidate


def fake_quantize(weight: Any, candidate: Candidate, storage: Any = None, *, dtype: Any = None) -> Any:
    """`weight` quantized with `candidate` and dequantized again, as an array of `weight`'s shape. The one
    fake-quantization function of the project (tensors.py re-exports it).

    - Quantization happens in `storage` (default: `weight`'s own dtype), as mlx-lm does when it writes a
      model: a bf16 weight gets bf16 scales and biases, so the values equal those of a real quantized bf16
      model; pass the stored dtype when `weight` was upcast for computing.
    - The result is cast to `dtype` (default float32, the fast path on CPUs; pass `weight.dtype` to keep it).
    - Raises QuantError when the last dimension does not split into the candidate's groups
      (`candidate.fits(shape)` tells beforehand).
    Lazy like any MLX op: `mx.eval` it (or the forward pass that uses it)."""
    import mlx.core as mx

    shape = tuple(weight.shape)
    if not candidate.fits(shape):
        raise QuantError(f"{candidate.key} cannot quantize a weight of shape {shape}: "
                         f"its last dimension is not a multiple of {candidate.group_size}")
    mode = candidate.mode
    if storage is not None:
        weight = weight.astype(storage)
    packed = mx.quantize(weight, group_size=candidate.group_size, bits=candidate.bits, mode=mode)
    w, scales = packed[0], packed[1]
    biases = packed[2] if len(packed) > 2 and mode == "affine" else None
    out = mx.dequantize(w, scales, biases, group_size=candidate.group_size, bits=candidate.bits, mode=mode,
                        dtype=weight.dtype)
    return out.astype(mx.float32 if dtype is None else dtype)


@contextmanager
def fake_quantized(model: Any, assignment: Mapping[str, Candidate]) -> Iterator[None]:
    """Temporarily give the modules named in `assignment` fake-quantized weights (in the model's dtype).

    Keys are module paths as `model.named_modules()` names them ("model.layers.0.self_attn.q_proj");
    each module must have a `weight` (Linear, Embedding). Weights are restored on exit, even on error."""
    modules = dict(model.named_modules())
    missing = [name for name in assignment if name not in modules or "weight" not in modules[name]]
    if missing:
        raise QuantError(f"no weight to fake-quantize at {missing[0]}")
    saved = {name: modules[name].weight for name in assignment}
    try:
        for name, candidate in assignment.items():
            weight = saved[name]
            modules[name].weight = fake_quantize(weight, candidate, dtype=weight.dtype)
        yield
    finally:
        for name, weight in saved.items():
            modules[name].weight = weight

"""Evals on a CPU-only MLX compute in float32, with each quantized layer's own weights dequantized.

On MLX's CPU backend bf16 matmuls run ~14x slower than float32 ones (which go to BLAS), and quantized
matmuls with bf16 scales ~260x slower (measured on SmolLM2-135M, docs/benchmarks/capability.md). The
weights a quantized model computes with are exactly dequantize(q, scales, biases), so the eval keeps them
bit for bit and only the activations are float32 instead of the model's bf16: the float base is run the
same way, so the comparison is like for like. With float32 scales the figures match the quantized
kernels up to summation order (tests/core/test_evals_run.py). On Metal and CUDA the real kernels run.
"""

from __future__ import annotations

from typing import Any


def cpu_only() -> bool:
    import mlx.core as mx

    return mx.default_device() == mx.cpu or not (mx.metal.is_available() or _cuda())


def _cuda() -> bool:
    import mlx.core as mx

    return bool(getattr(mx, "cuda", None) and mx.cuda.is_available())


def dequantize_layers(model: Any) -> int:
    """Swap every QuantizedLinear/QuantizedEmbedding of `model` for a Linear/Embedding holding its
    dequantized weights (in its scales' dtype). Returns how many layers were swapped."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_unflatten

    swaps = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            continue
        w = mx.dequantize(m.weight, m.scales, m.get("biases"), group_size=m.group_size, bits=m.bits,
                          mode=m.mode)          # the dtype of its scales, as the kernel computes
        if isinstance(m, nn.QuantizedEmbedding):
            new: Any = nn.Embedding(w.shape[0], w.shape[1])
        else:
            new = nn.Linear(w.shape[1], w.shape[0], bias="bias" in m)
            if "bias" in m:
                new.bias = m.bias
        new.weight = w
        swaps.append((name, new))
    if swaps:
        model.update_modules(tree_unflatten(swaps))
        mx.eval(model.parameters())
    return len(swaps)


def float32_for_cpu(model: Any) -> str:
    """On a CPU-only MLX: dequantize the quantized layers and cast every parameter to float32. Returns
    what the eval computes in ("float32" or "native"), which is part of the results' cache key."""
    import mlx.core as mx
    from mlx.utils import tree_map

    if not cpu_only():
        return "native"
    dequantize_layers(model)
    model.update(tree_map(lambda p: p.astype(mx.float32) if mx.issubdtype(p.dtype, mx.floating) else p,
                          model.parameters()))
    mx.eval(model.parameters())
    return "float32"


def compute_mode() -> str:
    return "float32" if cpu_only() else "native"

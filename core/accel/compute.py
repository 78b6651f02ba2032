"""Where to compute on MLX's CPU backend: in the model's own dtype ("native") or in fp32 ("fp32").

On Linux CPUs with a fast BLAS (see blas.py), MLX's fp32 matrix products are ~25x faster than its bf16,
fp16 and quantized kernels, which have no BLAS path (measured in docs/benchmarks/cpu_speed.md). So a
bf16/fp16 model, or a quantized one dequantized at load, runs much faster in fp32 — if its fp32 copy fits
in memory. The numbers are the same up to float rounding: bf16 -> fp32 is exact, and dequantizing gives
exactly the weights the quantized kernels use.

Never on Metal or CUDA (their native kernels are the fast path), and not with the reference BLAS (where
fp32 is no faster). The setting `cpu_compute` ("auto" | "native" | "fp32" | "mixed") picks per load:
`load(..., compute=...)`; "auto" also reads `TEMPER_CPU_COMPUTE` so a user (or a profile) can override it.

A quantized model is not dequantized by "auto": "mixed" keeps its packed weights (decode reads them with the
quantized kernel, as fast as fp32 BLAS for one token and with 1/8 of the bytes), casts its scales, biases and
float weights to fp32 (bf16-scaled quantized kernels are the slow ones), and lets each quantized layer
dequantize itself for prefill only (accel/prefill.py). Decode speed and memory then match bare mlx-lm on
the same folder while prefill keeps the BLAS speed (docs/benchmarks/chat_speed.md).

MLX calls: run on the engine thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import TemperError

MODES = ("auto", "native", "fp32", "mixed")
ENV_SETTING = "TEMPER_CPU_COMPUTE"
FP32_MEMORY_FRACTION = 0.5  # "auto" upcasts only when the fp32 weights take at most this share of free memory


@dataclass(frozen=True)
class ComputePlan:
    """What `maybe_upcast` decided for one model, and why (shown in the Performance tab and bench output)."""

    mode: str  # "native", "fp32" or "mixed" (quantized weights kept, fp32 scales, prefill dequantized)
    reason: str  # one line
    native_bytes: int  # weights as loaded
    fp32_bytes: int  # weights once in fp32 (dequantized where quantized)
    quantized: bool  # the model as loaded had quantized layers (dequantized when mode == "fp32")


def prefer_fp32(model_bytes: int, free_memory: int, *, fraction: float = FP32_MEMORY_FRACTION) -> bool:
    """Whether weights of `model_bytes` once in fp32 fit comfortably in `free_memory` (both in bytes).

    Half of what is free by default: activations, the KV cache, the OS and the UI need the rest."""
    return model_bytes > 0 and model_bytes <= fraction * free_memory


def free_memory() -> int:
    """Bytes available to this process now (psutil's `available`)."""
    import psutil

    return int(psutil.virtual_memory().available)


def on_cpu_backend() -> bool:
    """Whether MLX computes on the CPU here (not Metal, not CUDA)."""
    import mlx.core as mx

    return mx.default_device().type == mx.DeviceType.cpu


def fast_blas() -> bool:
    from .blas import blas_status

    return blas_status().fast


def weight_bytes(model: Any) -> tuple[int, int, bool]:
    """(bytes as loaded, bytes in fp32, has quantized layers) for an mlx.nn model's parameters."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    native = fp32 = 0
    quantized = False
    skip: set[str] = set()
    for name, module in model.named_modules():
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)) or (
            hasattr(module, "scales") and hasattr(module, "bits") and hasattr(module, "group_size")
        ):
            quantized = True
            prefix = f"{name}." if name else ""
            rows, packed = module.weight.shape[-2:]
            count = 1
            for dim in module.weight.shape[:-2]:
                count *= dim
            fp32 += count * rows * (packed * 32 // module.bits) * 4
            for key in ("weight", "scales", "biases"):
                if key in module:
                    native += module[key].nbytes
                    skip.add(prefix + key)
    for name, value in tree_flatten(model.parameters()):
        if name in skip:
            continue
        native += value.nbytes
        fp32 += value.size * 4 if mx.issubdtype(value.dtype, mx.floating) else value.nbytes
    return native, fp32, quantized


def plan(model: Any, setting: str = "auto", *, memory: int | None = None,
         cpu: bool | None = None, fast: bool | None = None) -> ComputePlan:
    """Decide native vs fp32 for `model` (nothing is changed). `memory`, `cpu` and `fast` default to this
    machine (free memory, MLX's default device, the BLAS in use); tests pass them."""
    if setting == "auto":
        setting = os.environ.get(ENV_SETTING) or "auto"
    if setting not in MODES:
        raise TemperError(f"cpu_compute must be one of {', '.join(MODES)}, not {setting!r}")
    native, fp32, quantized = weight_bytes(model)
    dtypes = _float_dtypes(model)

    def result(mode: str, reason: str) -> ComputePlan:
        return ComputePlan(mode, reason, native, fp32, quantized)

    if not quantized and dtypes <= {"float32"}:
        return result("native", "already fp32")
    if not (on_cpu_backend() if cpu is None else cpu):
        return result("native", "GPU backend: its native kernels are the fast path")
    if setting == "native":
        return result("native", "cpu_compute = native")
    if setting == "fp32":
        return result("fp32", "cpu_compute = fp32")
    if setting == "mixed" and quantized:
        return result("mixed", "cpu_compute = mixed")
    if not (fast_blas() if fast is None else fast):
        return result("native", "no fast BLAS: fp32 would not be faster")
    if quantized:
        return result("mixed", "quantized weights kept for decode; prefill dequantizes layer by layer to fp32 "
                               "(fast BLAS)")
    memory = free_memory() if memory is None else memory
    if not prefer_fp32(fp32, memory):
        return result("native", f"fp32 weights ({fp32 / 2**30:.1f} GiB) would not fit in half of the "
                                f"{memory / 2**30:.1f} GiB free")
    what = "dequantized to fp32" if quantized else "upcast to fp32"
    return result("fp32", f"{what}: CPU backend with a fast BLAS, {fp32 / 2**30:.2f} GiB fits")


def maybe_upcast(model: Any, policy: str = "auto", **plan_args: Any) -> ComputePlan:
    """Apply `plan(model, policy)` in place: dequantize quantized layers ("fp32") or let them dequantize for
    prefill only ("mixed"), and cast floating weights (scales and biases included) to fp32.

    Returns the plan (mode "native": the model was left as it was). Call on the engine thread, right after
    loading; the model keeps its config (a quantized model's config still says how it is stored)."""
    decided = plan(model, policy, **plan_args)
    if decided.mode == "native":
        return decided
    import mlx.core as mx

    if decided.mode == "mixed":
        from .prefill import keep_packed

        keep_packed(model)
    to_fp32_in_steps(model, dequantize=decided.mode == "fp32" and decided.quantized)
    mx.eval(model.parameters())
    return decided


def to_fp32_in_steps(model: Any, *, dequantize: bool) -> None:
    """Dequantize (when asked) and cast the floating weights to fp32 one module at a time, each evaluated
    before the next, so the peak is the fp32 model plus one module, not the old and the new model at once
    (dequantizing a 262k-vocabulary model in one graph took 6.3 GB of RSS for a 1.7 GB result)."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten

    if dequantize:
        sized = [(module.weight.size, name) for name, module in model.named_modules()
                 if _dequantized_type(module) is not None]
        names = [name for _, name in sorted(sized, reverse=True)]   # largest first: joined while little is fp32
        for name in names:
            new = _dequantize(_submodule(model, name))
            mx.eval(new.parameters())
            model.update_modules(tree_unflatten([(name, new)]))
    for _, module in model.named_modules():
        own = [k for k, v in module.items() if isinstance(v, mx.array) and not k.startswith("_")
               and mx.issubdtype(v.dtype, mx.floating) and v.dtype != mx.float32]
        for k in own:
            module[k] = module[k].astype(mx.float32)
        if own:
            mx.eval([module[k] for k in own])
    if not _float_dtypes(model) <= {"float32"}:      # arrays held in lists or dicts: what set_dtype covers
        model.set_dtype(mx.float32)


def _dequantized_type(module: Any) -> Any:
    """The float module class a quantized one becomes, or None (not quantized)."""
    import mlx.nn as nn
    from mlx_lm.models.switch_layers import QuantizedSwitchLinear, SwitchLinear

    if isinstance(module, nn.QuantizedLinear):
        return nn.Linear
    if isinstance(module, nn.QuantizedEmbedding):
        return nn.Embedding
    if isinstance(module, QuantizedSwitchLinear):
        return SwitchLinear
    return None


def _dequantize(module: Any) -> Any:
    """An fp32 float twin of one quantized module (the weights it computes with, exactly)."""
    import mlx.core as mx
    import mlx.nn as nn

    from .dequant import dequantize_rows

    cls = _dequantized_type(module)
    weight = dequantize_rows(module.weight, module.scales, module.get("biases"), group_size=module.group_size,
                             bits=module.bits, mode=getattr(module, "mode", "affine"), dtype=mx.float32)
    has_bias = "bias" in module
    new = cls(*weight.shape[::-1]) if cls is nn.Embedding else cls(*weight.shape[::-1], bias=has_bias)
    new.weight = weight
    if has_bias:
        new.bias = module.bias.astype(mx.float32)
    return new


def _submodule(model: Any, name: str) -> Any:
    node = model
    for part in name.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _float_dtypes(model: Any) -> set[str]:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    return {str(v.dtype).removeprefix("mlx.core.") for _, v in tree_flatten(model.parameters())
            if mx.issubdtype(v.dtype, mx.floating)}

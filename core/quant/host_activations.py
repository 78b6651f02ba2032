"""The model's SiLU and attention softmax in NumPy during temper's own passes, for MLX on a CPU.

MLX's CPU backend computes exp with scalar code (~15 ns an element against NumPy's ~0.5: docs/benchmarks/
mlx_cpu_kernels.py), and a transformer's forward pass has two element-wise exps per layer that no BLAS
takes: the MLP's SiLU (tokens × intermediate) and the attention's softmax (heads × tokens × keys). In a
SmolLM2-135M pass over 256 tokens they cost more than the pass's matrix products. `swapped()` stands two
stand-ins in for `mlx.nn.silu` and `mx.fast.scaled_dot_product_attention` while a pass runs:

- `silu`: x·σ(x) computed in NumPy (and mlx-lm's compiled `swiglu`, which would keep MLX's silu); its
  gradient σ(x)·(1 + x·(1 - σ(x))) too (custom vjp).
- `attention`: MLX's own CPU fallback (scores = (q·scale) kᵀ by the BLAS, the mask, softmax, · v), with the
  softmax's exp in NumPy. Its gradient needs no exp: p·(g - Σ p·g), in MLX from the kept output.

Used by the forward-only passes: the reference and held-out evaluation forwards (reference.forward) and GPTQ's
block passes (gptq.py): 1.31 -> 0.98 s for a SmolLM2-135M forward over 256 tokens (one BLAS thread, load 2.5).
Not by the Fisher pass: an array evaluated inside mx.grad keeps its graph, so every intermediate of the forward
up to the last stand-in stays alive, and SmolLM2's quantize peaked at 2.95 GB of RSS instead of 2.07.

Values are MLX's up to float32 rounding (NumPy's exp is within an ulp of the C library's; the sums run in the
same float32). Anything else passes through to the originals unchanged: other dtypes than float32 and
float16/bfloat16 inputs run through float32 and are cast back; attention sinks go to MLX's own kernel. On
Metal and CUDA nothing is swapped (`host_math.active()`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .host_math import host


def _np_silu(a: np.ndarray) -> np.ndarray:
    out = np.negative(a)
    np.exp(out, out=out)
    out += np.float32(1)
    np.divide(a, out, out=out)
    return out


def _np_sigmoid(a: np.ndarray) -> np.ndarray:
    out = np.negative(a)
    np.exp(out, out=out)
    out += np.float32(1)
    np.reciprocal(out, out=out)
    return out


def _host(a: Any) -> np.ndarray | None:
    """`host(a)`, or None inside a trace that cannot evaluate (an mx.compile'd function calling nn.silu): the
    caller then computes in MLX, as the original would."""
    try:
        return host(a)
    except ValueError:
        return None


def _silu_fn() -> Any:
    import mlx.core as mx

    @mx.custom_function
    def silu(x: Any) -> Any:
        a = _host(x)
        return x * mx.sigmoid(x) if a is None else mx.array(_np_silu(a))

    @silu.vjp
    def silu_vjp(primals: Any, cotangent: Any, output: Any) -> Any:
        x = primals[0] if isinstance(primals, (list, tuple)) else primals
        c = cotangent[0] if isinstance(cotangent, (list, tuple)) else cotangent
        a, g = _host(x), _host(c)
        if a is None or g is None:
            s = mx.sigmoid(x)
            return (c * s * (1 + x * (1 - s)),)
        s = _np_sigmoid(a)
        d = np.float32(1) - s             # σ'·x + σ = σ(1 + x(1 - σ))
        d *= a
        d += np.float32(1)
        d *= s
        d *= g
        return (mx.array(d),)

    return silu


def _softmax_fn() -> Any:
    import mlx.core as mx

    @mx.custom_function
    def softmax(scores: Any) -> Any:
        a = _host(scores)
        if a is None:
            return mx.softmax(scores, axis=-1, precise=True)
        m = a.max(axis=-1, keepdims=True)
        m[~np.isfinite(m)] = 0             # a fully masked row: zeros, not NaN... as -inf - -inf would give
        e = np.subtract(a, m)
        np.exp(e, out=e)
        e /= e.sum(axis=-1, keepdims=True)
        return mx.array(e)

    @softmax.vjp
    def softmax_vjp(primals: Any, cotangent: Any, output: Any) -> Any:
        p = output[0] if isinstance(output, (list, tuple)) else output
        g = cotangent[0] if isinstance(cotangent, (list, tuple)) else cotangent
        return (p * (g - (p * g).sum(axis=-1, keepdims=True)),)

    return softmax


_FNS: dict[str, Any] = {}


def silu(x: Any) -> Any:
    """x·σ(x) with the exp in NumPy (forward and gradient)."""
    import mlx.core as mx

    if "silu" not in _FNS:
        _FNS["silu"] = _silu_fn()
    if x.dtype == mx.float32:
        return _FNS["silu"](x)
    return _FNS["silu"](x.astype(mx.float32)).astype(x.dtype)


def swiglu(gate: Any, x: Any) -> Any:
    """mlx-lm's `swiglu` (silu(gate) · x, an mx.compile'd function there) with `silu`."""
    return silu(gate) * x


def softmax(scores: Any) -> Any:
    """Softmax over the last axis of float32 scores, the exp in NumPy (its gradient in MLX, exp-free)."""
    if "softmax" not in _FNS:
        _FNS["softmax"] = _softmax_fn()
    return _FNS["softmax"](scores)


def attention(original: Any) -> Any:
    """A stand-in for mx.fast.scaled_dot_product_attention that computes what MLX's CPU fallback computes,
    the softmax by `softmax`."""
    import mlx.core as mx

    def sdpa(q: Any, k: Any, v: Any, *, scale: float, mask: Any = None, sinks: Any = None, **kw: Any) -> Any:
        if sinks is not None or kw or q.ndim != 4 or (isinstance(mask, str) and mask != "causal"):
            return original(q, k, v, scale=scale, mask=mask, sinks=sinks, **kw)
        dtype = q.dtype
        b, hq, length, dim = q.shape
        hk, keys = k.shape[1], k.shape[2]
        rep = hq // hk
        q = (q.astype(mx.float32) * scale).reshape(b, hk, rep, length, dim)
        k, v = k.astype(mx.float32)[:, :, None], v.astype(mx.float32)[:, :, None]
        scores = q @ k.swapaxes(-1, -2)                          # (b, hk, rep, L, S)
        if isinstance(mask, str):                                # "causal": query i sees keys up to i + S - L
            mask = mx.arange(keys)[None] <= (mx.arange(length) + (keys - length))[:, None]
        if mask is not None:
            if mask.ndim == 4:                                   # (b | 1, hq | 1, L, S)
                mask = mask[:, :, None] if mask.shape[1] == 1 else mask.reshape(mask.shape[0], hk, rep, length, keys)
            if mask.dtype == mx.bool_:
                scores = mx.where(mask, scores, mx.array(-np.inf, dtype=mx.float32))
            else:
                scores = scores + mask.astype(mx.float32)
        out = softmax(scores) @ v                                # (b, hk, rep, L, D)
        return out.reshape(b, hq, length, dim).astype(dtype)

    return sdpa


_ACTIVE: list[bool] = []      # nesting depth of swapped(): the outermost one swaps and restores


@contextlib.contextmanager
def swapped(on: bool | None = None) -> Iterator[None]:
    """While inside: mlx.nn.silu and mx.fast.scaled_dot_product_attention are the NumPy stand-ins (`on`:
    default `host_math.active()`, i.e. on MLX's CPU backend). Models look both up at call time (mlx-lm's
    `swiglu` calls `nn.silu`, its attention `mx.fast.scaled_dot_product_attention`), and the stand-ins
    compute eagerly, so wrapping the model's call is enough. Re-entrant; call on the engine thread."""
    import mlx.core as mx
    import mlx.nn as nn

    from .host_math import active

    if not (active() if on is None else on) or _ACTIVE:
        yield
        return
    saved_silu, saved_sdpa = nn.silu, mx.fast.scaled_dot_product_attention
    modules = _swiglu_users()
    nn.silu = silu
    mx.fast.scaled_dot_product_attention = attention(saved_sdpa)
    for m in modules:
        m.swiglu = swiglu
    _ACTIVE.append(True)
    try:
        yield
    finally:
        _ACTIVE.pop()
        nn.silu = saved_silu
        mx.fast.scaled_dot_product_attention = saved_sdpa
        for m in modules:
            m.swiglu = modules[m]


def _swiglu_users() -> dict[Any, Any]:
    """mlx-lm's model modules (imported so far) holding its compiled `swiglu` under that name, with it: a
    compiled function keeps the silu it was first traced with, so the name itself is swapped (not in
    `activations`: a model module first imported during a pass keeps the original)."""
    import sys

    original = getattr(sys.modules.get("mlx_lm.models.activations"), "swiglu", None)
    if original is None:
        return {}
    return {m: original for name, m in list(sys.modules.items())
            if name.startswith("mlx_lm.models.") and name != "mlx_lm.models.activations"
            and getattr(m, "swiglu", None) is original}

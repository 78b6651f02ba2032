"""How many sequences may decode together: the eval batch capped by memory.

Each row of a batch holds a KV cache of its own tokens: (longest prompt part it stores + the generation
cap) tokens, rounded up to mlx-lm's 256-token allocation step, times the model's KV bytes per token.
While rows join or leave, the batch cache is rebuilt next to the old one (a merge, extend or filter:
COPIES), so the rule is

    model + shared prefix + rows x row bytes x COPIES  <=  MEMORY_FRACTION x memory

with `memory` the bytes this process may use: what is free now (host memory on a CPU, the device's own
memory on a GPU) plus the loaded model's own bytes. A big
model on a small machine gets fewer rows (at least 1) instead of running out of memory; the demo model
on this machine keeps the per-task batch (run.BATCH). Pure arithmetic here; `kv_bytes_per_token` and
`available` measure the model and the machine on the engine thread.
"""

from __future__ import annotations

from typing import Any

MEMORY_FRACTION = 0.8      # of (free + model): the OS, Python and activations need the rest
COPIES = 2                 # old and new batch cache side by side while one is rebuilt
KV_STEP = 256              # mlx-lm's KV caches grow in steps of this many tokens


def row_bytes(tokens: int, kv_per_token: int) -> int:
    """One row's KV cache for `tokens` tokens, as allocated (a whole number of KV_STEP blocks)."""
    blocks = -(-max(1, tokens) // KV_STEP)
    return blocks * KV_STEP * kv_per_token


def max_rows(*, memory: int, model_bytes: int, row: int, shared: int = 0,
             fraction: float = MEMORY_FRACTION) -> int:
    """The most rows whose caches fit beside the model and the shared prefix (at least 1: one row must
    run; if even that does not fit, the caller finds out the usual way)."""
    room = fraction * memory - model_bytes - shared
    if row <= 0:
        raise ValueError("a row's KV bytes must be positive")
    return max(1, int(room // (row * COPIES)))


def cap(batch: int, *, memory: int, model_bytes: int, tokens: int, kv_per_token: int, shared_tokens: int = 0) -> int:
    """`batch`, or fewer rows where their KV caches would not fit (the rule above)."""
    if kv_per_token <= 0:
        return max(1, batch)
    fit = max_rows(memory=memory, model_bytes=model_bytes, row=row_bytes(tokens, kv_per_token),
                   shared=shared_tokens * kv_per_token)
    return max(1, min(batch, fit))


def kv_bytes_per_token(model: Any) -> int:
    """Bytes one token adds to the model's KV cache (every layer, keys and values, in the dtype the model
    computes in). Read from the shapes of a one-token cache: the forward is built lazily and never run."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    try:
        cache = make_prompt_cache(model)
        model(mx.array([[0]]), cache=cache)
    except Exception:       # a model this cannot probe (no token input, an exotic cache): no cap
        return 0
    total = 0
    for c in cache:
        for a in (getattr(c, "keys", None), getattr(c, "values", None)):
            if a is not None and getattr(a, "ndim", 0) == 4 and a.shape[2]:
                total += a.nbytes // a.shape[2]
    return total


def budget(*, host_free: int, model_bytes: int, device_size: int = 0, device_active: int = 0) -> int:
    """The memory the batch and the model share. On the CPU (device_size 0): free host memory plus the
    model (already loaded, so out of `host_free`). On a GPU with its own memory (MLX's device_info
    memory_size): that device's size less what MLX holds there now, plus the model (part of that)."""
    if device_size > 0:
        return max(0, device_size - device_active) + model_bytes
    return host_free + model_bytes


def available(model: Any) -> tuple[int, int]:
    """(memory this process may use for the model and the batch, the model's bytes), measured now."""
    import mlx.core as mx

    from ..accel.compute import free_memory, on_cpu_backend, weight_bytes

    model_bytes = weight_bytes(model)[0]
    size = active = 0
    if not on_cpu_backend():
        info = mx.device_info() if hasattr(mx, "device_info") else {}
        size = int(info.get("memory_size", 0) or 0)
        active = int(mx.get_active_memory()) if size else 0
    return budget(host_free=free_memory(), model_bytes=model_bytes, device_size=size, device_active=active), model_bytes

"""Build a model's KV cache with per-layer bits, room to roll back drafted tokens, and KV-shared layers.

`build_cache(model, plan, extra)` starts from the caches mlx-lm builds (`make_prompt_cache`) and:
- full-attention layers (`KVCache`) with bits become mlx-lm's `QuantizedKVCache`;
- sliding-window layers (`RotatingKVCache`) become a `WindowCache` / `QuantizedWindowCache` holding
  `extra` more positions than the window, so a rejected draft can be rolled back;
- KV-shared layers (Gemma-4 E2B/E4B: the last layers reuse an earlier layer's keys and values, and
  mlx-lm gives them no cache) get a `SharedKV` view of the cache they read. Through it the attention of
  a shared layer sees the reader's `bits`, so it takes mlx-lm's quantized SDPA path on packed keys, and
  the cache list has one entry per layer (mlx-lm's speculative decoding splits the list by layer count).
Layers with recurrent state (`ArraysCache`, ...) stay as mlx-lm builds them, in float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlx_lm.models.cache import KVCache, QuantizedKVCache, RotatingKVCache, _BaseCache

from ..errors import TemperError
from .window_cache import QuantizedWindowCache, WindowCache


class SharedKV(_BaseCache):
    """A KV-shared layer's cache: passes the reader's keys and values through, holds nothing itself."""

    def __init__(self, source: Any):
        self.source = source

    @property
    def offset(self) -> int:
        return self.source.offset

    def update_and_fetch(self, keys, values):
        return keys, values

    def make_mask(self, *args, **kwargs):
        return self.source.make_mask(*args, **kwargs)

    def is_trimmable(self) -> bool:
        return True

    def trim(self, n: int) -> int:  # the source is trimmed on its own
        return min(n, self.offset)

    def max_trim(self) -> int:
        return max_trim(self.source)

    def size(self) -> int:
        return 0

    def empty(self) -> bool:
        return self.source.empty()

    @property
    def nbytes(self) -> int:
        return 0


class QuantizedSharedKV(SharedKV):
    @property
    def bits(self) -> int:
        return self.source.bits

    @property
    def group_size(self) -> int:
        return self.source.group_size


@dataclass(frozen=True)
class KVPlan:
    """Bits per cache (mlx-lm's cache order: one per layer that owns K/V); None = float."""

    bits: tuple[int | None, ...]
    group_size: int = 64
    source: str = ""  # "uniform 8-bit", "kv_config.json", ...

    @classmethod
    def uniform(cls, n: int, bits: int | None, group_size: int = 64) -> KVPlan:
        return cls(tuple([bits] * n), group_size, f"uniform {bits}-bit" if bits else "float")

    @property
    def quantized(self) -> bool:
        return any(self.bits)


def shared_sources(model: Any) -> list[int] | None:
    """For a model whose later layers reuse earlier layers' K/V (Gemma-4): the layer each layer reads."""
    for owner in (model, getattr(model, "language_model", None)):
        inner = getattr(owner, "model", None)
        if inner is not None and isinstance(getattr(inner, "previous_kvs", None), list):
            return list(inner.previous_kvs)
    return None


def _quantized_full(bits: int, group_size: int) -> QuantizedKVCache:
    return QuantizedKVCache(group_size=group_size, bits=bits)


def build_cache(model: Any, plan: KVPlan | None = None, extra: int = 0) -> list[Any]:
    """The prompt cache for `model`: quantized per `plan`, sliding layers with `extra` rollback room."""
    from mlx_lm.models.cache import make_prompt_cache

    base = make_prompt_cache(model)
    if plan is not None and len(plan.bits) != len(base):
        raise TemperError(f"the KV plan has {len(plan.bits)} layers and the model's cache {len(base)}: "
                          "run `temper kv-calibrate` again for this model")
    quantized = plan is not None and plan.quantized
    if not quantized and extra == 0:
        return base
    cache: list[Any] = []
    for i, c in enumerate(base):
        bits = plan.bits[i] if plan is not None else None
        gs = plan.group_size if plan is not None else 64
        if isinstance(c, RotatingKVCache):
            if c.keep:
                raise TemperError(f"layer {i} keeps {c.keep} fixed positions in its sliding window; only "
                                  "windows without kept positions can be quantized or rolled back")
            cache.append(QuantizedWindowCache(c.max_size, extra, bits=bits, group_size=gs) if bits
                         else WindowCache(c.max_size, extra))
        elif isinstance(c, KVCache):
            cache.append(_quantized_full(bits, gs) if bits else c)
        else:
            cache.append(c)
    sources = shared_sources(model)
    n_layers = len(getattr(model, "layers", []))
    if sources is not None and len(cache) < n_layers:
        for j in range(len(cache), n_layers):
            src = cache[sources[j]]
            cache.append(QuantizedSharedKV(src) if hasattr(src, "bits") else SharedKV(src))
    return cache


def max_trim(c: Any) -> int:
    """Tokens `c` can be rolled back by without losing what its attention still needs."""
    if hasattr(c, "max_trim"):
        return c.max_trim()
    if c.is_trimmable():
        return getattr(c, "offset", 0)
    return 0


def can_trim(cache: list[Any], n: int) -> bool:
    return all(max_trim(c) >= n for c in cache)


def unsupported_layers(cache: list[Any]) -> list[str]:
    """Cache kinds that stay float whatever the plan (recurrent state)."""
    ok = (KVCache, QuantizedKVCache, RotatingKVCache, WindowCache, SharedKV)
    return sorted({type(c).__name__ for c in cache if not isinstance(c, ok)})


def kv_group_for(head_dims: set[int]) -> int:
    """The largest MLX group size (64, 32) that divides every attention head size."""
    for gs in (64, 32):
        if all(d % gs == 0 for d in head_dims):
            return gs
    raise TemperError(
        f"this model's attention heads are {'/'.join(map(str, sorted(head_dims)))} wide; KV-cache "
        "quantization needs a multiple of 32: turn it off for this model"
    )

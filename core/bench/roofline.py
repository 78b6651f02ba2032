"""The memory-bandwidth roofline for decoding: each decoded token reads every weight it touches plus the
KV cache once, so decode tok/s can be at most bandwidth / bytes per token.

Weights touched by one decoded token (batch of one):
- every parameter of the model (quantized weights count their packed bytes, scales and biases),
- except embedding tables, of which only the gathered row is read — unless the table is tied and also
  serves as the output projection (no `lm_head`), in which case it is read in full,
- for mixture-of-experts layers (mlx-lm SwitchLinear), only the active experts' share (top-k / experts).
KV cache bytes are the used part of the cache at the current context (averaged over the decode).
Bandwidth comes from the chip table (vendor peak) and from a measured MLX copy test; both are shown.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class WeightBytes:
    total: int  # every parameter byte the model holds
    embedding: int  # bytes of embedding tables
    embedding_read: int  # bytes of them one token reads (rows gathered, or the whole tied table)
    experts_skipped: int  # bytes of inactive experts (MoE)

    @property
    def per_token(self) -> int:
        return self.total - self.embedding + self.embedding_read - self.experts_skipped


def weight_bytes(model: Any, config: dict[str, Any] | None = None) -> WeightBytes:
    """Count the bytes one decoded token reads from the weights of an mlx-lm model."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    config = config or {}
    total = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    modules = dict(model.named_modules())
    tied = not any(name == "lm_head" or name.endswith(".lm_head") for name in modules)
    embedding = embedding_read = skipped = 0
    experts, top_k = moe_shape(config)
    for name, module in modules.items():
        if isinstance(module, (nn.Embedding, nn.QuantizedEmbedding)):
            nbytes = sum(v.nbytes for _, v in tree_flatten(module.parameters()))
            rows = module.weight.shape[0]
            embedding += nbytes
            if tied and (name == "embed_tokens" or name.endswith(".embed_tokens") or name == "wte"):
                embedding_read += nbytes
            else:
                embedding_read += math.ceil(nbytes / max(rows, 1))
        elif experts and top_k and "Switch" in type(module).__name__ and hasattr(module, "weight"):
            own = sum(v.nbytes for k, v in module.parameters().items() if not isinstance(v, dict))
            skipped += int(own * (1 - top_k / experts))
    return WeightBytes(total, embedding, embedding_read, skipped)


def moe_shape(config: dict[str, Any]) -> tuple[int | None, int | None]:
    """(experts, experts per token) from a config: Mixtral/Qwen3-MoE/DeepSeek names, Gemma-4's
    `num_experts` / `top_k_experts`, at the top level or in a VLM's `text_config`."""
    for source in (config, config.get("text_config") or {}):
        experts = source.get("num_local_experts") or source.get("num_experts") or source.get("n_routed_experts")
        top_k = source.get("num_experts_per_tok") or source.get("top_k_experts")
        if experts and top_k:
            return int(experts), int(top_k)
    return None, None


def count_params(model: Any) -> int:
    """Parameters as the unquantized model would count them (a 4-bit packed uint32 holds 8 weights)."""
    import mlx.core as mx

    total = 0
    for _, module in model.named_modules():
        own = {k: v for k, v in module.parameters().items() if isinstance(v, mx.array)}
        bits = getattr(module, "bits", None)
        quantized = bits and "scales" in own
        for key, value in own.items():
            if quantized and key in ("scales", "biases"):
                continue
            total += value.size * 32 // bits if quantized and key == "weight" else value.size
    return total


def kv_bytes(cache: list[Any]) -> int:
    """Used bytes of a prompt cache (the preallocated slack of KVCache is not read). Quantized caches hold
    (packed, scales, biases) tuples; KV-shared layers hold nothing of their own."""
    total = 0
    for c in cache or []:
        try:
            nbytes = int(c.nbytes)
        except Exception:
            continue
        keys = getattr(c, "keys", None)
        first = keys[0] if isinstance(keys, tuple) else keys
        capacity = getattr(first, "shape", None)
        if capacity is not None and len(capacity) >= 3 and capacity[2] > 0:
            used = min(int(getattr(c, "offset", capacity[2])), capacity[2])
            nbytes = int(nbytes * used / capacity[2])
        total += nbytes
    return total


def measure_bandwidth(size_bytes: int | None = None, reps: int = 5) -> float:
    """GB/s of an MLX elementwise copy (read + write) on the default device. Call on the engine thread.

    Uses 1 GiB on a GPU and 64 MiB on CPU (larger than any CPU cache) by default; best of `reps` after a
    warm-up."""
    import mlx.core as mx

    if size_bytes is None:
        size_bytes = (1 << 26) if mx.default_device() == mx.cpu else (1 << 30)
    n = size_bytes // 4
    a = mx.ones((n,), dtype=mx.float32)
    mx.eval(a)
    mx.eval(a + 1)  # warm-up: compiles the kernel, allocates
    best = math.inf
    for _ in range(reps):
        mx.synchronize()
        t0 = time.perf_counter()
        b = a + 1
        mx.eval(b)
        mx.synchronize()
        best = min(best, time.perf_counter() - t0)
        del b
    del a
    mx.clear_cache()
    return 2 * n * 4 / best / 1e9


@dataclass(frozen=True)
class Roofline:
    """Decode ceiling for one benchmark row."""

    weight_bytes: int  # weight bytes read per decoded token
    kv_bytes: int  # mean KV cache bytes read per decoded token over the decode
    table_gbs: float | None  # vendor peak bandwidth (chip table), GB/s
    measured_gbs: float | None  # MLX copy test, GB/s
    decode_tps: float  # measured mean decode tok/s
    chip: str = ""
    source: str = ""

    @property
    def bytes_per_token(self) -> int:
        return self.weight_bytes + self.kv_bytes

    def ceiling(self, gbs: float | None) -> float | None:
        return gbs * 1e9 / self.bytes_per_token if gbs and self.bytes_per_token else None

    @property
    def ceiling_table(self) -> float | None:
        return self.ceiling(self.table_gbs)

    @property
    def ceiling_measured(self) -> float | None:
        return self.ceiling(self.measured_gbs)

    @property
    def pct_table(self) -> float | None:
        c = self.ceiling_table
        return 100.0 * self.decode_tps / c if c else None

    @property
    def pct_measured(self) -> float | None:
        c = self.ceiling_measured
        return 100.0 * self.decode_tps / c if c else None

    @property
    def achieved_gbs(self) -> float:
        """Bandwidth the measured decode rate implies (bytes per token × tok/s)."""
        return self.bytes_per_token * self.decode_tps / 1e9

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Roofline:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

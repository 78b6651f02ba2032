"""One copy of a shared few-shot prefix's KV cache for a whole batch ("cascade" attention), for mlx-lm's
BatchGenerator on models whose attention calls their module's `scaled_dot_product_attention` (llama,
qwen2, mistral... : most of mlx-lm's dense models).

Without it, every row of the batch carries its own copy of the prefix (GSM8K: 373 of its ~500 tokens of
context), so each decode step reads the prefix's keys and values once per row, and every cache merge,
extend and filter copies them again. Here each row's cache holds only its own tokens (a BatchKVCache of
the suffix and the completion, positions shifted by the prefix length for RoPE), and attention takes the
prefix part from the one shared copy: the scores of all rows against the prefix in one matrix product,
the scores against each row's own tokens as before, one softmax over both, the two weighted sums added.
That is the same attention (every query sees the whole prefix, then its own tokens causally), summed in
another order: results agree to float rounding (tests/core/test_evals_run.py checks the completions).
A prefill (several queries per row, a few rows) instead puts the prefix in front of those rows' keys and
runs the model's own attention: the copy is small there and the fused kernel faster.

On a CPU the decode step is compute-bound, so this saves memory (the batch cache ~4x smaller on GSM8K)
more than time (docs/benchmarks/capability.md, session 5).
"""

from __future__ import annotations

import sys
from typing import Any

_PATCHED: dict[str, Any] = {}      # model module name -> its original scaled_dot_product_attention
_CLASSES: list[type] = []          # (PrefixBatchKV, SharedPrefix) once built


def _classes() -> tuple[type, type]:
    """The two cache classes, built on first use (mlx-lm is imported lazily, on the engine thread)."""
    if _CLASSES:
        return _CLASSES[0], _CLASSES[1]
    import mlx.core as mx
    from mlx_lm.models.cache import BatchKVCache, KVCache

    class PrefixBatchKV(BatchKVCache):
        """A batch's own tokens; `prefix` (keys, values: [1, kv heads, P, head dim]) is shared by all rows.
        `offset` (the RoPE position) counts the prefix; the stored tokens and the mask do not."""

        def __init__(self, prefix: tuple[Any, Any], left_padding: list[int]):
            self.prefix = prefix
            self.prefix_len = int(prefix[0].shape[2])
            super().__init__(left_padding)
            self._own = mx.array([-x for x in left_padding])    # BatchKVCache's own start, before the prefix

        # BatchKVCache only ever sets `offset` from its own reading plus or minus a count (or concatenates
        # and filters readings), so reading adds the prefix length and setting takes it off again.
        @property
        def offset(self) -> Any:
            return self._own + self.prefix_len

        @offset.setter
        def offset(self, value: Any) -> None:
            self._own = value - self.prefix_len

    class SharedPrefix(KVCache):
        """One prompt's cache before it joins a batch: empty, pointing at the shared prefix."""

        def __init__(self, prefix: tuple[Any, Any]):
            super().__init__()
            self.prefix = prefix

        def merge(self, caches: list[Any]) -> Any:          # called on the first row's cache of a group
            return PrefixBatchKV(self.prefix, [0] * len(caches))

    _CLASSES[:] = [PrefixBatchKV, SharedPrefix]
    return PrefixBatchKV, SharedPrefix


def attention(queries: Any, keys: Any, values: Any, prefix: tuple[Any, Any], scale: float, mask: Any) -> Any:
    """softmax([q·Kp, q·Ks] * scale + mask) · [Vp; Vs] with Kp, Vp shared by the batch (no per-row copy).
    queries [B, H, L, D]; keys, values [B, Hkv, S, D]; prefix [1, Hkv, P, D]; mask None, bool or additive
    [B or 1, 1, L, S] (over the rows' own tokens only: every query sees the whole prefix)."""
    import mlx.core as mx

    pk, pv = prefix
    B, H, L, D = queries.shape
    hkv, S, P = keys.shape[1], keys.shape[2], pk.shape[2]
    rep = H // hkv
    q = (queries * scale).reshape(B, hkv, rep * L, D)       # head h reads kv head h // rep
    qp = q.transpose(1, 0, 2, 3).reshape(hkv, B * rep * L, D)
    sp = (qp @ pk[0].transpose(0, 2, 1)).reshape(hkv, B, rep, L, P).transpose(1, 0, 2, 3, 4)
    ss = (q @ keys.transpose(0, 1, 3, 2)).reshape(B, hkv, rep, L, S)
    if isinstance(mask, str):                                 # "causal": the last L of the S own tokens
        mask = mx.arange(S - L, S)[:, None] >= mx.arange(S)[None]
        mask = mask[None, None]
    if mask is not None:
        m = mask.reshape(mask.shape[0], 1, 1, L, S) if mask.ndim == 4 else mask
        if m.dtype == mx.bool_:
            ss = mx.where(m, ss, mx.array(-float("inf"), ss.dtype))
        else:
            ss = ss + m.astype(ss.dtype)
    w = mx.softmax(mx.concatenate([sp, ss], axis=-1), axis=-1, precise=True)
    wp = w[..., :P].transpose(1, 0, 2, 3, 4).reshape(hkv, B * rep * L, P)
    out_p = (wp @ pv[0]).reshape(hkv, B, rep * L, D).transpose(1, 0, 2, 3)
    out_s = w[..., P:].reshape(B, hkv, rep * L, S) @ values
    return (out_p + out_s).reshape(B, H, L, D)


def with_prefix(keys: Any, values: Any, prefix: tuple[Any, Any], mask: Any, L: int) -> tuple[Any, Any, Any]:
    """The prefix copied in front of every row's own keys and values, the mask widened to match: for a
    prefill (L > 1 queries per row), where the copy is small beside the work and the fused attention
    is faster than `attention` (measured: 5.7 against 3.4 ms of CPU per token at 8 rows x 66 tokens)."""
    import mlx.core as mx

    B, S = keys.shape[0], keys.shape[2]
    P = prefix[0].shape[2]
    k = mx.concatenate([mx.broadcast_to(prefix[0], (B, *prefix[0].shape[1:])), keys], axis=2)
    v = mx.concatenate([mx.broadcast_to(prefix[1], (B, *prefix[1].shape[1:])), values], axis=2)
    if isinstance(mask, str):
        mask = (mx.arange(S - L, S)[:, None] >= mx.arange(S)[None])[None, None]
    if mask is not None:
        seen = mx.ones((*mask.shape[:-1], P), dtype=mx.bool_) if mask.dtype == mx.bool_ else \
            mx.zeros((*mask.shape[:-1], P), dtype=mask.dtype)
        mask = mx.concatenate([seen, mask], axis=-1)
    return k, v, mask


def install(model: Any) -> bool:
    """Route the attention of `model`'s module through `attention` when its cache is a PrefixBatchKV
    (any other cache: the original function, unchanged). False where the model's code has no such hook
    (then callers copy the prefix into every row as before)."""
    module = sys.modules.get(type(model).__module__)
    name = getattr(module, "__name__", "")
    if name in _PATCHED:
        return True
    original = getattr(module, "scaled_dot_product_attention", None)
    if module is None or original is None or not name.startswith("mlx_lm.models."):
        return False
    batch_cls, _ = _classes()

    def routed(queries: Any, keys: Any, values: Any, cache: Any, scale: float, mask: Any, sinks: Any = None) -> Any:
        if isinstance(cache, batch_cls) and sinks is None:
            if queries.shape[2] == 1:
                return attention(queries, keys, values, cache.prefix, scale, mask)
            keys, values, mask = with_prefix(keys, values, cache.prefix, mask, queries.shape[2])
        return original(queries, keys, values, cache=cache, scale=scale, mask=mask, sinks=sinks)

    _PATCHED[name] = original
    module.scaled_dot_product_attention = routed
    return True


def prefix_kv(cache: list[Any]) -> list[tuple[Any, Any]]:
    """A prefilled prompt cache (one KVCache per layer) as contiguous (keys, values) of its tokens."""
    import mlx.core as mx

    out = [(mx.contiguous(c.keys[..., :c.offset, :]), mx.contiguous(c.values[..., :c.offset, :])) for c in cache]
    mx.eval(out)
    return out


def row_caches(prefix: list[tuple[Any, Any]]) -> list[Any]:
    """A prompt's cache list for BatchGenerator.insert: empty per layer, sharing `prefix`."""
    _, shared = _classes()
    return [shared(p) for p in prefix]


def usable(cache: list[Any]) -> bool:
    """Whether a prefilled prompt cache is plain KVCache layers (the only kind this shares)."""
    from mlx_lm.models.cache import KVCache

    return bool(cache) and all(type(c) is KVCache and c.keys is not None for c in cache)

"""Sliding-window KV caches that can be quantized and rolled back (Gemma's sliding layers, Mistral...).

mlx-lm's `RotatingKVCache` keeps a window of `max_size` positions in a ring buffer, but it cannot be
quantized (`to_quantized` raises) and, once full, it cannot be trimmed: speculative decoding writes the
drafted tokens into the ring, and a rejected draft has already overwritten positions the window still
needs. These caches keep the ring-buffer mechanics with two changes:

- the ring holds `window + extra` positions, `extra` being the longest rollback asked for (the draft
  length), so the `extra` oldest slots are never inside the window and a rollback of up to `extra + 1`
  tokens loses nothing the window still sees; the attention mask hides the slots outside the window;
- the position held by a slot is always `slot = position % capacity`, so a rollback is just
  `offset -= n` and the mask is a function of the offset alone.

`QuantizedWindowCache` stores packed keys/values (`mx.quantize`: weights, scales, biases) and exposes
`bits` / `group_size`, which is what mlx-lm's attention looks for to take its quantized SDPA path.

Decoding one token writes it in place and attends over the whole ring (with a mask once the ring holds
positions outside the window). A chunk of several tokens (prefill, or the verification of a draft)
attends over the last `window - 1` positions in temporal order followed by the chunk, like mlx-lm.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
from mlx_lm.models.base import create_causal_mask
from mlx_lm.models.cache import _BaseCache


class WindowCache(_BaseCache):
    step = 256

    def __init__(self, window: int, extra: int = 0):
        if window < 1 or extra < 0:
            raise ValueError(f"window must be >= 1 and extra >= 0 (got {window}, {extra})")
        self.window = window
        self.extra = extra
        self.capacity = window + extra
        self.offset = 0
        self._k: list[mx.array] | None = None  # one array (float) or three (packed, scales, biases)
        self._v: list[mx.array] | None = None

    # -- storage: overridden by the quantized cache -----------------------------------------------------
    def _pack(self, x: mx.array) -> list[mx.array]:
        return [x]

    def _out(self, parts: list[mx.array]) -> Any:
        return parts[0]

    # -- the mlx-lm cache interface ---------------------------------------------------------------------
    @property
    def keys(self) -> Any:
        return None if self._k is None else self._out(self._k)

    @property
    def values(self) -> Any:
        return None if self._v is None else self._out(self._v)

    def _length(self) -> int:
        return 0 if self._k is None else self._k[0].shape[2]

    def _grow(self, needed: int, k: list[mx.array], v: list[mx.array]) -> None:
        have = self._length()
        if needed <= have:
            return
        size = min(self.capacity, -(-needed // self.step) * self.step)

        def grow(old: list[mx.array] | None, new: list[mx.array]) -> list[mx.array]:
            out = []
            for i, part in enumerate(new):
                B, H, _, D = part.shape
                pad = mx.zeros((B, H, size - have, D), dtype=part.dtype)
                out.append(pad if old is None else mx.concatenate([old[i], pad], axis=2))
            return out

        self._k, self._v = grow(self._k, k), grow(self._v, v)

    def _write(self, buf: list[mx.array], new: list[mx.array], start: int) -> None:
        S = new[0].shape[2]
        if S > self.capacity:  # only the last `capacity` positions can be held
            new = [p[..., S - self.capacity:, :] for p in new]
            start += S - self.capacity
            S = self.capacity
        a = start % self.capacity
        first = min(S, self.capacity - a)
        for b, p in zip(buf, new, strict=False):
            b[..., a:a + first, :] = p[..., :first, :]
            if first < S:
                b[..., :S - first, :] = p[..., first:, :]

    def _recent(self, parts: list[mx.array], h: int) -> list[mx.array]:
        """Positions offset-h .. offset-1 in temporal order."""
        a = (self.offset - h) % self.capacity
        if a + h <= self.capacity:
            return [p[..., a:a + h, :] for p in parts]
        return [mx.concatenate([p[..., a:, :], p[..., :h - (self.capacity - a), :]], axis=2) for p in parts]

    def update_and_fetch(self, keys: mx.array, values: mx.array):
        S = keys.shape[2]
        o = self.offset
        k, v = self._pack(keys), self._pack(values)
        if S == 1:
            self._grow(min(self.capacity, o + 1), k, v)
            self._write(self._k, k, o)
            self._write(self._v, v, o)
            self.offset += 1
            n = min(o + 1, self.capacity)
            if n == self._length():
                return self._out(self._k), self._out(self._v)
            return (self._out([p[..., :n, :] for p in self._k]),
                    self._out([p[..., :n, :] for p in self._v]))
        h = min(o, self.window - 1)
        old_k = self._recent(self._k, h) if h else None
        old_v = self._recent(self._v, h) if h else None
        self._grow(min(self.capacity, o + S), k, v)
        self._write(self._k, k, o)
        self._write(self._v, v, o)
        self.offset += S
        if not h:
            return self._out(k), self._out(v)
        return (self._out([mx.concatenate([a, b], axis=2) for a, b in zip(old_k, k, strict=False)]),
                self._out([mx.concatenate([a, b], axis=2) for a, b in zip(old_v, v, strict=False)]))

    def make_mask(self, N: int, window_size: int | None = None, return_array: bool = False):
        o, w = self.offset, self.window
        if N > 1:
            h = min(o, w - 1)
            if h + N <= w and not return_array:
                return "causal"
            return create_causal_mask(N, h, window_size=w)
        if o + 1 <= w:
            return None
        if o + 1 <= self.capacity:  # not wrapped yet: slot = position
            return mx.arange(o + 1) > o - w
        if self.capacity == w:
            return None
        return ((o - mx.arange(self.capacity)) % self.capacity) < w

    def max_trim(self) -> int:
        """How many tokens can be rolled back without losing a position the window still needs."""
        if self.offset <= self.capacity:
            return self.offset
        return self.extra + 1

    def is_trimmable(self) -> bool:
        return True

    def trim(self, n: int) -> int:
        if n > self.max_trim():
            raise ValueError(f"cannot roll a sliding-window cache back by {n} tokens (at most {self.max_trim()})")
        n = min(self.offset, n)
        self.offset -= n
        return n

    def size(self) -> int:
        return min(self.offset, self.capacity)

    def empty(self) -> bool:
        return self._k is None

    @property
    def state(self):
        return [] if self._k is None else [*self._k, *self._v]

    @state.setter
    def state(self, v):
        raise NotImplementedError("a sliding-window cache is not saved to disk")

    @property
    def nbytes(self) -> int:
        if self._k is None:
            return 0
        return sum(p.nbytes for p in self._k) + sum(p.nbytes for p in self._v)


class QuantizedWindowCache(WindowCache):
    def __init__(self, window: int, extra: int = 0, *, bits: int = 8, group_size: int = 64):
        super().__init__(window, extra)
        self.bits = bits
        self.group_size = group_size

    def _pack(self, x: mx.array) -> list[mx.array]:
        return list(mx.quantize(x, group_size=self.group_size, bits=self.bits))

    def _out(self, parts: list[mx.array]) -> Any:
        return tuple(parts)

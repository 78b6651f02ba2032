"""GPTQ's H accumulators: H = Σ xᵀx of each Linear input over the calibration tokens, one per input name.

On MLX's CPU backend with the preloaded OpenBLAS (core/accel/syrk.py) each chunk's xᵀx is added in place into
the upper triangle of a NumPy float32 accumulator by `cblas_ssyrk` (half a matrix product's work, no new array
per chunk: ~1.8x faster than MLX's `x.T @ x` at SmolLM2's shapes); elsewhere it is an MLX product, evaluated with
the pass. `get` and `pop` give the full symmetric matrix either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..accel import syrk
from . import host_math


class HRegistry:
    """The live H accumulators, keyed by an input's name; counts the most ever live at once."""

    def __init__(self, host: bool | None = None) -> None:
        self.live: dict[str, Any] = {}      # MLX arrays, or NumPy upper triangles (syrk)
        self.tokens: dict[str, int] = {}
        self.peak_count = 0
        self.peak_bytes = 0
        self.host = (host_math.active() and syrk.available()) if host is None else host

    def add(self, key: str, x: Any) -> None:
        import mlx.core as mx

        flat = x.reshape(-1, x.shape[-1]).astype(mx.float32)
        if self.host:
            acc = self.live.get(key)
            if acc is None:
                acc = self.live[key] = np.zeros((flat.shape[-1],) * 2, dtype=np.float32)
            syrk.accumulate(acc, host_math.host(flat))
        else:
            h = flat.T @ flat
            self.live[key] = h if key not in self.live else self.live[key] + h
        self.tokens[key] = self.tokens.get(key, 0) + int(flat.shape[0])
        self.peak_count = max(self.peak_count, len(self.live))
        self.peak_bytes = max(self.peak_bytes, sum(int(v.nbytes) for v in self.live.values()))

    def pending(self) -> list[Any]:
        """The MLX accumulators, to evaluate with the pass (none on the host: syrk ran already)."""
        return [] if self.host else list(self.live.values())

    def get(self, key: str) -> Any:
        """The full H of `key` (MLX array, or float32 NumPy on the host)."""
        h = self.live[key]
        return syrk.symmetric(h) if self.host else h

    def pop(self, key: str) -> Any:
        h = self.get(key)
        self.tokens.pop(key, None)
        self.live.pop(key)
        return h

    def clear(self) -> None:
        self.live.clear()
        self.tokens.clear()

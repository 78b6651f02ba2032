"""GPTQ's H accumulators: H = Σ xᵀx of each Linear input over the calibration tokens, one per input name.

On MLX's CPU backend with the preloaded OpenBLAS (core/accel/syrk.py) each chunk's xᵀx is added in place into
the upper triangle of a NumPy float32 accumulator by `cblas_ssyrk` (half a matrix product's work, no new array
per chunk: ~1.8x faster than MLX's `x.T @ x` at SmolLM2's shapes); elsewhere it is an MLX product, evaluated with
the pass. `get` and `pop` give the full symmetric matrix either way.
"""

from __future__ import annotations

import hashlib
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


class FisherHessians:
    """GPTQ's H of every block Linear's input (and of an untied head's), added up by the Fisher pass's forward
    (fisher_blocks.py) on the calibration chunks GPTQ then rounds against, so that GPTQ need not run the float
    blocks on them again (gptq.py). Keyed as GPTQ keys its own: the first Linear fed an input names its H, and
    `key_of` maps every Linear to that name. Once the pass is over, `spill()` moves the matrices to a
    temporary folder (0.4 GB for SmolLM2-135M, which the sensitivity phase's scoring would otherwise hold beside
    its own peak) and `take(key)` reads one back. `close()` removes the folder."""

    def __init__(self, head: bool = False) -> None:
        self.registry = HRegistry()       # syrk into NumPy upper triangles where it can (MLX products elsewhere)
        self.key_of: dict[str, str] = {}
        self.head = head                  # also the head's input (an untied lm_head, which GPTQ rounds)
        self.tokens = 0
        self.digest = hashlib.sha256()     # of the chunks, in order: GPTQ's own must be the same
        self.valid = True
        self.files: dict[str, str] = {}
        self.folder: Any = None

    def add(self, path: str, x: Any, seen: dict[int, tuple[Any, str]]) -> None:
        """Linear `path` is fed `x`; `seen`: this chunk's inputs so far by id (shared inputs add once)."""
        hit = seen.get(id(x))
        if hit is None:
            seen[id(x)] = (x, path)       # holding x keeps its id unique for this chunk
            self.registry.add(path, x)
            _eval(self.registry.pending())
        self.key_of[path] = path if hit is None else hit[1]

    def head_input(self, hidden: Any) -> None:
        if self.head:
            self.registry.add("lm_head", hidden)
            _eval(self.registry.pending())
            self.key_of["lm_head"] = "lm_head"

    def chunk_done(self, tokens: Any) -> None:
        """One calibration chunk (its token ids) went through."""
        ids = np.asarray(tokens, dtype=np.int64).reshape(-1)
        self.tokens += len(ids)
        self.digest.update(ids.tobytes())

    def discard(self) -> None:
        """Not usable (the pass took the whole-model path): GPTQ runs its own block passes."""
        self.valid = False
        self.registry.clear()
        self.key_of.clear()

    def covers(self, paths: list[str], chunks: list[list[int]]) -> bool:
        """Whether every one of `paths` has its H here, gathered on these very `chunks`."""
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(np.asarray(chunk, dtype=np.int64).tobytes())
        return self.valid and self.tokens > 0 and digest.digest() == self.digest.digest() and all(
            self.key_of.get(p) in self.files or self.key_of.get(p) in self.registry.live for p in paths)

    def spill(self) -> None:
        import tempfile
        from pathlib import Path

        if not self.valid or not self.registry.live:
            return
        self.folder = tempfile.TemporaryDirectory(prefix="temper-h-")
        for i, (key, upper) in enumerate(list(self.registry.live.items())):
            name = str(Path(self.folder.name) / f"{i}.npy")
            np.save(name, np.asarray(upper))
            self.files[key] = name
            del self.registry.live[key]

    def take(self, key: str) -> np.ndarray:
        """The full symmetric H of `key`, no longer kept here."""
        import os

        if key in self.files:
            name = self.files.pop(key)
            h = np.load(name)
            os.remove(name)
            return syrk.symmetric(h) if self.registry.host else h
        return np.asarray(self.registry.pop(key))

    def close(self) -> None:
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None
        self.files.clear()
        self.registry.clear()


def _eval(arrays: list[Any]) -> None:
    if arrays:
        import mlx.core as mx

        mx.eval(arrays)

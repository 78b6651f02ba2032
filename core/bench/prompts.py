"""Random-token prompts: no chat template, no cache hit, every run starts with its own prefix."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

_counter = itertools.count()


def vocab_size(model: Any, config: dict[str, Any], tokenizer: Any = None) -> int:
    """Rows of the model's input embedding (what token ids are valid), from the config or the model."""
    for source in (config, config.get("text_config") or {}):
        if isinstance(source.get("vocab_size"), int):
            return int(source["vocab_size"])
    args = getattr(model, "args", None)
    if getattr(args, "vocab_size", None):
        return int(args.vocab_size)
    return int(getattr(tokenizer, "vocab_size", 0) or 32000)


def special_ids(tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for attr in ("all_special_ids", "eos_token_ids"):
        try:
            ids.update(int(i) for i in (getattr(tokenizer, attr, None) or []))
        except TypeError:
            pass
    return ids


class PromptMaker:
    """Makes random prompts over ordinary tokens. The first 4 tokens spell a per-process counter in base
    `vocab` (a unique prefix for every prompt), the rest are uniform random."""

    def __init__(self, vocab: int, exclude: set[int] | None = None, seed: int = 0):
        allowed = np.setdiff1d(np.arange(vocab), np.fromiter(exclude or (), dtype=np.int64))
        if allowed.size < 2:
            raise ValueError(f"vocabulary of {vocab} tokens leaves nothing to sample")
        self.allowed = allowed
        self.rng = np.random.default_rng(seed)

    def prefix(self, index: int, length: int = 4) -> list[int]:
        base = int(self.allowed.size)
        digits = []
        for _ in range(length):
            index, d = divmod(index, base)
            digits.append(int(self.allowed[d]))
        return digits

    def make(self, length: int) -> list[int]:
        if length < 1:
            raise ValueError("prompt length must be at least 1")
        head = self.prefix(next(_counter))[:length]
        tail = self.rng.choice(self.allowed, size=length - len(head)).tolist()
        return head + [int(t) for t in tail]

"""Drafters for speculative decoding: another model with the same tokenizer, or the chat model itself
quantized low ("self-drafter"). Both live on the engine thread (ctx.state) between jobs."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TemperError
from .loader import LoadedModel
from .models import ensure_loaded

SELF = "self"
SELF_BITS = 3
SELF_GROUP_SIZE = 64
_KEY = "drafters"


@dataclass
class Drafter:
    model: Any
    label: str          # "self (affine 3-bit g64)" or the drafter folder name
    key: tuple


def check_same_vocab(main: LoadedModel, draft: LoadedModel) -> None:
    """Refuse a drafter whose tokenizer maps tokens differently: its guesses would be meaningless."""
    a, b = main.tokenizer.get_vocab(), draft.tokenizer.get_vocab()
    if a == b:
        return
    differ = sum(1 for tok, i in a.items() if b.get(tok) != i) + sum(1 for tok in b if tok not in a)
    raise TemperError(
        f"drafter {draft.name} has a different tokenizer than {main.name} "
        f"({len(b)} vs {len(a)} tokens, {differ} differ): pick a drafter from the same model family, "
        "or use the self-drafter (--drafter self)"
    )


def build_self_drafter(main: LoadedModel, *, bits: int = SELF_BITS, group_size: int = SELF_GROUP_SIZE):
    """A fresh copy of the chat model's weights, quantized to `bits` (affine). The chat model is untouched."""
    import mlx.core as mx
    from mlx_lm.utils import dequantize_model, load_model, quantize_model

    model, config = load_model(Path(main.path), lazy=True)
    if "quantization" in config:  # already quantized: back to float, then down to `bits`
        model = dequantize_model(model)
        config = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm prints a line about bits per weight
        model, _ = quantize_model(model=model, config=dict(config), group_size=group_size, bits=bits,
                                  mode="affine")
    mx.eval(model.parameters())
    return model


def get_drafter(state: dict[str, Any], main: LoadedModel, spec: str | None) -> Drafter | None:
    """`spec`: None (no drafter), "self", or a drafter model folder / Hub id. Call on the engine thread."""
    if not spec:
        return None
    cache: dict[tuple, Drafter] = state.setdefault(_KEY, {})
    if spec == SELF:
        key = (str(Path(main.path).resolve()), SELF, SELF_BITS, SELF_GROUP_SIZE)
        if key not in cache:
            cache.clear()  # one drafter resident at a time
            model = build_self_drafter(main)
            cache[key] = Drafter(model, f"self (affine {SELF_BITS}-bit g{SELF_GROUP_SIZE})", key)
        return cache[key]
    draft = ensure_loaded(state, spec, keep=3)
    if Path(draft.path).resolve() == Path(main.path).resolve():
        raise TemperError("the drafter is the chat model itself: use --drafter self for a quantized copy")
    check_same_vocab(main, draft)
    key = (str(Path(draft.path).resolve()),)
    return Drafter(draft.model, draft.name, key)


def check_rollback(model, what: str) -> None:
    """Speculative decoding rolls the cache back after each rejected draft. Full-attention caches and
    sliding windows can be (temper's window cache keeps the draft length as extra positions: see
    core/engine/kv_cache.py); recurrent state cannot, so such models are refused up front."""
    from mlx_lm.models.cache import KVCache, QuantizedKVCache, RotatingKVCache, make_prompt_cache

    cache = make_prompt_cache(model)
    kinds = sorted({type(c).__name__ for c in cache
                    if not isinstance(c, (KVCache, QuantizedKVCache, RotatingKVCache))
                    or (isinstance(c, RotatingKVCache) and c.keep)})
    if kinds:
        raise TemperError(
            f"speculative decoding needs a cache that can be rolled back; {what} uses {', '.join(kinds)} "
            "(recurrent state, or a window with kept positions), which cannot be: turn the drafter off for this model"
        )

"""Drafters for speculative decoding: another model with the same tokenizer, or the chat model itself
quantized low ("self-drafter"). Both live on the engine thread (ctx.state) between jobs."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
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


def build_self_drafter(main: LoadedModel, *, bits: int = SELF_BITS, group_size: int = SELF_GROUP_SIZE,
                       progress: Callable[[int, int], None] | None = None):
    """A fresh copy of the chat model's weights, quantized to `bits` (affine). The chat model is untouched.

    `progress(done, total)` is called as the copy is computed, one group of weights at a time (per layer)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model, load_model, quantize_model

    model, config = load_model(Path(main.path), lazy=True)
    if "quantization" in config:  # already quantized: back to float, then down to `bits`
        model = dequantize_model(model)
        config = {k: v for k, v in config.items() if k not in ("quantization", "quantization_config")}
    with contextlib.redirect_stdout(io.StringIO()):  # mlx-lm prints a line about bits per weight
        model, _ = quantize_model(model=model, config=dict(config), group_size=group_size, bits=bits,
                                  mode="affine")
    groups: dict[str, list] = {}
    for name, value in tree_flatten(model.parameters()):  # "model.layers.3.mlp..." -> group "model.layers.3"
        parts = name.split(".")
        key = ".".join(parts[:3]) if len(parts) > 3 and parts[1] == "layers" else parts[0]
        groups.setdefault(key, []).append(value)
    for done, values in enumerate(groups.values(), 1):
        mx.eval(values)
        if progress is not None:
            progress(done, len(groups))
    return model


def needs_build(state: dict[str, Any], main: LoadedModel, spec: str | None) -> bool:
    """Whether `get_drafter(state, main, spec)` will build a self-drafter (seconds to a minute) first."""
    return spec == SELF and _self_key(main) not in state.get(_KEY, {})


def _self_key(main: LoadedModel) -> tuple:
    return (str(Path(main.path).resolve()), SELF, SELF_BITS, SELF_GROUP_SIZE)


def get_drafter(state: dict[str, Any], main: LoadedModel, spec: str | None,
                progress: Callable[[int, int], None] | None = None) -> Drafter | None:
    """`spec`: None (no drafter), "self", or a drafter model folder / Hub id. Call on the engine thread.
    `progress`: see build_self_drafter (called only when a self-drafter is built)."""
    if not spec:
        return None
    cache: dict[tuple, Drafter] = state.setdefault(_KEY, {})
    if spec == SELF:
        key = _self_key(main)
        if key not in cache:
            cache.clear()  # one drafter resident at a time
            model = build_self_drafter(main, progress=progress)
            cache[key] = Drafter(model, f"self (affine {SELF_BITS}-bit g{SELF_GROUP_SIZE})", key)
        return cache[key]
    draft = ensure_loaded(state, spec, keep=3)
    if Path(draft.path).resolve() == Path(main.path).resolve():
        raise TemperError("the drafter is the chat model itself: use --drafter self for a quantized copy")
    check_same_vocab(main, draft)
    key = (str(Path(draft.path).resolve()),)
    return Drafter(draft.model, draft.name, key)


DRAFT_COST = 0.5  # a drafter token's cost as a share of the model's, taken low (a 3-bit self-drafter: ~0.75)


def loss_note(decode_tps: float, baseline_tps: float | None, acceptance: float | None,
              draft_tokens: int) -> str | None:
    """A note when the drafter costs more than it saves: measured against this model's last answer without
    a drafter when there is one (`baseline_tps`), else judged from the acceptance rate a: a round of k drafts
    yields (1 - a^(k+1)) / (1 - a) tokens for about 1 + k * DRAFT_COST model steps of work. A CPU decode is
    memory-bound, so a 3-bit copy of a 4-bit model costs ~3/4 of it per token; SmolLM2-135M accepts 17-27%
    of its self-drafter's tokens (docs/benchmarks/self_drafter_acceptance.md): a loss either way."""
    if acceptance is None:
        return None
    if baseline_tps:
        if decode_tps < baseline_tps:
            return (f"drafter is a loss here: {decode_tps:.1f} tok/s vs {baseline_tps:.1f} without it "
                    f"({acceptance * 100:.0f}% accepted): turn it off")
        return None
    a, k = min(acceptance, 0.999), max(draft_tokens, 1)
    gained, cost = (1 - a ** (k + 1)) / (1 - a), 1 + k * DRAFT_COST
    if gained < cost:
        return (f"only {acceptance * 100:.0f}% of drafts accepted ({gained:.1f} tokens per round for ~{cost:.1f} "
                "steps of work): drafting is likely slower than none; turn it off")
    return None


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

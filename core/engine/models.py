"""Models kept loaded on the engine thread between jobs (the chat model, a drafter, a quantization base)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from .loader import LoadedModel, load, resolve

_KEY = "loaded_models"


def ensure_loaded(state: dict[str, Any], path_or_id: str | Path, *, keep: int = 2) -> LoadedModel:
    """Return the model at `path_or_id`, loading it if needed; keep at most `keep` models resident.

    Call only on the engine thread (pass `ctx.state`)."""
    cache: OrderedDict[Path, LoadedModel] = state.setdefault(_KEY, OrderedDict())
    path = resolve(path_or_id).resolve()
    if path in cache:
        cache.move_to_end(path)
        return cache[path]
    lm = load(path)
    cache[path] = lm
    while len(cache) > keep:
        cache.popitem(last=False)
    return lm


def unload(state: dict[str, Any], path_or_id: str | Path | None = None) -> None:
    cache: OrderedDict[Path, LoadedModel] = state.setdefault(_KEY, OrderedDict())
    if path_or_id is None:
        cache.clear()
    else:
        cache.pop(resolve(path_or_id).resolve(), None)
    try:
        import mlx.core as mx

        mx.clear_cache()
    except Exception:
        pass

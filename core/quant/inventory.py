"""What a model can quantize: every Linear/Embedding its quantization predicate allows, and the rest.

The inventory is a `SensitivityTable` without scores: the tensors (path, shape, params, kind, layer),
the model's float dtype and the bits of everything that is never quantized (norms, biases, vision
weights). Recipes that need no scores (uniform, unsloth, mlx-lm's mixed predicates) plan from it; the
sensitivity pass fills the same structure with scores.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .candidates import FIXED_MODES, Candidate
from .scores import SensitivityTable, TensorScores

# Paths that stay in float whatever the plan says: vision and audio towers and their projectors.
FLOAT_ONLY = ("vision_tower", "vision_model", "multi_modal_projector", "audio_tower", "audio_model",
              "embed_vision", "embed_audio", "visual.")
_LAYER = re.compile(r"\.(\d+)\.")
_SMALLEST_GROUP = min(g for _, g, _ in FIXED_MODES.values())


def is_float_only(path: str) -> bool:
    return any(part in path for part in FLOAT_ONLY)


def tensor_kind(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def layer_index(path: str) -> int | None:
    match = _LAYER.search(f".{path}.")
    return int(match.group(1)) if match else None


def quantizable_modules(model: Any) -> list[tuple[str, Any, dict | None]]:
    """(path, module, required params or None) for every module this model lets us quantize.

    Follows the model's own `quant_predicate` (mlx-lm's per-architecture rule): False keeps a module in
    float; a dict (e.g. gemma4 routers at 8 bits) is returned as the module's required setting."""
    predicate = getattr(model, "quant_predicate", None)
    out = []
    for path, module in model.named_modules():
        if not hasattr(module, "to_quantized") or not hasattr(module, "weight"):
            continue
        if hasattr(module, "bits") or is_float_only(path):
            continue
        if module.weight.ndim < 2 or module.weight.shape[-1] % _SMALLEST_GROUP:
            continue
        required = predicate(path, module) if predicate is not None else True
        if required is False:
            continue
        out.append((path, module, required if isinstance(required, dict) else None))
    return out


def float_bytes_of(model: Any) -> int:
    """Bytes per element of the model's float weights (the dtype quantization scales will have)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    sizes = [v.dtype.size for _, v in tree_flatten(model.parameters())
             if isinstance(v, mx.array) and mx.issubdtype(v.dtype, mx.floating) and v.ndim >= 2]
    return max(set(sizes), key=sizes.count) if sizes else 2


def cast_model(model: Any, dtype: str) -> None:
    """Cast the float parameters the model allows to `dtype` (as mlx-lm convert --dtype does)."""
    import mlx.core as mx
    from mlx.utils import tree_map_with_path

    target = getattr(mx, dtype)
    cast = getattr(model, "cast_predicate", lambda _: True)
    model.update(tree_map_with_path(
        lambda k, v: v.astype(target) if cast(k) and mx.issubdtype(v.dtype, mx.floating) else v,
        model.parameters()))


def inventory(model: Any, *, name: str = "", model_hash: str = "") -> SensitivityTable:
    """A score-less table of the model's quantizable tensors plus the bits of everything else."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    tensors: list[TensorScores] = []
    quantized_weights: set[str] = set()
    required: dict[str, str] = {}
    odd_dtypes: dict[str, int] = {}
    for path, module, req in quantizable_modules(model):
        shape = tuple(int(s) for s in module.weight.shape)
        params = 1
        for s in shape:
            params *= s
        tensors.append(TensorScores(path=path, shape=shape, params=params, kind=tensor_kind(path),
                                    layer=layer_index(path)))
        quantized_weights.add(f"{path}.weight")
        odd_dtypes[path] = module.weight.dtype.size
        if req:
            cand = Candidate(int(req.get("bits", 8)), int(req.get("group_size", 64)), req.get("mode", "affine"))
            required[path] = cand.key
    tensors.sort(key=_order)
    fixed_bits = fixed_params = 0
    for key, value in tree_flatten(model.parameters()):
        if key in quantized_weights or not isinstance(value, mx.array):
            continue
        fixed_bits += value.nbytes * 8
        fixed_params += value.size
    table = SensitivityTable(model=name, model_hash=model_hash, calibration_hash="", candidates=[],
                             float_bytes=float_bytes_of(model), fixed_bits=fixed_bits,
                             fixed_params=fixed_params, tensors=tensors)
    if required:
        table.meta["required"] = required
    odd = {p: b for p, b in odd_dtypes.items() if b != table.float_bytes}
    if odd:  # tensors stored in another float dtype than the model's (their scales/float cost differ)
        table.meta["float_bytes_by_path"] = odd
    return table


def _order(t: TensorScores) -> tuple[int, int, str]:
    """Embeddings first, then blocks in order, then the rest (final norm's neighbours, lm_head)."""
    if t.layer is not None:
        return (1, t.layer, t.path)
    return (0 if "embed" in t.path else 2, 0, t.path)


def load_inventory(path: Path, *, dtype: str | None = None) -> SensitivityTable:
    """Inventory of a model folder, loaded lazily (weights are not read), as it will be written when
    cast to `dtype` (None: as stored). Call on the engine thread."""
    from ..engine.loader import open_model

    model, _ = open_model(Path(path), lazy=True)
    if dtype is not None:
        cast_model(model, dtype)
    return inventory(model, name=str(path))

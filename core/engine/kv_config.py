"""KV-cache bits for a model: off, uniform 4/8-bit, or the per-layer plan in `kv_config.json`.

`kv_config.json` sits next to the model's weights; `temper kv-calibrate` writes it from a KV sensitivity
pass (core/quant/kv_sensitivity.py). When present it is the default for chat (kv bits unset); kv bits 0
turns KV quantization off, 4 or 8 use that width on every layer.

Format (version 1):
    {"format": "temper-kv/1", "group_size": 64, "bits": [8, 4, ...],   # one per cache, mlx-lm order
     "layers": [0, 1, ...],  "kinds": ["sliding", "full", ...],         # the layer owning each cache
     "target_bits": 6.0, "kl": {"4": [...], "8": [...]}, "tokens": 512}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import TemperError
from .kv_bits import KV_BITS, check_kv_bits
from .kv_cache import KVPlan, kv_group_for

FILE = "kv_config.json"
FORMAT = "temper-kv/1"


def head_dims(model: Any) -> set[int]:
    dims: set[int] = set()
    for owner in (model, getattr(model, "language_model", None)):
        args = getattr(owner, "args", None)
        for key in ("head_dim", "global_head_dim"):
            if isinstance(getattr(args, key, None), int) and getattr(args, key):
                dims.add(getattr(args, key))
        if not dims and args is not None and getattr(args, "num_attention_heads", None) \
                and getattr(args, "hidden_size", None):
            dims.add(args.hidden_size // args.num_attention_heads)
        if dims:
            break
    return dims


def kv_group_size(model: Any) -> int:
    return kv_group_for(head_dims(model))


def n_caches(model: Any) -> int:
    from mlx_lm.models.cache import make_prompt_cache

    return len(make_prompt_cache(model))


def read(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TemperError(f"{path}: not readable JSON ({exc}): delete it or run `temper kv-calibrate` again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("bits"), list):
        raise TemperError(f"{path}: not a {FORMAT} file: delete it or run `temper kv-calibrate` again")
    bad = [b for b in data["bits"] if b not in (*KV_BITS, None)]
    if bad:
        raise TemperError(f"{path}: kv bits must be 4, 8 or null (got {bad[0]!r})")
    return data


def write(folder: Path, data: dict[str, Any]) -> Path:
    path = Path(folder) / FILE
    atomic.write_text(path, json.dumps({"format": FORMAT, **data}, indent=1) + "\n")
    return path


def plan_for(model: Any, folder: Path | None, kv_bits: int | None) -> KVPlan | None:
    """The plan chat and bench use: `kv_bits` None = kv_config.json if there is one, else float."""
    if kv_bits == 0:
        return None
    if kv_bits is not None:
        check_kv_bits(kv_bits)
        return KVPlan.uniform(n_caches(model), kv_bits, kv_group_size(model))
    data = read(folder) if folder is not None else None
    if data is None:
        return None
    n = n_caches(model)
    if len(data["bits"]) != n:
        raise TemperError(f"{Path(folder) / FILE} plans {len(data['bits'])} caches and the model has {n}: "
                          "run `temper kv-calibrate` again for this model")
    gs = data.get("group_size") or kv_group_size(model)
    if any(d % gs for d in head_dims(model)):
        raise TemperError(f"{Path(folder) / FILE}: group size {gs} does not divide the attention heads")
    return KVPlan(tuple(data["bits"]), gs, FILE)


def describe(plan: KVPlan | None) -> str:
    if plan is None:
        return "float"
    if plan.source != FILE:
        return plan.source
    counts = {b: plan.bits.count(b) for b in sorted({b for b in plan.bits if b}, reverse=True)}
    return "kv_config.json (" + ", ".join(f"{n}x{b}-bit" for b, n in counts.items()) + ")"

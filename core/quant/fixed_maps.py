"""Fixed-map recipes: a per-tensor rule `choose(path, shape) -> candidate key`, turned into a Plan.

uniform-B[-gN], oq8, unsloth-B and mlx-lm's mixed_* predicates are rules of this kind (no scores needed);
the registry in recipes.py names them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import QuantError
from .allocate import DEFAULT_PROTECT, Protect
from .candidates import AFFINE_BITS, Candidate
from .inventory import layer_index
from .plan import FLOAT, Plan, PlanEntry, tensor_bits
from .scores import SensitivityTable

MIXED = {"mixed_2_6": (2, 6), "mixed_3_4": (3, 4), "mixed_3_6": (3, 6), "mixed_4_6": (4, 6)}
Chooser = Callable[[str, tuple[int, ...]], str]


def plan_from_predicate(
    table: SensitivityTable, choose: Callable[[str, tuple[int, ...]], str], *, method: str,
    protect: Sequence[Protect] = (), pins: dict[str, str] | None = None, float_bytes: int | None = None,
    default_protect: Sequence[Protect] = DEFAULT_PROTECT,
) -> Plan:
    """A plan from a per-tensor rule `choose(path, shape) -> key`; pins win, then protections."""
    fb = float_bytes or table.float_bytes
    pins = dict(pins or {})
    unknown = sorted(set(pins) - {t.path for t in table.tensors})
    if unknown:
        raise QuantError(f"pin names no quantizable tensor: {unknown[0]}")
    required = table.meta.get("required", {}) if isinstance(table.meta, dict) else {}
    odd = table.meta.get("float_bytes_by_path", {}) if fb == table.float_bytes else {}
    entries = []
    for t in table.tensors:
        guard = next((p for p in [*protect, *default_protect] if p.matches(t.path)), None)
        if t.path in pins:
            key, source = pins[t.path], "pinned"
            if key != FLOAT and not Candidate.from_key(key).fits(t.shape):
                raise QuantError(f"pin {key} for {t.path} does not fit its shape {t.shape}")
        elif guard is not None and guard.floor is None:
            key, source = FLOAT, "protected"
        elif t.path in required and method not in MIXED:
            key, source = required[t.path], "model rule"
        else:
            key, source = choose(t.path, t.shape), "recipe"
            if guard is not None and key != FLOAT and Candidate.from_key(key).bits < guard.floor:
                c = Candidate.from_key(key)
                key, source = Candidate(valid_width(guard.floor), c.group_size).key, "protected"
        dkl = (0.0 if t.scores else None) if key == FLOAT else t.scores.get(key)
        bits = tensor_bits(key, t.params, odd.get(t.path, fb))
        entries.append(PlanEntry(t.path, tuple(t.shape), t.params, key, bits, dkl, source))
    fixed = table.fixed_bits if fb == table.float_bytes else round(table.fixed_bits * fb / table.float_bytes)
    return Plan(model=table.model, method=method, float_bytes=fb, fixed_bits=fixed,
                fixed_params=table.fixed_params, entries=entries,
                meta={"model_hash": table.model_hash, "calibration_hash": table.calibration_hash})


def valid_width(bits: int) -> int:
    """The smallest affine width ≥ bits (widths are 2,3,4,5,6,8), at most 8."""
    return next((b for b in AFFINE_BITS if b >= bits), 8)


def fit(bits: int, group: int, shape: tuple[int, ...]) -> str:
    """Candidate key at `bits`, with the largest group ≤ `group` that divides the input size; else float."""
    for g in (group, 64, 32):
        if g <= group:
            c = Candidate(valid_width(bits), g)
            if c.fits(shape):
                return c.key
    return FLOAT


def unsloth_map(base: int) -> Callable[[str, tuple[int, ...]], str]:
    if not 2 <= base <= 8:
        raise QuantError(f"unsloth base width must be 2..8, not {base}")
    rules = (("o_proj", None), ("gate_proj", 0), ("up_proj", 0), ("down_proj", 1), ("q_proj", 2),
             ("k_proj", 2), ("v_proj", 2), ("embed_tokens", 2), ("lm_head", 2))

    def choose(path: str, shape: tuple[int, ...]) -> str:
        kind = path.rsplit(".", 1)[-1]
        for name, extra in rules:
            if kind == name:
                return FLOAT if extra is None else fit(min(base + extra, 8), 64, shape)
        return fit(base, 64, shape)

    return choose


def mixed_map(name: str, table: SensitivityTable, group_size: int = 64) -> Callable[[str, tuple[int, ...]], str]:
    """mlx-lm convert.mixed_quant_predicate_builder, as a plan (same layer rule, same skips)."""
    low, high = MIXED[name]
    down = [t.path for t in table.tensors if "down_proj" in t.path]
    if not down:
        raise QuantError(f"{name} needs a model with down_proj layers (mlx-lm's rule is defined on them)")
    location = next((i for i, part in enumerate(down[0].split(".")) if part.isdigit()), None)
    layers = [layer_index(t.path) for t in table.tensors]
    num_layers = max((x for x in layers if x is not None), default=-1) + 1

    def choose(path: str, shape: tuple[int, ...]) -> str:
        if shape[-1] % group_size:        # mlx-lm's quantize_model skips these (stay float)
            return FLOAT
        parts = path.split(".")
        index = int(parts[location]) if location is not None and len(parts) > location \
            and parts[location].isdigit() else 0
        more = index < num_layers // 8 or index >= 7 * num_layers // 8 or (index - num_layers // 8) % 3 == 2
        if ("v_proj" in path or "v_a_proj" in path or "v_b_proj" in path) and more:
            return Candidate(high, group_size).key
        if "down_proj" in path and more:
            return Candidate(high, group_size).key
        if "lm_head" in path:
            return Candidate(high, group_size).key
        return Candidate(low, group_size).key

    return choose

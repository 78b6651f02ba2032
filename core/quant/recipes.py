"""Named recipes: starting points expressed through the same allocator (budgeted) or a predicate (fixed map).

- `temper`        the KL knapsack over every width / group / mode you allow, float allowed, under your budget
- `uniform-B[-gN]` every tensor at B bits (group N, default 64); tensors no group fits stay float
- `oq2..oq8`      oMLX's oQ levels: affine gs64 knapsack at the level's target bpw, never above its hard
                  cap; lm_head ≥ 8 bits, routers float (oq8: all 8-bit, position rules only)
- `optiq-like`    mlx-optiq's scheme done right: KL knapsack over widths {4, 8} (gs64), real-bytes budget
- `unsloth-B`     Unsloth-Dynamic's fixed map: gate/up B, down B+1, q/k/v B+2, embeddings/lm_head B+2,
                  o_proj float (widths rounded up to a valid one, at most 8)
- `mixed_2_6`, `mixed_3_4`, `mixed_3_6`, `mixed_4_6`: mlx-lm's predicates, reproduced path for path

Every recipe yields a `Plan`; a budget given with a fixed-map recipe is still a hard cap (checked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import QuantError
from .allocate import DEFAULT_PROTECT, Protect, allocate, budget_bits
from .candidates import AFFINE_BITS, Candidate, grid
from .inventory import layer_index
from .plan import FLOAT, Plan, PlanEntry, tensor_bits
from .scores import SensitivityTable

OQ_LEVELS = {"2": (2.8, 3.0), "3": (3.5, 3.7), "3.5": (3.8, 4.0), "4": (4.6, 4.7), "5": (5.5, 5.7),
             "6": (6.5, 6.7)}
MIXED = {"mixed_2_6": (2, 6), "mixed_3_4": (3, 4), "mixed_3_6": (3, 6), "mixed_4_6": (4, 6)}
OPTIQ_DEFAULT_BPW = 5.0


@dataclass
class RecipeRequest:
    """What the user asked besides the recipe name (all optional)."""

    bpw: float | None = None
    size_gb: float | None = None
    candidates: Sequence[Candidate] | None = None       # from --bits / --group-sizes / --modes
    protect: Sequence[Protect] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    min_bits: int | None = None
    max_bits: int | None = None
    float_bytes: int | None = None


@dataclass(frozen=True)
class RecipeInfo:
    name: str
    needs_scores: bool
    description: str


def recipe_names() -> list[str]:
    return ["temper", "uniform-B[-gN]", *(f"oq{k}" for k in OQ_LEVELS), "oq8", "optiq-like", "unsloth-B", *MIXED]


def describe(name: str) -> RecipeInfo:
    """Parse a recipe name; unknown names raise a QuantError that lists the recipes."""
    if name == "temper":
        return RecipeInfo(name, True, "KL knapsack over the allowed widths, groups and modes")
    if m := re.fullmatch(r"uniform-(\d)(?:-g(\d+))?", name):
        return RecipeInfo(name, False, f"every tensor at {m[1]} bits, group {m[2] or 64}")
    if m := re.fullmatch(r"oq(\d(?:\.5)?)", name):
        if m[1] == "8":
            return RecipeInfo(name, False, "oQ8: all tensors 8-bit gs64, routers float")
        if m[1] in OQ_LEVELS:
            target, cap = OQ_LEVELS[m[1]]
            return RecipeInfo(name, True, f"oQ{m[1]}: gs64 knapsack, target {target} bpw, cap {cap}")
    if name == "optiq-like":
        return RecipeInfo(name, True, "KL knapsack over widths 4/8 gs64, real-bytes budget")
    if m := re.fullmatch(r"unsloth-(\d)", name):
        return RecipeInfo(name, False, f"Unsloth-Dynamic map at base {m[1]} bits")
    if name in MIXED:
        return RecipeInfo(name, False, f"mlx-lm's {name} predicate")
    raise QuantError(f"unknown recipe {name!r}: choose from {', '.join(recipe_names())}")


def build_plan(name: str, table: SensitivityTable, request: RecipeRequest | None = None) -> Plan:
    """The plan recipe `name` gives for this model (table: inventory, with scores where needed)."""
    req = request or RecipeRequest()
    info = describe(name)
    fb = req.float_bytes or table.float_bytes
    protect = [*req.protect, *DEFAULT_PROTECT]
    if name == "temper":
        if req.bpw is None and req.size_gb is None:
            raise QuantError("recipe temper needs a budget: --bpw X or --size-gb G")
        return allocate(table, bpw=req.bpw, size_gb=req.size_gb, candidates=req.candidates, protect=protect,
                        pins=req.pins, min_bits=req.min_bits, max_bits=req.max_bits, float_bytes=fb)
    if (m := re.fullmatch(r"oq(\d(?:\.5)?)", name)) and m[1] != "8":
        target, cap = OQ_LEVELS[m[1]]
        bpw = req.bpw if req.bpw is not None else (None if req.size_gb is not None else target)
        return allocate(table, bpw=bpw, size_gb=req.size_gb, cap_bpw=None if req.bpw or req.size_gb else cap,
                        candidates=grid(AFFINE_BITS, (64,)), protect=[*protect, Protect("lm_head", 8)],
                        pins=req.pins, allow_float=False, float_bytes=fb, method=name)
    if name == "optiq-like":
        bpw = req.bpw if (req.bpw is not None or req.size_gb is not None) else OPTIQ_DEFAULT_BPW
        return allocate(table, bpw=bpw, size_gb=req.size_gb, candidates=grid((4, 8), (64,)), protect=protect,
                        pins=req.pins, allow_float=False, float_bytes=fb, method=name)
    chooser = _predicate(name, table)
    plan = plan_from_predicate(table, chooser, method=name, protect=req.protect, pins=req.pins, float_bytes=fb,
                               default_protect=() if name in MIXED else DEFAULT_PROTECT)
    if req.bpw is not None or req.size_gb is not None:
        cap = budget_bits(plan.params, bpw=req.bpw, size_gb=req.size_gb)
        plan.budget_bits = cap
        if plan.total_bits > cap:
            raise QuantError(f"recipe {name} gives {plan.real_bpw:.3f} bpw ({plan.size_bytes / 1e9:.3f} GB), "
                             f"over the budget of {cap / plan.params:.3f} bpw")
    assert info.needs_scores is False
    return plan


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
                key, source = Candidate(_valid_width(guard.floor), c.group_size).key, "protected"
        dkl = (0.0 if t.scores else None) if key == FLOAT else t.scores.get(key)
        bits = tensor_bits(key, t.params, odd.get(t.path, fb))
        entries.append(PlanEntry(t.path, tuple(t.shape), t.params, key, bits, dkl, source))
    fixed = table.fixed_bits if fb == table.float_bytes else round(table.fixed_bits * fb / table.float_bytes)
    return Plan(model=table.model, method=method, float_bytes=fb, fixed_bits=fixed,
                fixed_params=table.fixed_params, entries=entries,
                meta={"model_hash": table.model_hash, "calibration_hash": table.calibration_hash})


def _valid_width(bits: int) -> int:
    """The smallest affine width ≥ bits (widths are 2,3,4,5,6,8), at most 8."""
    return next((b for b in AFFINE_BITS if b >= bits), 8)


def _fit(bits: int, group: int, shape: tuple[int, ...]) -> str:
    """Candidate key at `bits`, with the largest group ≤ `group` that divides the input size; else float."""
    for g in (group, 64, 32):
        if g <= group:
            c = Candidate(_valid_width(bits), g)
            if c.fits(shape):
                return c.key
    return FLOAT


def _predicate(name: str, table: SensitivityTable) -> Callable[[str, tuple[int, ...]], str]:
    if m := re.fullmatch(r"uniform-(\d)(?:-g(\d+))?", name):
        bits, group = int(m[1]), int(m[2] or 64)
        if bits not in AFFINE_BITS:
            raise QuantError(f"uniform width must be one of {', '.join(map(str, AFFINE_BITS))}, not {bits}")
        Candidate(bits, group)  # validates the group size
        return lambda path, shape: _fit(bits, group, shape)
    if name == "oq8":
        return lambda path, shape: _fit(8, 64, shape)
    if m := re.fullmatch(r"unsloth-(\d)", name):
        return _unsloth(int(m[1]))
    if name in MIXED:
        return _mixed(name, table)
    raise QuantError(f"recipe {name} has no predicate")  # pragma: no cover - describe() guards


def _unsloth(base: int) -> Callable[[str, tuple[int, ...]], str]:
    if not 2 <= base <= 8:
        raise QuantError(f"unsloth base width must be 2..8, not {base}")
    rules = (("o_proj", None), ("gate_proj", 0), ("up_proj", 0), ("down_proj", 1), ("q_proj", 2),
             ("k_proj", 2), ("v_proj", 2), ("embed_tokens", 2), ("lm_head", 2))

    def choose(path: str, shape: tuple[int, ...]) -> str:
        kind = path.rsplit(".", 1)[-1]
        for name, extra in rules:
            if kind == name:
                return FLOAT if extra is None else _fit(min(base + extra, 8), 64, shape)
        return _fit(base, 64, shape)

    return choose


def _mixed(name: str, table: SensitivityTable, group_size: int = 64) -> Callable[[str, tuple[int, ...]], str]:
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

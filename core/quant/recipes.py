"""The recipe registry: every recipe declares its candidate grid, whether it needs scores, and its budget rule.

- `temper`        the KL knapsack over every width / group / mode the request allows, float allowed; budget
                  from the request (default 4.5 real bpw)
- `oq2..oq6`      oMLX's oQ levels: affine gs64 knapsack at the level's target bpw, never above its hard cap
                  (a budget in the request replaces both); lm_head ≥ 8 bits, routers float
- `optiq-like`    mlx-optiq's scheme done right: KL knapsack over widths {4, 8} (gs64), real-bytes budget 5.0
- `uniform-B[-gN]`, `oq8`, `unsloth-B`, `mixed_2_6|3_4|3_6|4_6`: fixed maps (fixed_maps.py), no scores

A recipe with a grid of its own chooses from that grid ∩ the request's grid (bits × group sizes × modes), so
a profile's `bits` narrow an oQ level instead of being dropped; an empty intersection is a one-line error.
A fixed map uses no grid: a request that narrows it is refused. A budget with a fixed map is a hard cap.
The app's recipe menu is `menu()`; `temper quantize --recipe` takes any name `recipe()` parses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import QuantError
from .allocate import DEFAULT_PROTECT, Protect, allocate, budget_bits
from .candidates import AFFINE_BITS, AFFINE_GROUPS, MODES, Candidate, grid
from .fixed_maps import MIXED, Chooser, fit, mixed_map, plan_from_predicate, unsloth_map
from .plan import Plan
from .scores import SensitivityTable

# oMLX levels, defined here only: name -> (target real bpw, hard cap); see shared/anchors.md.
OQ_LEVELS = {"oq2": (2.8, 3.0), "oq3": (3.5, 3.7), "oq3.5": (3.8, 4.0), "oq4": (4.6, 4.7), "oq5": (5.5, 5.7),
             "oq6": (6.5, 6.7)}
TEMPER_DEFAULT_BPW = 4.5
OPTIQ_DEFAULT_BPW = 5.0
FULL_GRID = (tuple(AFFINE_BITS), tuple(AFFINE_GROUPS), ("affine",))   # the request's default grid


@dataclass
class RecipeRequest:
    """What the allocator is given besides the recipe (derived from a QuantRequest: `QuantRequest.plan_options`)."""

    bpw: float | None = None
    size_gb: float | None = None
    candidates: Sequence[Candidate] | None = None       # the request's grid (None: the table's candidates)
    protect: Sequence[Protect] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    min_bits: int | None = None
    max_bits: int | None = None
    float_bytes: int | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    label: str                                      # one line for menus
    needs_scores: bool
    grid: tuple[Candidate, ...] | None = None       # its own grid (∩ the request's); None: the request's
    default_bpw: float | None = None                # budget when the request gives none
    cap_bpw: float | None = None                    # hard cap when the request gives no budget
    allow_float: bool = True
    protect: tuple[Protect, ...] = ()               # besides the request's and DEFAULT_PROTECT
    chooser: Callable[[SensitivityTable], Chooser] | None = None   # a fixed map
    default_protect: tuple[Protect, ...] = DEFAULT_PROTECT

    @property
    def description(self) -> str:
        return self.label

    @property
    def fixed_map(self) -> bool:
        return self.chooser is not None

    def candidates(self, asked: Sequence[Candidate] | None) -> list[Candidate] | None:
        """What the allocator chooses from: the request's grid, narrowed to this recipe's own."""
        if self.fixed_map:
            return None
        if self.grid is None:
            return None if asked is None else list(asked)
        if asked is None:
            return list(self.grid)
        chosen = [c for c in self.grid if c in set(asked)]
        if not chosen:
            own = ", ".join(str(c) for c in self.grid)
            raise QuantError(f"recipe {self.name} chooses from {own}: the widths, group sizes and modes "
                             "asked for leave none of them")
        return chosen

    def check_grid(self, bits: Sequence[int], group_sizes: Sequence[int], modes: Sequence[str]) -> None:
        """Refuse a grid this recipe would not honour (same rule for a profile, the CLI and the app)."""
        narrowed = (tuple(sorted(bits)), tuple(sorted(group_sizes)), tuple(modes)) != FULL_GRID
        if self.fixed_map and narrowed:
            raise QuantError(f"recipe {self.name} is a fixed map: bits, group sizes and modes do not apply "
                             "(leave them at their defaults, or use recipe temper)")
        self.candidates(grid(bits, group_sizes, modes))

    def plan(self, table: SensitivityTable, req: RecipeRequest) -> Plan:
        fb = req.float_bytes or table.float_bytes
        if self.chooser is not None:
            plan = plan_from_predicate(table, self.chooser(table), method=self.name, protect=req.protect,
                                       pins=req.pins, float_bytes=fb, default_protect=self.default_protect)
            if req.bpw is not None or req.size_gb is not None:
                cap = budget_bits(plan.params, bpw=req.bpw, size_gb=req.size_gb)
                plan.budget_bits = cap
                if plan.total_bits > cap:
                    raise QuantError(f"recipe {self.name} gives {plan.real_bpw:.3f} bpw "
                                     f"({plan.size_bytes / 1e9:.3f} GB), over the budget of "
                                     f"{cap / plan.params:.3f} bpw")
            return plan
        given = req.bpw is not None or req.size_gb is not None
        bpw = req.bpw if given else self.default_bpw
        if bpw is None and not given:
            raise QuantError(f"recipe {self.name} needs a budget: --bpw X or --size-gb G")
        return allocate(table, bpw=bpw, size_gb=req.size_gb, cap_bpw=None if given else self.cap_bpw,
                        candidates=self.candidates(req.candidates),
                        protect=[*req.protect, *self.protect, *DEFAULT_PROTECT], pins=req.pins,
                        min_bits=req.min_bits, max_bits=req.max_bits, allow_float=self.allow_float,
                        float_bytes=fb, method=self.name)


def _gs64(bits: Sequence[int]) -> tuple[Candidate, ...]:
    return tuple(Candidate(b, 64) for b in bits)


def _named() -> dict[str, Recipe]:
    out = {"temper": Recipe("temper", "temper: measured KL knapsack at a real-bpw budget", True,
                            default_bpw=TEMPER_DEFAULT_BPW)}
    for name, (target, cap) in OQ_LEVELS.items():
        out[name] = Recipe(name, f"{name.replace('oq', 'oQ')}: target {target:g} bpw, cap {cap:g}",
                           True, grid=_gs64(AFFINE_BITS), default_bpw=target, cap_bpw=cap, allow_float=False,
                           protect=(Protect("lm_head", 8),))
    out["oq8"] = Recipe("oq8", "oQ8: all tensors 8-bit gs64, routers float", False,
                        chooser=lambda table: lambda path, shape: fit(8, 64, shape))
    out["optiq-like"] = Recipe("optiq-like", f"optiq-like: KL knapsack over widths 4/8 at "
                                             f"{OPTIQ_DEFAULT_BPW:g} bpw", True, grid=_gs64((4, 8)),
                               default_bpw=OPTIQ_DEFAULT_BPW, allow_float=False)
    for name in MIXED:
        out[name] = Recipe(name, f"mlx-lm {name} predicate (for comparison)", False,
                           chooser=lambda table, n=name: mixed_map(n, table), default_protect=())
    return out


NAMED = _named()


def _uniform(bits: int, group: int) -> Recipe:
    if bits not in AFFINE_BITS:
        raise QuantError(f"uniform width must be one of {', '.join(map(str, AFFINE_BITS))}, not {bits}")
    Candidate(bits, group)  # validates the group size
    suffix = "" if group == 64 else f"-g{group}"
    return Recipe(f"uniform-{bits}{suffix}", f"uniform {bits}-bit (g{group})", False,
                  chooser=lambda table: lambda path, shape: fit(bits, group, shape))


def _unsloth(base: int) -> Recipe:
    unsloth_map(base)  # validates the base width
    return Recipe(f"unsloth-{base}", f"unsloth-like dynamic map at base {base}-bit", False,
                  chooser=lambda table: unsloth_map(base))


FAMILIES: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], Recipe]], ...] = (
    ("uniform-B[-gN]", re.compile(r"uniform-(\d)(?:-g(\d+))?"), lambda m: _uniform(int(m[1]), int(m[2] or 64))),
    ("unsloth-B", re.compile(r"unsloth-(\d)"), lambda m: _unsloth(int(m[1]))),
)


def recipe_names() -> list[str]:
    return ["temper", "uniform-B[-gN]", *OQ_LEVELS, "oq8", "optiq-like", "unsloth-B", *MIXED]


def recipe(name: str) -> Recipe:
    """The recipe called `name`; unknown names raise a QuantError that lists the recipes."""
    if name in NAMED:
        return NAMED[name]
    for _, pattern, make in FAMILIES:
        if m := pattern.fullmatch(name):
            return replace(make(m), name=name)
    raise QuantError(f"unknown recipe {name!r}: choose from {', '.join(recipe_names())}")


describe = recipe


def menu() -> list[Recipe]:
    """The recipes the app offers, in order."""
    return [NAMED["temper"], *(_uniform(b, 64) for b in (3, 4, 6, 8)), *(NAMED[n] for n in OQ_LEVELS),
            NAMED["oq8"], NAMED["optiq-like"], *(_unsloth(b) for b in (3, 4)), NAMED["mixed_3_6"],
            NAMED["mixed_4_6"]]


def build_plan(name: str, table: SensitivityTable, request: RecipeRequest | None = None) -> Plan:
    """The plan recipe `name` gives for this model (table: inventory, with scores where needed)."""
    return recipe(name).plan(table, request or RecipeRequest())


__all__ = ["FAMILIES", "MODES", "NAMED", "OQ_LEVELS", "Recipe", "RecipeRequest", "build_plan", "describe", "menu",
           "recipe", "recipe_names"]

"""Budgeted mixed precision: pick one candidate per tensor to minimise Σ predicted ΔKL under a hard cap.

A multiple-choice knapsack. Costs are exact storage bits (`plan.tensor_bits`), the budget is a cap on
the model's real bits per weight (or on its size): every byte counts, never-quantized tensors included.

Solver: dominated options are dropped, then a dynamic programme over the budget slack in units of the
greatest common divisor of the cost steps (exactly optimal) — or, when that grid would be too fine, in
coarser units with costs rounded *up* (still never over budget, optimal up to the rounding) followed by
a greedy fill of what the rounding left. The LP relaxation (upper convex hull per tensor, filled by
efficiency) gives a lower bound on the optimum, reported in the plan so its quality is visible.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import QuantError
from .candidates import Candidate
from .plan import FLOAT, Plan, PlanEntry, tensor_bits
from .scores import SensitivityTable, TensorScores

MAX_DP_CELLS = 1 << 16
DP_MEMORY = 64 << 20            # bytes of back-pointers the DP may hold
GB = 1e9                        # --size-gb is in decimal gigabytes (bytes / 1e9), as disks count


@dataclass(frozen=True)
class Protect:
    """Tensors matching `pattern` (fnmatch glob on the module path) stay float, or at ≥ `floor` bits."""

    pattern: str
    floor: int | None = None

    @classmethod
    def parse(cls, text: str) -> Protect:
        """'lm_head' keeps it float; 'lm_head:8' lets the allocator choose 8 bits or more (or float)."""
        pattern, _, floor = text.partition(":")
        if not pattern:
            raise QuantError(f"bad protect pattern {text!r} (expected e.g. 'lm_head' or '*embed*:6')")
        try:
            return cls(pattern, int(floor) if floor else None)
        except ValueError as exc:
            raise QuantError(f"bad protect floor in {text!r}: expected a number of bits") from exc

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.pattern) or fnmatch.fnmatchcase(path, f"*{self.pattern}")


# Routers / MoE gates: tiny, and a wrong expert choice is catastrophic. oQ keeps them fp16 too.
DEFAULT_PROTECT = (Protect("*.router.proj"), Protect("*.mlp.gate"), Protect("*.shared_expert_gate"))


@dataclass(frozen=True)
class Option:
    key: str
    cost: int           # bits
    dkl: float


def parse_pins(items: Iterable[str]) -> dict[str, str]:
    """['model.layers.0.mlp.down_proj=affine:8b:g64', 'lm_head=float'] -> {path: key} (keys validated)."""
    pins = {}
    for item in items:
        path, sep, key = item.partition("=")
        if not sep or not path or not key:
            raise QuantError(f"bad pin {item!r} (expected PATH=KEY, e.g. lm_head=affine:8b:g64 or lm_head=float)")
        if key != FLOAT:
            Candidate.from_key(key)
        pins[path] = key
    return pins


def budget_bits(params: int, *, bpw: float | None = None, size_gb: float | None = None) -> int:
    if (bpw is None) == (size_gb is None):
        raise QuantError("give exactly one budget: bits per weight or size in GB")
    if bpw is not None:
        if not bpw > 0:
            raise QuantError(f"bits-per-weight budget must be positive, not {bpw}")
        return math.floor(bpw * params)
    if not size_gb > 0:
        raise QuantError(f"size budget must be positive, not {size_gb} GB")
    return math.floor(size_gb * GB * 8)


def tensor_options(
    t: TensorScores, candidates: Sequence[Candidate], float_bytes: int, *,
    pin: str | None = None, required: str | None = None, protect: Protect | None = None,
    min_bits: int | None = None, max_bits: int | None = None, allow_float: bool = True,
) -> tuple[list[Option], str]:
    """The options one tensor may take and why (pinned / model rule / protected / allocated)."""
    def option(key: str) -> Option:
        dkl = 0.0 if key == FLOAT else t.scores.get(key, math.nan)
        return Option(key, tensor_bits(key, t.params, float_bytes), dkl)

    def check_fits(key: str, what: str) -> None:
        if key != FLOAT and not Candidate.from_key(key).fits(t.shape):
            raise QuantError(f"{what} {key} for {t.path} does not fit its shape {t.shape}: "
                             f"the input size {t.shape[-1]} must be a multiple of the group size")

    if pin is not None:
        check_fits(pin, "pin")
        return [option(pin)], "pinned"
    if required is not None:
        return [option(required)], "model rule"
    usable = [c for c in candidates if c.fits(t.shape)]
    if protect is not None:
        if protect.floor is None:
            return [option(FLOAT)], "protected"
        opts = [option(c.key) for c in usable if c.bits >= protect.floor and c.key in t.scores]
        return [*opts, option(FLOAT)], "protected"
    opts = [option(c.key) for c in usable if c.key in t.scores
            and (min_bits is None or c.bits >= min_bits) and (max_bits is None or c.bits <= max_bits)]
    if not usable:
        return [option(FLOAT)], "no candidate fits"
    if allow_float:
        opts.append(option(FLOAT))
    return opts, "allocated"


def allocate(
    table: SensitivityTable,
    *,
    bpw: float | None = None,
    size_gb: float | None = None,
    cap_bpw: float | None = None,
    candidates: Sequence[Candidate] | None = None,
    protect: Sequence[Protect] = DEFAULT_PROTECT,
    pins: Mapping[str, str] | None = None,
    min_bits: int | None = None,
    max_bits: int | None = None,
    allow_float: bool = True,
    float_bytes: int | None = None,
    method: str = "temper",
) -> Plan:
    """Minimise Σ ΔKL under the budget (a hard cap). `cap_bpw`: where the target cannot be met, accept
    up to this (oQ-style target + cap); beyond it, or without it, an impossible budget is a QuantError
    that names the smallest reachable bpw."""
    fb = float_bytes or table.float_bytes
    fixed_bits = table.fixed_bits if fb == table.float_bytes else round(table.fixed_bits * fb / table.float_bytes)
    cands = list(candidates) if candidates is not None else table.candidate_objects()
    pins = dict(pins or {})
    paths = {t.path for t in table.tensors}
    unknown = sorted(set(pins) - paths)
    if unknown:
        raise QuantError(f"pin names no quantizable tensor: {unknown[0]}")
    if not any(t.scores for t in table.tensors) and not all(t.path in pins for t in table.tensors):
        raise QuantError("a budgeted allocation needs sensitivity scores: run `temper sensitivity` "
                         "or pass --sensitivity FILE (or choose a recipe that needs none, e.g. uniform-4)")
    required = table.meta.get("required", {}) if isinstance(table.meta, dict) else {}
    options: list[list[Option]] = []
    sources: list[str] = []
    odd = table.meta.get("float_bytes_by_path", {}) if fb == table.float_bytes else {}
    for t in table.tensors:
        guard = next((p for p in protect if p.matches(t.path)), None)
        opts, source = tensor_options(t, cands, odd.get(t.path, fb), pin=pins.get(t.path), required=required.get(t.path),
                                      protect=guard, min_bits=min_bits, max_bits=max_bits,
                                      allow_float=allow_float)
        opts = [o if not math.isnan(o.dkl) else Option(o.key, o.cost, 0.0) for o in opts] \
            if source in ("pinned", "model rule") else [o for o in opts if not math.isnan(o.dkl)]
        if not opts:
            raise QuantError(f"{t.path}: no candidate has a sensitivity score (keys scored: "
                             f"{', '.join(sorted(t.scores)) or 'none'})")
        options.append(opts)
        sources.append(source)

    params = sum(t.params for t in table.tensors) + table.fixed_params
    budget = budget_bits(params, bpw=bpw, size_gb=size_gb)
    floor_bits = fixed_bits + sum(min(o.cost for o in opts) for opts in options)
    notes = []
    if floor_bits > budget:
        cap = None if cap_bpw is None else math.floor(cap_bpw * params)
        if cap is None or floor_bits > cap:
            limit = f"{budget / params:.3f}" if cap is None else f"{budget / params:.3f} (cap {cap_bpw})"
            raise QuantError(f"budget {limit} bpw is impossible: the smallest reachable is "
                             f"{floor_bits / params:.3f} bpw with these widths, pins and protections")
        notes.append(f"target {budget / params:.3f} bpw unreachable; allocated under the cap {cap_bpw}")
        budget = cap
    choice, bound = solve(options, budget - fixed_bits)
    entries = [PlanEntry(t.path, tuple(t.shape), t.params, opts[j].key, opts[j].cost,
                         None if (opts[j].key != FLOAT and opts[j].key not in t.scores) else opts[j].dkl, src)
               for t, opts, j, src in zip(table.tensors, options, choice, sources, strict=True)]
    unfit = sum(1 for src in sources if src == "no candidate fits")
    if unfit:
        notes.append(f"{unfit} tensor(s) kept float: no allowed group size divides their input size")
    plan = Plan(model=table.model, method=method, float_bytes=fb, fixed_bits=fixed_bits,
                fixed_params=table.fixed_params, entries=entries, budget_bits=budget, lower_bound=bound,
                notes=notes, meta={"candidates": [c.key for c in cands], "model_hash": table.model_hash,
                                   "calibration_hash": table.calibration_hash})
    if plan.total_bits > budget:  # the solver's contract; never ship a plan over its cap
        raise QuantError(f"internal error: plan {plan.real_bpw:.4f} bpw exceeds its budget")
    return plan


# -- the solver ----------------------------------------------------------------------------------------

def solve(options: Sequence[Sequence[Option]], budget: int) -> tuple[list[int], float]:
    """Indices (one per group) minimising Σ dkl with Σ cost ≤ budget; and the LP lower bound.

    Raises QuantError when even the cheapest choice exceeds the budget."""
    pruned = [_pareto(opts) for opts in options]       # per group: indices into opts, cost ↑, dkl ↓
    base = sum(options[i][p[0]].cost for i, p in enumerate(pruned))
    if base > budget:
        raise QuantError(f"budget of {budget} bits is below the cheapest plan ({base} bits)")
    slack = budget - base
    inc = [[options[i][j].cost - options[i][p[0]].cost for j in p] for i, p in enumerate(pruned)]
    dkl = [[options[i][j].dkl for j in p] for i, p in enumerate(pruned)]
    picks = _dp(inc, dkl, slack)
    picks = _fill(inc, dkl, picks, slack)
    greedy, bound = _hull_greedy(inc, dkl, slack)
    greedy = _fill(inc, dkl, greedy, slack)
    if _total(dkl, greedy) < _total(dkl, picks):
        picks = greedy
    return [pruned[i][k] for i, k in enumerate(picks)], min(bound, _total(dkl, picks))


def _pareto(opts: Sequence[Option]) -> list[int]:
    order = sorted(range(len(opts)), key=lambda j: (opts[j].cost, opts[j].dkl))
    keep: list[int] = []
    for j in order:
        if not keep or opts[j].dkl < opts[keep[-1]].dkl:
            if keep and opts[j].cost == opts[keep[-1]].cost:
                continue
            keep.append(j)
    return keep


def _total(dkl: list[list[float]], picks: list[int]) -> float:
    return sum(d[k] for d, k in zip(dkl, picks, strict=True))


def _dp(inc: list[list[int]], dkl: list[list[float]], slack: int) -> list[int]:
    n = len(inc)
    steps = [c for row in inc for c in row if c > 0]
    if not steps or n == 0:
        return [0] * n
    unit = math.gcd(*steps)
    cells = slack // unit
    limit = max(64, min(MAX_DP_CELLS, DP_MEMORY // (2 * n)))
    if cells > limit:
        unit = math.ceil(slack / limit)
        cells = slack // unit
    w = [[math.ceil(c / unit) for c in row] for row in inc]
    f = np.zeros(cells + 1)
    back = np.zeros((n, cells + 1), dtype=np.uint16)
    for i in range(n):
        best = f + dkl[i][0]
        arg = np.zeros(cells + 1, dtype=np.uint16)
        for k in range(1, len(w[i])):
            wk = w[i][k]
            if wk > cells:
                break
            cand = np.full(cells + 1, np.inf)
            cand[wk:] = f[: cells + 1 - wk] + dkl[i][k]
            better = cand < best
            best = np.where(better, cand, best)
            arg[better] = k
        f = best
        back[i] = arg
    picks = [0] * n
    c = cells
    for i in range(n - 1, -1, -1):
        k = int(back[i, c])
        picks[i] = k
        c -= w[i][k]
    return picks


def _fill(inc: list[list[int]], dkl: list[list[float]], picks: list[int], slack: int) -> list[int]:
    """Spend what is left of the budget: repeatedly take the single upgrade that lowers ΔKL most."""
    picks = list(picks)
    left = slack - sum(row[k] for row, k in zip(inc, picks, strict=True))
    while True:
        best = None
        for i, (row, d) in enumerate(zip(inc, dkl, strict=True)):
            k0 = picks[i]
            for k in range(k0 + 1, len(row)):
                extra = row[k] - row[k0]
                if extra <= left and (best is None or d[k0] - d[k] > best[0]):
                    best = (d[k0] - d[k], i, k, extra)
        if best is None or best[0] <= 0:
            return picks
        _, i, k, extra = best
        picks[i] = k
        left -= extra


def _hull_greedy(inc: list[list[int]], dkl: list[list[float]], slack: int) -> tuple[list[int], float]:
    """LP relaxation: walk each group's lower convex hull in order of ΔKL saved per bit.

    Returns the integral part of the LP solution and the LP optimum (a lower bound on the best plan)."""
    segments = []
    for i, (row, d) in enumerate(zip(inc, dkl, strict=True)):
        hull = [0]
        for k in range(1, len(row)):
            while len(hull) >= 2:
                a, b = hull[-2], hull[-1]
                # drop b if it lies on or above the segment a -> k
                if (d[b] - d[a]) * (row[k] - row[a]) >= (d[k] - d[a]) * (row[b] - row[a]):
                    hull.pop()
                else:
                    break
            hull.append(k)
        for a, b in zip(hull, hull[1:], strict=False):
            segments.append(((d[a] - d[b]) / (row[b] - row[a]), i, a, b))
    segments.sort(key=lambda s: -s[0])
    picks = [0] * len(inc)
    value = sum(d[0] for d in dkl)
    left = slack
    bound = None
    for rate, i, a, b in segments:
        if picks[i] != a:
            continue
        step = inc[i][b] - inc[i][a]
        if step <= left:
            picks[i] = b
            left -= step
            value -= dkl[i][a] - dkl[i][b]
        else:
            bound = value - rate * left
            break
    return picks, value if bound is None else bound

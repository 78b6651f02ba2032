"""The allocator: optimal on small cases (checked by brute force), never over budget, pins and protections obeyed."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temper.core.errors import QuantError
from temper.core.quant.allocate import Option, Protect, allocate, parse_pins, solve
from temper.core.quant.candidates import Candidate, grid
from temper.core.quant.plan import FLOAT, Plan, tensor_bits
from temper.core.quant.scores import SensitivityTable, TensorScores

option_lists = st.lists(
    st.lists(st.tuples(st.integers(0, 40), st.floats(0, 10, allow_nan=False)), min_size=1, max_size=4),
    min_size=1, max_size=5)


def brute(options, budget):
    best = None
    for combo in itertools.product(*[range(len(o)) for o in options]):
        cost = sum(options[i][k].cost for i, k in enumerate(combo))
        if cost <= budget:
            value = sum(options[i][k].dkl for i, k in enumerate(combo))
            best = value if best is None else min(best, value)
    return best


@settings(max_examples=300, deadline=None)
@given(option_lists, st.integers(0, 150))
def test_solver_matches_brute_force(raw, budget):
    options = [[Option(f"o{j}", c, d) for j, (c, d) in enumerate(group)] for group in raw]
    best = brute(options, budget)
    if best is None:
        with pytest.raises(QuantError):
            solve(options, budget)
        return
    picks, bound = solve(options, budget)
    cost = sum(options[i][k].cost for i, k in enumerate(picks))
    value = sum(options[i][k].dkl for i, k in enumerate(picks))
    assert cost <= budget
    assert value == pytest.approx(best, abs=1e-9)
    assert bound <= value + 1e-9


def test_coarse_grid_stays_within_budget_and_near_the_bound():
    """Costs with no common step force the coarse DP: still under budget, close to the LP bound."""
    import random

    rng = random.Random(1)
    options = []
    for _ in range(300):
        costs = sorted(rng.randrange(10_000, 90_000) for _ in range(6))
        dkls = sorted((rng.random() for _ in range(6)), reverse=True)
        options.append([Option(str(k), c, d) for k, (c, d) in enumerate(zip(costs, dkls, strict=True))])
    budget = sum(o[0].cost for o in options) + 4_000_017
    picks, bound = solve(options, budget)
    assert sum(options[i][k].cost for i, k in enumerate(picks)) <= budget
    value = sum(options[i][k].dkl for i, k in enumerate(picks))
    assert value <= bound * 1.02 + 1e-6


def make_table(float_bytes=2):
    """Three tensors, scored for 2/4/8-bit gs64, sensitivities differing by orders of magnitude."""
    cands = grid((2, 4, 8), (64,))
    mse = {2: 0.15, 4: 0.008, 8: 0.0001}
    tensors = []
    for name, shape, weight in [("model.embed_tokens", (256, 64), 0.5), ("model.layers.0.mlp.down_proj", (64, 128), 3.0),
                                ("model.layers.0.mlp.up_proj", (128, 64), 0.2), ("lm_head", (256, 64), 1.0)]:
        t = TensorScores(name, shape, math.prod(shape), name.rsplit(".", 1)[-1], 0 if "layers" in name else None)
        t.scores = {c.key: weight * mse[c.bits] for c in cands}
        tensors.append(t)
    return SensitivityTable(model="hand", model_hash="h", calibration_hash="c", candidates=[c.key for c in cands],
                            float_bytes=float_bytes, fixed_bits=64 * 16 * 3, fixed_params=64 * 3, tensors=tensors)


def brute_plan(table, budget_bits, allow_float=True):
    keys = [*table.candidates, FLOAT] if allow_float else list(table.candidates)
    best = None
    for combo in itertools.product(keys, repeat=len(table.tensors)):
        bits = table.fixed_bits + sum(tensor_bits(k, t.params, table.float_bytes) for k, t in zip(combo, table.tensors, strict=True))
        if bits <= budget_bits:
            value = sum(0.0 if k == FLOAT else t.scores[k] for k, t in zip(combo, table.tensors, strict=True))
            best = value if best is None else min(best, value)
    return best


@pytest.mark.parametrize("bpw", [2.6, 3.0, 3.7, 4.5, 5.2, 6.0, 8.5, 12.0, 16.0])
def test_allocation_is_optimal_and_under_budget(bpw):
    table = make_table()
    plan = allocate(table, bpw=bpw, protect=())
    assert plan.total_bits <= math.floor(bpw * plan.params)
    assert plan.real_bpw <= bpw
    assert plan.predicted_dkl == pytest.approx(brute_plan(table, math.floor(bpw * plan.params)), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.floats(2.6, 17.0))
def test_budget_is_never_exceeded(bpw):
    plan = allocate(make_table(), bpw=bpw, protect=())
    assert plan.total_bits <= bpw * plan.params
    assert plan.lower_bound <= plan.predicted_dkl + 1e-12


def test_impossible_budget_names_the_smallest_reachable():
    with pytest.raises(QuantError, match=r"smallest reachable is 2\.\d+ bpw"):
        allocate(make_table(), bpw=2.0, protect=())


def test_cap_accepts_an_unreachable_target_up_to_the_cap():
    plan = allocate(make_table(), bpw=2.0, cap_bpw=3.0, protect=())
    assert plan.real_bpw <= 3.0 and plan.notes
    with pytest.raises(QuantError, match="cap"):
        allocate(make_table(), bpw=2.0, cap_bpw=2.1, protect=())


def test_size_budget_in_gb():
    table = make_table()
    plan = allocate(table, size_gb=40_000 / 1e9, protect=())
    assert plan.size_bytes <= 40_000
    assert plan.total_bits <= 40_000 * 8


def test_pins_are_respected_even_when_costly():
    pins = parse_pins(["lm_head=affine:8b:g64", "model.embed_tokens=float"])
    plan = allocate(make_table(), bpw=10.0, pins=pins, protect=())
    got = plan.by_path()
    assert got["lm_head"].key == "affine:8b:g64" and got["lm_head"].source == "pinned"
    assert got["model.embed_tokens"].key == FLOAT
    with pytest.raises(QuantError, match="smallest reachable"):
        allocate(make_table(), bpw=3.0, pins=pins, protect=())


def test_bad_pins_are_clear_errors():
    with pytest.raises(QuantError, match="PATH=KEY"):
        parse_pins(["lm_head"])
    with pytest.raises(QuantError, match="bad candidate key"):
        parse_pins(["lm_head=4bit"])
    with pytest.raises(QuantError, match="no quantizable tensor"):
        allocate(make_table(), bpw=5, pins={"model.nothing": "affine:4b:g64"})
    with pytest.raises(QuantError, match="does not fit"):
        allocate(make_table(), bpw=5, pins={"lm_head": "affine:4b:g128"})


def test_protect_keeps_float_or_a_floor():
    plan = allocate(make_table(), bpw=8.0, protect=[Protect.parse("lm_head")])
    assert plan.by_path()["lm_head"].key == FLOAT
    plan = allocate(make_table(), bpw=5.0, protect=[Protect.parse("*down_proj:8")])
    assert Candidate.from_key(plan.by_path()["model.layers.0.mlp.down_proj"].key).bits >= 8 \
        or plan.by_path()["model.layers.0.mlp.down_proj"].key == FLOAT
    with pytest.raises(QuantError, match="protect"):
        Protect.parse("lm_head:eight")


def test_min_max_bits_and_no_float():
    plan = allocate(make_table(), bpw=16.0, max_bits=4, allow_float=False, protect=())
    assert all(Candidate.from_key(e.key).bits <= 4 for e in plan.entries)
    plan = allocate(make_table(), bpw=16.0, min_bits=8, protect=())
    assert all(e.key == FLOAT or Candidate.from_key(e.key).bits == 8 for e in plan.entries)


def test_no_scores_is_a_clear_error():
    table = make_table()
    for t in table.tensors:
        t.scores = {}
    with pytest.raises(QuantError, match="sensitivity"):
        allocate(table, bpw=4.0)


def test_plan_json_round_trip_and_table(tmp_path):
    plan = allocate(make_table(), bpw=4.5, protect=())
    plan.save(tmp_path / "plan.json")
    again = Plan.load(tmp_path / "plan.json")
    assert again.to_dict() == plan.to_dict()
    text = plan.table()
    assert "model.layers.0.mlp.down_proj" in text and "ΔKL" in text
    assert f"{plan.real_bpw:.3f}" in plan.summary_text()
    section = plan.quantization_config()
    assert set(section) >= {"bits", "group_size", "mode", *(e.path for e in plan.entries)}

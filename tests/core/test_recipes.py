"""Recipes: each is a plan through the same machinery; mlx-lm's mixed predicates reproduced path for path."""

from __future__ import annotations

import pytest
from temper.core.errors import QuantError
from temper.core.quant.candidates import Candidate
from temper.core.quant.inventory import load_inventory
from temper.core.quant.plan import FLOAT
from temper.core.quant.recipes import RecipeRequest, build_plan, describe, recipe_names


@pytest.fixture(scope="module")
def llama_inv(tiny_llama, engine):
    return engine.run(lambda ctx: load_inventory(tiny_llama))


@pytest.fixture(scope="module")
def gemma_inv(tiny_gemma4, engine):
    return engine.run(lambda ctx: load_inventory(tiny_gemma4))


def with_fake_scores(table):
    """Scores shaped like real ones: error ∝ 4^-bits, tensors differing in sensitivity."""
    import copy

    table = copy.deepcopy(table)
    keys = [Candidate(b, g).key for b in (2, 3, 4, 5, 6, 8) for g in (32, 64, 128)]
    for i, t in enumerate(table.tensors):
        for key in keys:
            c = Candidate.from_key(key)
            t.scores[key] = (1 + i % 5) * 4.0 ** -c.bits * (1 + c.group_size / 256)
    table.candidates = keys
    return table


def test_unknown_recipe_lists_the_recipes(llama_inv):
    with pytest.raises(QuantError, match="unknown recipe 'q4'.*uniform-B.*oq4.*mixed_3_6"):
        build_plan("q4", llama_inv)
    assert "optiq-like" in recipe_names()
    for bad in ("uniform-7", "uniform-4-g48", "unsloth-9"):
        with pytest.raises(QuantError):
            build_plan(bad, llama_inv)


@pytest.mark.parametrize("recipe", ["mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"])
@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_gemma4"])
def test_mixed_predicates_match_mlx_lm(recipe, arch, request, engine):
    """Our plan gives every path exactly what mlx-lm's own predicate + quantize_model give it."""
    folder = request.getfixturevalue(arch)

    def run(ctx):
        from mlx_lm.convert import mixed_quant_predicate_builder
        from mlx_lm.utils import load_model, quantize_model

        model, config = load_model(folder, lazy=True)
        predicate = mixed_quant_predicate_builder(recipe, model, 64)
        _, qconfig = quantize_model(model, config, group_size=64, bits=4, mode="affine", quant_predicate=predicate)
        return qconfig["quantization"], load_inventory(folder)

    theirs, inv = engine.run(run)
    plan = build_plan(recipe, inv)
    for e in plan.entries:
        want = theirs.get(e.path, False)
        got = False if e.key == FLOAT else Candidate.from_key(e.key).as_config()
        assert got == (want if want is False else {**want, "mode": want.get("mode", "affine")}), e.path


def test_unsloth_map(llama_inv):
    plan = build_plan("unsloth-3", llama_inv).by_path()
    bits = {p: (None if e.key == FLOAT else Candidate.from_key(e.key).bits) for p, e in plan.items()}
    assert bits["model.layers.0.self_attn.o_proj"] is None
    assert bits["model.layers.0.mlp.gate_proj"] == 3 and bits["model.layers.0.mlp.up_proj"] == 3
    assert bits["model.layers.0.mlp.down_proj"] == 4
    assert bits["model.layers.1.self_attn.q_proj"] == 5 and bits["model.layers.1.self_attn.v_proj"] == 5
    assert bits["model.embed_tokens"] == 5 and bits["lm_head"] == 5
    top = build_plan("unsloth-6", llama_inv).by_path()
    assert Candidate.from_key(top["model.layers.0.mlp.down_proj"].key).bits == 8   # 7 is no width: up to 8
    assert Candidate.from_key(top["model.layers.0.self_attn.q_proj"].key).bits == 8


def test_uniform_falls_back_to_a_group_that_fits(llama_inv):
    plan = build_plan("uniform-4-g128", llama_inv).by_path()
    assert plan["model.layers.0.mlp.down_proj"].key == "affine:4b:g128"      # input 128
    assert plan["model.layers.0.mlp.up_proj"].key == "affine:4b:g64"         # input 64: g128 cannot split it


def test_budget_recipes_need_scores_and_keep_their_caps(llama_inv):
    with pytest.raises(QuantError, match="sensitivity"):
        build_plan("oq4", llama_inv)
    scored = with_fake_scores(llama_inv)
    with pytest.raises(QuantError, match="smallest reachable"):   # lm_head at 8 bits is a third of this toy
        build_plan("oq3", scored, RecipeRequest(float_bytes=2))
    for level, cap in {"oq4": 4.7, "oq5": 5.7, "oq6": 6.7}.items():
        plan = build_plan(level, scored, RecipeRequest(float_bytes=2))
        assert plan.real_bpw <= cap, level
        assert all(e.key != FLOAT for e in plan.entries)
        assert all(e.candidate.group_size == 64 for e in plan.entries)
        assert Candidate.from_key(plan.by_path()["lm_head"].key).bits == 8
    optiq = build_plan("optiq-like", scored, RecipeRequest(bpw=5.5, float_bytes=2))
    assert {e.candidate.bits for e in optiq.entries} <= {4, 8} and optiq.real_bpw <= 5.5
    temper = build_plan("temper", scored, RecipeRequest(bpw=4.0, float_bytes=2))
    assert temper.real_bpw <= 4.0
    assert temper.predicted_dkl <= build_plan("uniform-3", scored, RecipeRequest(float_bytes=2)).predicted_dkl


def test_fixed_recipes_respect_a_budget_pins_and_protection(llama_inv):
    with pytest.raises(QuantError, match="over the budget"):
        build_plan("uniform-8", llama_inv, RecipeRequest(bpw=5.0))
    from temper.core.quant.allocate import Protect

    plan = build_plan("uniform-3", llama_inv, RecipeRequest(pins={"lm_head": "affine:8b:g32"},
                                                           protect=[Protect.parse("*embed*")])).by_path()
    assert plan["lm_head"].key == "affine:8b:g32" and plan["lm_head"].source == "pinned"
    assert plan["model.embed_tokens"].key == FLOAT


def test_gemma4_inventory_and_describe(gemma_inv):
    assert gemma_inv.float_bytes == 4 and gemma_inv.fixed_params > 0
    assert [t.path for t in gemma_inv.tensors][0] == "model.embed_tokens"
    assert describe("oq3.5").needs_scores and not describe("mixed_3_6").needs_scores


def test_vision_and_audio_towers_are_never_planned(engine):
    def run(ctx):
        import mlx.nn as nn
        from temper.core.quant.inventory import inventory

        class Toy(nn.Module):
            def __init__(self):
                super().__init__()
                self.vision_tower = nn.Linear(64, 64)
                self.multi_modal_projector = nn.Linear(64, 64)
                self.audio_tower = nn.Linear(64, 64)
                self.lm_head = nn.Linear(64, 128)

        return inventory(Toy())

    table = engine.run(run)
    assert [t.path for t in table.tensors] == ["lm_head"]
    assert table.fixed_params == 3 * (64 * 64 + 64) + 128      # the towers count as never-quantized bytes

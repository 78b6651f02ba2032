"""Gemma-4 MoE (26B-A4B layout), Qwen3-MoE and Gemma-4 vision-language checkpoints (issue 13, items 4-5).

The source folders are written the way the Hub checkpoints are (transformers' names): Gemma-4's experts
as one fused `experts.gate_up_proj` stack plus `experts.down_proj`, Qwen3-MoE's as three tensors per
expert, the Gemma-4 VLM as `model.language_model.*` beside `model.vision_tower.*` and
`model.embed_vision.*`. mlx-lm's sanitize turns them into its own layout on load.
"""

from __future__ import annotations

import json

import pytest
from quant_support import scored_table
from temper.core.quant.candidates import grid
from temper.core.quant.recipes import RecipeRequest, build_plan
from temper.core.quant.verify import verify
from temper.core.quant.write import write_quantized

CANDIDATES = grid((3, 4, 8), (32, 64))
MOE_TEXT = {"num_hidden_layers": 2, "enable_moe_block": True, "num_experts": 4, "top_k_experts": 2,
            "moe_intermediate_size": 64, "head_dim": 32, "global_head_dim": 64,
            "layer_types": ["sliding_attention", "full_attention"]}
QWEN3_MOE = {"model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
             "moe_intermediate_size": 64, "num_experts": 4, "num_experts_per_tok": 2, "decoder_sparse_step": 1,
             "mlp_only_layers": [], "norm_topk_prob": True, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 2048,
             "tie_word_embeddings": False}


def _rewrite(folder, rename):
    """Rewrite model.safetensors with `rename(name, array) -> {name: array}` applied to every tensor."""
    import mlx.core as mx

    weights = mx.load(str(folder / "model.safetensors"))
    out = {}
    for k, v in weights.items():
        out.update(rename(k, v))
    mx.save_safetensors(str(folder / "model.safetensors"), out, metadata={"format": "pt"})


@pytest.fixture(scope="module")
def gemma4_moe(models_root, engine):
    """gemma4_text with the 26B-A4B block: dense MLP + router + experts, experts stored fused."""
    import mlx.core as mx
    from temper.core.library.synthetic import build_model

    out = models_root / "tiny-gemma4-moe"

    def fuse(k, v):
        if k.endswith("experts.switch_glu.gate_proj.weight"):
            base = k.removesuffix("switch_glu.gate_proj.weight")
            up = mx.load(str(out / "model.safetensors"))[f"{base}switch_glu.up_proj.weight"]
            return {f"{base}gate_up_proj": mx.concatenate([v, up], axis=-2)}
        if k.endswith("experts.switch_glu.up_proj.weight"):
            return {}
        if k.endswith("experts.switch_glu.down_proj.weight"):
            return {k.replace("switch_glu.down_proj.weight", "down_proj"): v}
        return {k: v}

    if not (out / "config.json").exists():
        engine.run(lambda ctx: (build_model(out, "gemma4_text", overrides=MOE_TEXT), _rewrite(out, fuse)))
    return out


@pytest.fixture(scope="module")
def qwen3_moe(models_root, engine):
    from temper.core.library.synthetic import build_model

    out = models_root / "tiny-qwen3-moe"

    def unstack(k, v):
        if ".mlp.switch_mlp." in k:
            base, name = k.split(".mlp.switch_mlp.")
            proj = name.removesuffix(".weight")
            return {f"{base}.mlp.experts.{e}.{proj}.weight": v[e] for e in range(v.shape[0])}
        return {k: v}

    if not (out / "config.json").exists():
        engine.run(lambda ctx: (build_model(out, QWEN3_MOE), _rewrite(out, unstack)))
    return out


@pytest.mark.parametrize("fixture, stacks, router", [
    ("gemma4_moe", "experts.switch_glu", "router.proj"),
    ("qwen3_moe", "mlp.switch_mlp", "mlp.gate"),
])
def test_moe_experts_are_scored_per_stack_and_written_for_plain_mlx_lm(fixture, stacks, router, request, engine,
                                                                         tmp_path):
    """Sensitivity and allocation per expert stack (gate, up, down of one layer: all experts together,
    which is the unit mlx-lm's SwitchLinear quantizes); routers at mlx-lm's 8-bit; plain mlx-lm loads it."""
    source = request.getfixturevalue(fixture)
    table = engine.run(lambda ctx: scored_table(ctx, source, CANDIDATES))
    expert_rows = {t.path: t for t in table.tensors if stacks in t.path}
    assert sorted(p.rsplit(".", 1)[-1] for p in expert_rows) == sorted(["down_proj", "gate_proj", "up_proj"] * 2)
    assert all(len(t.shape) == 3 and t.shape[0] == 4 for t in expert_rows.values())
    assert all(t.scores for t in expert_rows.values())
    plan = build_plan("temper", table, RecipeRequest(bpw=4.5))
    report = engine.run(lambda ctx: (write_quantized(source, plan, tmp_path / "q"), verify(tmp_path / "q"))[1])
    assert report.real_bpw <= 4.5
    quant = json.loads((tmp_path / "q" / "config.json").read_text())["quantization"]
    routers = {k: v for k, v in quant.items() if k.endswith(router)}
    assert len(routers) == 2 and all(v["bits"] == 8 for v in routers.values())
    assert all(isinstance(quant[p], dict) for p in expert_rows)

    def generate(ctx):
        from mlx_lm import generate, load

        model, tok = load(str(tmp_path / "q"))
        return generate(model, tok, prompt="hello", max_tokens=4)

    assert isinstance(engine.run(generate), str)


def test_roofline_counts_only_the_active_experts(gemma4_moe, qwen3_moe, engine):
    def run(ctx):
        from mlx_lm.utils import load_model
        from temper.core.bench.roofline import weight_bytes

        out = {}
        for name, folder in (("gemma4", gemma4_moe), ("qwen3", qwen3_moe)):
            model, config = load_model(folder, lazy=True)
            switch = sum(v.nbytes for p, m in model.named_modules() if type(m).__name__ == "SwitchLinear"
                         for v in m.parameters().values())
            out[name] = (weight_bytes(model, config).experts_skipped, switch)
        return out

    for name, (skipped, switch) in engine.run(run).items():
        assert skipped == switch // 2, name  # top 2 of 4 experts: half the expert bytes are not read


VISION = {  # tensors named as transformers' Gemma4ForConditionalGeneration saves them
    "model.vision_tower.patch_embedder.input_proj.weight": (64, 48),
    "model.vision_tower.patch_embedder.position_embedding_table": (2, 16, 64),
    "model.vision_tower.encoder.layers.0.self_attn.q_proj.linear.weight": (64, 64),
    "model.vision_tower.encoder.layers.0.mlp.gate_proj.linear.weight": (128, 64),
    "model.vision_tower.encoder.layers.0.input_layernorm.weight": (64,),
    "model.embed_vision.embedding_projection.weight": (64, 64),
}


@pytest.fixture(scope="module")
def gemma4_vlm(models_root, engine):
    """model_type gemma4 with a vision tower: the language model under model.language_model, the tower
    and its projector in bfloat16 beside it, vision_config in config.json."""
    from temper.core.library.synthetic import GEMMA4_TEXT_TINY, build_model

    out = models_root / "tiny-gemma4-vlm"

    def build(ctx):
        import mlx.core as mx

        text = {k: v for k, v in GEMMA4_TEXT_TINY.items() if k not in ("architectures",)}
        text.update(head_dim=32, global_head_dim=64, vocab_size=512, vocab_size_per_layer_input=512)
        arch = {"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"],
                "text_config": text, "vision_config": {"model_type": "gemma4_vision", "hidden_size": 64,
                                                       "patch_size": 4, "num_hidden_layers": 1},
                "image_token_id": 5}
        build_model(out, arch)
        config = json.loads((out / "config.json").read_text())  # mlx-lm's save_config drops vision_config
        (out / "config.json").write_text(json.dumps({**config, "vision_config": arch["vision_config"]}))

        def rename(k, v):
            return {k.replace("language_model.model.", "model.language_model.", 1): v}

        _rewrite(out, rename)
        weights = mx.load(str(out / "model.safetensors"))
        mx.random.seed(1)
        for name, shape in VISION.items():
            weights[name] = mx.random.normal(shape).astype(mx.bfloat16)
        mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})

    if not (out / "config.json").exists():
        engine.run(build)
    return out


def test_a_vlm_keeps_its_vision_tower_in_float_under_its_names(gemma4_vlm, engine, tmp_path):
    import mlx.core as mx
    from temper.core.quant.inventory import load_inventory

    inv = engine.run(lambda ctx: load_inventory(gemma4_vlm))
    assert inv.tensors and not any("vision" in t.path for t in inv.tensors)
    plan = build_plan("uniform-4", inv, RecipeRequest())
    out = tmp_path / "vlm-q"
    report = engine.run(lambda ctx: (write_quantized(gemma4_vlm, plan, out), verify(out))[1])
    assert report.checked == len(inv.tensors)
    written = {}
    for f in out.glob("*.safetensors"):
        written.update(mx.load(str(f)))
    source = mx.load(str(gemma4_vlm / "model.safetensors"))
    for name in VISION:  # byte for byte, same name, same dtype
        assert written[name].dtype == mx.bfloat16 and mx.array_equal(written[name], source[name]).item(), name
    index = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert all(name in index for name in VISION)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gemma4" and config["vision_config"]["hidden_size"] == 64
    assert any(k.startswith("language_model.") and v["bits"] == 4 for k, v in config["quantization"].items()
               if isinstance(v, dict))
    card = (out / "README.md").read_text()
    assert "vision/audio towers and projectors copied in float" in card and "vision_tower" in card

    def generate(ctx):
        from mlx_lm import generate, load

        model, tok = load(str(out))
        return generate(model, tok, prompt="hello", max_tokens=4)

    assert isinstance(engine.run(generate), str)

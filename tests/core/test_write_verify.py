"""Writing plans as MLX folders: plain mlx_lm.load reads them, verify matches them, writes are atomic."""

from __future__ import annotations

import json
import shutil

import pytest
from quant_support import scored_table
from temper.core.errors import QuantError
from temper.core.quant import write as write_module
from temper.core.quant.candidates import grid
from temper.core.quant.inventory import load_inventory
from temper.core.quant.plan import PLAN_FILE, Plan
from temper.core.quant.recipes import RecipeRequest, build_plan
from temper.core.quant.verify import verify
from temper.core.quant.write import write_quantized

CANDIDATES = grid((2, 3, 4, 6, 8), (32, 64))


@pytest.fixture(scope="module")
def llama_scores(tiny_llama, engine):
    return engine.run(lambda ctx: scored_table(ctx, tiny_llama, CANDIDATES))


def write_and_verify(engine, source, plan, out, **kw):
    def run(ctx):
        write_quantized(source, plan, out, **kw)
        return verify(out)
    return engine.run(run)


def generates(engine, folder):
    def run(ctx):
        from mlx_lm import generate, load

        model, tok = load(str(folder))
        return generate(model, tok, prompt="hello", max_tokens=4)
    return isinstance(engine.run(run), str)


@pytest.mark.parametrize("bpw", [4.2, 5.0, 6.5])
def test_budgeted_plan_writes_loads_and_stays_under_budget(bpw, llama_scores, tiny_llama, engine, tmp_path):
    plan = build_plan("temper", llama_scores, RecipeRequest(bpw=bpw))
    report = write_and_verify(engine, tiny_llama, plan, tmp_path / "q")
    assert report.real_bpw <= bpw
    assert report.tensor_bytes * 8 == plan.total_bits
    assert len({e.key for e in plan.entries}) > 1          # really mixed
    assert generates(engine, tmp_path / "q")
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert config["quantization"] == config["quantization_config"]
    assert all(e.path in config["quantization"] for e in plan.entries)
    card = (tmp_path / "q" / "README.md").read_text()
    assert f"{report.real_bpw:.3f}" in card and "Tensors by width" in card
    for name in ("tokenizer.json", "tokenizer_config.json", PLAN_FILE):
        assert (tmp_path / "q" / name).is_file()


def test_bfloat16_cast_prices_and_writes_16_bit_scales(llama_scores, tiny_llama, engine, tmp_path):
    plan = build_plan("temper", llama_scores, RecipeRequest(bpw=3.6, float_bytes=2))
    report = write_and_verify(engine, tiny_llama, plan, tmp_path / "bf16", dtype="bfloat16")
    assert report.real_bpw <= 3.6
    with pytest.raises(QuantError, match="prices scales at 2 bytes"):
        engine.run(lambda ctx: write_quantized(tiny_llama, plan, tmp_path / "fp32"))   # source is fp32
    assert not (tmp_path / "fp32").exists()


def test_gemma4_with_fp_modes_and_tied_embeddings(tiny_gemma4, engine, tmp_path):
    inv = engine.run(lambda ctx: load_inventory(tiny_gemma4))
    plan = build_plan("uniform-4", inv, RecipeRequest(pins={
        "model.layers.0.mlp.down_proj": "mxfp4:4b:g32", "model.layers.1.mlp.down_proj": "nvfp4:4b:g16",
        "model.layers.2.mlp.down_proj": "mxfp8:8b:g32", "model.embed_tokens": "affine:6b:g32",
        "model.layers.3.self_attn.o_proj": "float"}))
    report = write_and_verify(engine, tiny_gemma4, plan, tmp_path / "g")
    assert report.checked == len(inv.tensors)
    assert generates(engine, tmp_path / "g")


def test_verify_catches_a_uniform_model_shipped_under_a_mixed_plan(llama_scores, tiny_llama, engine, tmp_path):
    """mlx-optiq's failure: the plan says mixed, the files are uniform 4-bit. Verify must refuse it."""
    mixed = build_plan("temper", llama_scores, RecipeRequest(bpw=5.0))
    uniform = build_plan("uniform-4", llama_scores)
    write_and_verify(engine, tiny_llama, mixed, tmp_path / "mixed")
    write_and_verify(engine, tiny_llama, uniform, tmp_path / "uniform")
    for name in ("model.safetensors", "model.safetensors.index.json", "config.json"):
        shutil.copy2(tmp_path / "uniform" / name, tmp_path / "mixed" / name)
    with pytest.raises(QuantError, match=r"does not match its plan: .*plan affine \d+b g\d+, loaded affine 4b g64"):
        engine.run(lambda ctx: verify(tmp_path / "mixed"))


def test_verify_catches_an_edited_config(tiny_llama, engine, tmp_path):
    inv = engine.run(lambda ctx: load_inventory(tiny_llama))
    plan = build_plan("mixed_3_6", inv)
    write_and_verify(engine, tiny_llama, plan, tmp_path / "m")
    config_file = tmp_path / "m" / "config.json"
    config = json.loads(config_file.read_text())
    config["quantization"]["model.layers.0.mlp.up_proj"] = {"group_size": 64, "bits": 6, "mode": "affine"}
    config["quantization_config"] = config["quantization"]
    config_file.write_text(json.dumps(config))
    with pytest.raises(QuantError, match="plain mlx_lm.load fails on m"):
        engine.run(lambda ctx: verify(tmp_path / "m"))
    # and a plan edited behind the files' back
    config["quantization"]["model.layers.0.mlp.up_proj"] = {"group_size": 64, "bits": 3, "mode": "affine"}
    config["quantization_config"] = config["quantization"]
    config_file.write_text(json.dumps(config))
    engine.run(lambda ctx: verify(tmp_path / "m"))       # restored: passes again
    edited = Plan.load(tmp_path / "m" / PLAN_FILE)
    edited.by_path()["lm_head"].key = "affine:8b:g64"
    with pytest.raises(QuantError, match="lm_head: plan affine 8b g64, loaded affine 6b g64"):
        engine.run(lambda ctx: verify(tmp_path / "m", edited))


def test_write_is_atomic(tiny_llama, engine, tmp_path, monkeypatch):
    inv = engine.run(lambda ctx: load_inventory(tiny_llama))
    plan = build_plan("uniform-4", inv)

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write_module, "copy_tokenizer_files", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        engine.run(lambda ctx: write_quantized(tiny_llama, plan, tmp_path / "out"))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def failing_check(_tmp):
        raise QuantError("verify says no")

    with pytest.raises(QuantError, match="verify says no"):
        engine.run(lambda ctx: write_quantized(tiny_llama, plan, tmp_path / "out", before_commit=failing_check))
    assert list(tmp_path.iterdir()) == []


def test_refuses_overwrite_and_quantized_sources(tiny_llama, engine, tmp_path):
    inv = engine.run(lambda ctx: load_inventory(tiny_llama))
    plan = build_plan("uniform-4", inv)
    write_and_verify(engine, tiny_llama, plan, tmp_path / "q")
    with pytest.raises(QuantError, match="already exists"):
        engine.run(lambda ctx: write_quantized(tiny_llama, plan, tmp_path / "q"))
    write_and_verify(engine, tiny_llama, build_plan("uniform-8", inv), tmp_path / "q", force=True)
    with pytest.raises(QuantError, match="already quantized"):
        engine.run(lambda ctx: write_quantized(tmp_path / "q", plan, tmp_path / "qq"))


def test_shape_errors_are_clear(llama_scores, tiny_llama):
    with pytest.raises(QuantError, match="does not fit its shape"):
        build_plan("temper", llama_scores, RecipeRequest(bpw=6, pins={"model.layers.0.mlp.up_proj": "affine:4b:g128"}))


@pytest.mark.parametrize("arch,model_type", [("tiny_llama", "llama"), ("tiny_gemma4", "gemma4_text")])
def test_awq_prescaling_is_exact_in_float_and_writes_verified(arch, model_type, request, engine, tmp_path):
    from quant_support import chunks_for
    from temper.core.quant.awq import apply_awq

    folder = request.getfixturevalue(arch)
    chunks = chunks_for(folder, count=2)

    def run(ctx):
        import mlx.core as mx
        from mlx_lm.utils import load_model
        from temper.core.quant.inventory import inventory
        model, _ = load_model(folder)
        plan = build_plan("uniform-3", inventory(model))
        x = mx.array([chunks[0][:16]])
        before = model(x)
        alphas = apply_awq(model, model_type, plan, chunks)
        return float(mx.abs(model(x) - before).max().item()), alphas, plan

    diff, alphas, plan = engine.run(run)
    assert diff < 1e-4                          # the float model computes the same function
    assert any(a > 0 for a in alphas.values())  # and something was actually rescaled
    report = engine.run(lambda ctx: (write_quantized(folder, plan, tmp_path / "awq", awq_chunks=chunks),
                                     verify(tmp_path / "awq"))[1])
    assert report.ok and "AWQ-style pre-scaling folded" in (tmp_path / "awq" / "README.md").read_text()
    assert generates(engine, tmp_path / "awq")


def test_awq_refuses_architectures_where_it_is_not_exact():
    from temper.core.quant.awq import groups

    with pytest.raises(QuantError, match="exact only for"):
        groups(object(), "phi3")


def test_scales_keep_the_source_dtype_whatever_the_config_says(engine, tmp_path):
    """bf16 weights give bf16 scales, even under a config that claims float32 (mlx-lm convert would
    load as float32 and write 32-bit scales, +0.5 bpw at gs64, without a word)."""
    from temper.core.library.safetensors_header import read_header
    from temper.core.library.synthetic import build_model

    src = engine.run(lambda ctx: build_model(tmp_path / "bf16", "llama", dtype="bfloat16"))
    config = json.loads((src / "config.json").read_text())
    config["torch_dtype"] = "float32"
    (src / "config.json").write_text(json.dumps(config))
    inv = engine.run(lambda ctx: load_inventory(src))
    assert inv.float_bytes == 2
    plan = build_plan("uniform-4", inv)
    report = write_and_verify(engine, src, plan, tmp_path / "q4")
    tensors, _ = read_header(tmp_path / "q4" / "model.safetensors")
    assert {t.dtype for n, t in tensors.items() if n.endswith((".scales", ".biases"))} == {"BF16"}
    assert report.real_bpw == pytest.approx(plan.real_bpw) and report.real_bpw < 4.6


def test_a_tensor_in_another_dtype_is_priced_as_stored(engine, tmp_path):
    """A bf16 model whose lm_head is stored in float32: its scales (and float cost) are 32-bit."""
    import mlx.core as mx
    from temper.core.library.synthetic import build_model

    def make(ctx):
        src = build_model(tmp_path / "mixed-dtype", "llama", dtype="bfloat16")
        weights = mx.load(str(src / "model.safetensors"))
        weights["lm_head.weight"] = weights["lm_head.weight"].astype(mx.float32)
        mx.save_safetensors(str(src / "model.safetensors"), weights, metadata={"format": "mlx"})
        return src, load_inventory(src)

    src, inv = engine.run(make)
    assert inv.float_bytes == 2 and inv.meta["float_bytes_by_path"] == {"lm_head": 4}
    for recipe, req in (("uniform-4", RecipeRequest()),
                        ("uniform-3", RecipeRequest(pins={"lm_head": "float"}))):
        plan = build_plan(recipe, inv, req)
        report = write_and_verify(engine, src, plan, tmp_path / recipe)
        assert report.tensor_bytes * 8 == plan.total_bits


@pytest.mark.parametrize("env, limit", [("3", 3 << 20), ("0", 1 << 30)])
def test_rounding_bounds_mlx_buffer_cache(env, limit, llama_scores, tiny_llama, engine, tmp_path, monkeypatch):
    """While tensors are rounded MLX's cache limit is TEMPER_WRITE_CACHE_MB ("0": the caller's, unchanged),
    and the caller's limit is back afterwards: freed buffers of shrinking sizes are never reused, so an unbounded
    cache filled an 80 GB card while Llama-3-8B was written."""
    plan = build_plan("temper", llama_scores, RecipeRequest(bpw=4.5))
    monkeypatch.setenv(write_module.CACHE_ENV, env)
    seen: list[int] = []

    def run(ctx):
        import mlx.core as mx

        def limit_now() -> int:
            now = mx.set_cache_limit(0)
            mx.set_cache_limit(now)
            return now

        outer = mx.set_cache_limit(1 << 30)
        try:
            write_quantized(tiny_llama, plan, tmp_path / "q",
                            progress=lambda phase, *_: seen.append(limit_now()) if phase == "quantize" else None)
            return limit_now()
        finally:
            mx.set_cache_limit(outer)

    assert engine.run(run) == 1 << 30             # the caller's limit is back after the phase
    assert len(seen) > 10 and set(seen) == {limit}

"""AWQ's statistics pass on MLX's CPU runs in fp32 (its bf16 kernels made it take over 10 minutes on a 135M
model), and the model comes back with exactly the parameters it had: the same arrays, the same dtypes."""

from __future__ import annotations

from quant_support import chunks_for
from temper.core.quant.inventory import load_inventory
from temper.core.quant.recipes import build_plan


def test_the_pass_runs_in_fp32_and_gives_the_bf16_weights_back(tiny_llama, engine, monkeypatch):
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from temper.core.quant import awq

    seen = []
    real = awq._fp32_for_the_pass

    def spy(model):
        kept = real(model)
        seen.append({str(v.dtype) for _, v in tree_flatten(model.parameters())})
        return kept

    monkeypatch.setattr(awq, "_fp32_for_the_pass", spy)

    def run(ctx):
        from temper.core.engine.loader import open_model
        from temper.core.quant.inventory import cast_model

        model, _ = open_model(tiny_llama)
        cast_model(model, "bfloat16")
        before = {k: v for k, v in tree_flatten(model.parameters())}
        plan = build_plan("uniform-4", load_inventory(tiny_llama, dtype="bfloat16"))
        alphas = awq.apply_awq(model, "llama", plan, chunks_for(tiny_llama, count=2))
        after = dict(tree_flatten(model.parameters()))
        return before, after, alphas

    before, after, alphas = engine.run(run)
    assert seen == [{"mlx.core.float32"}]                      # the pass saw fp32 weights
    assert before.keys() == after.keys() and alphas
    assert {k: str(v.dtype) for k, v in after.items()} == {k: str(v.dtype) for k, v in before.items()}
    scaled = {k for k in before if not mx.array_equal(before[k], after[k]).item()}
    linears = {f"{p}.weight" for p in alphas}                   # each scaled group's first linear
    assert all(k.endswith("weight") for k in scaled)           # only the folded norms and linears changed
    assert "model.embed_tokens.weight" not in scaled
    assert not any(alphas.values()) or scaled & linears

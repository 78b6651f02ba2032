"""The Fisher pass's backward one block at a time (core/quant/fisher_blocks.py) gives the whole-model mx.grad's
gradients, so the same estimates; the GPTQ H it gathers on the way rounds the model as GPTQ's own block passes
do; a body whose blocks are no plain chain keeps the whole-model pass."""

from __future__ import annotations

import numpy as np
import pytest
from quant_support import chunks_for


@pytest.fixture
def host(monkeypatch):
    from temper.core.accel.preload import ensure_fast_blas
    from temper.core.quant import host_math

    ensure_fast_blas(quiet=True)
    monkeypatch.setattr(host_math, "FORCE", True)       # the CPU forms, as on MLX's CPU backend


def _fp32_model(path):
    import mlx.core as mx
    from mlx_lm.utils import load_model

    model, _ = load_model(path)
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return model


def test_block_by_block_gradients_are_the_whole_model_gradients(trained_tiny, engine, host):
    import mlx.core as mx
    from temper.core.quant import estimate, fisher_blocks, fisher_tables, logit_head
    from temper.core.quant.tensors import quantizable

    def run(ctx):
        model = _fp32_model(trained_tiny)
        body = logit_head.body_of(model)
        tensors = quantizable(model)
        embeds = [t for t in tensors if hasattr(t.module, "as_linear")]
        linears = [t for t in tensors if t not in embeds and t.path != "lm_head"]
        taps = {}
        for t in embeds:
            taps[t.path] = fisher_tables.EmbedTap(t.module)
            body["embed_tokens"] = taps[t.path]
        x = mx.array([chunks_for(trained_tiny, length=24, count=1)[0]])
        dh = mx.random.normal((1, 24, body.norm.weight.shape[0]), key=mx.random.key(3))
        originals = {t.path: t.module["weight"] for t in linears}
        out = {}
        for how in ("whole", "blocks"):
            got: dict[str, np.ndarray] = {}

            def fold(path, g, got=got):
                got[path] = np.array(g)

            if how == "whole":
                tap_grads = estimate._whole_model(body, x, linears, taps, originals, lambda h: dh, fold)
            else:
                blocks = fisher_blocks.blocks_of(body, [t.path for t in linears])
                tap_grads = fisher_blocks.sequence(model, body, x, blocks, {t.path: t.module for t in linears},
                                                   originals, taps, lambda h: dh, fold)
            out[how] = (got, {p: np.array(g.astype(mx.float32)) for p, g in tap_grads.items()})
        return out, [t.path for t in linears], list(taps)

    out, paths, tap_paths = engine.run(run)
    (wg, wt), (bg, bt) = out["whole"], out["blocks"]
    assert sorted(wg) == sorted(bg) == sorted(paths) and tap_paths and sorted(wt) == sorted(bt) == tap_paths
    for p in [*paths, *tap_paths]:
        a, b = (wg[p], bg[p]) if p in wg else (wt[p], bt[p])
        scale = float(np.abs(a).max())
        assert scale > 0 and a.shape == b.shape
        assert float(np.abs(a - b).max()) <= 1e-4 * scale, p


def test_the_estimates_are_the_same_either_way(trained_tiny, engine, host):
    import mlx.core as mx
    from temper.core.quant import estimate
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.hessians import FisherHessians
    from temper.core.quant.tensors import quantizable

    def run(ctx):
        model = _fp32_model(trained_tiny)
        chunks = np.array(chunks_for(trained_tiny, length=32, count=3), np.int32)
        tensors = quantizable(model)
        out = {}
        for by in (False, True):
            store = FisherHessians()
            out[by] = (estimate.fisher_estimates(model, chunks, tensors, [Candidate(2, 64), Candidate(4, 32)],
                                                 seed=1, storage_dtype=mx.bfloat16, by_blocks=by, hessians=store),
                       store.valid, store.tokens)
            store.close()
        return out

    out = engine.run(run)
    assert out[False][1:] == (False, 0) and out[True][1:] == (True, 96)    # H only from the block-wise forward
    whole, blocks = out[False][0], out[True][0]
    assert whole.keys() == blocks.keys()
    for path, row in whole.items():
        for key, value in row.items():
            assert value > 0 and abs(blocks[path][key] - value) <= 1e-3 * value, (path, key)


def test_gptq_rounds_the_same_on_the_fisher_passes_h(trained_tiny, engine, host):
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.utils import load_model
    from temper.core.quant import estimate
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.gptq import Rounding, round_with_gptq
    from temper.core.quant.hessians import FisherHessians
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from temper.core.quant.tensors import quantizable

    plan = build_plan("uniform-4", load_inventory(trained_tiny), RecipeRequest())
    chunks = chunks_for(trained_tiny, length=32, count=3)

    def run(ctx):
        store = FisherHessians()
        model = _fp32_model(trained_tiny)
        estimate.fisher_estimates(model, np.array(chunks, np.int32), quantizable(model), [Candidate(4, 32)],
                                  by_blocks=True, hessians=store)
        out = {}
        for how, collected, calib in (("own", None, chunks), ("fisher", store, chunks),
                                      ("other chunks", store, chunks[:2])):
            model, _ = load_model(trained_tiny, lazy=True)
            done = round_with_gptq(model, plan, calib, Rounding(collected=collected), on_tensor=lambda _p: None)
            out[how] = (done["capture"], done["tensors"],
                        {k: np.array(v) for k, v in tree_flatten(model.parameters()) if v.dtype == mx.uint32})
        store.close()
        return out

    out = engine.run(run)
    assert out["fisher"][0] == "fisher" and out["own"][0] != "fisher" and out["other chunks"][0] != "fisher"
    assert out["fisher"][1] == out["own"][1] > 0
    own, fisher = out["own"][2], out["fisher"][2]
    assert own.keys() == fisher.keys() and own
    same = sum(int((own[k] == fisher[k]).sum()) for k in own) / sum(own[k].size for k in own)
    assert same >= 0.999, same          # the same H up to float32 rounding: the same integers but for ties


def test_a_body_that_is_no_plain_chain_keeps_the_whole_model_pass(tiny_gemma4, engine, host):
    import mlx.core as mx
    from temper.core.quant import estimate
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.hessians import FisherHessians
    from temper.core.quant.tensors import quantizable

    def run(ctx):
        model = _fp32_model(tiny_gemma4)
        chunks = np.random.default_rng(0).integers(0, 200, (2, 16)).astype(np.int32)
        tensors = quantizable(model)
        out = {}
        for by in (False, True):
            store = FisherHessians()
            out[by] = (estimate.fisher_estimates(model, chunks, tensors, [Candidate(4, 32)], seed=1,
                                                 storage_dtype=mx.float32, by_blocks=by, hessians=store),
                       store.valid)
            store.close()
        return out

    out = engine.run(run)
    assert out[True][1] is False and out[False][1] is False
    assert out[True][0] == out[False][0]       # the very same whole-model pass

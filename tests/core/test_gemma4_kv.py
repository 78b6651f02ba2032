"""Gemma-4 caches: quantized sliding windows, KV-shared layers, rollback for drafting (issue 13, items 1-2).

The model: a random gemma4_text with sliding and full layers, KV-shared layers (the E2B layout: the last
layers reuse earlier layers' keys and values), per-layer inputs, and a window of 16 tokens, much
shorter than what is generated.
"""

from __future__ import annotations

import pytest
from chat_helpers import MESSAGES, ask, forget_session, greedy
from temper.core.engine.generate import ChatRequest, chat_job
from temper.core.errors import TemperError

WINDOW = 16
SHARED = {
    "num_hidden_layers": 6, "num_kv_shared_layers": 2, "head_dim": 32, "global_head_dim": 64,
    "sliding_window": WINDOW, "hidden_size_per_layer_input": 16,
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention"] * 2,
}


@pytest.fixture(scope="module")
def gemma4_shared(models_root, engine):
    from temper.core.library.synthetic import build_model

    out = models_root / "tiny-gemma4-shared-kv"
    if not (out / "config.json").exists():
        engine.run(lambda ctx: build_model(out, "gemma4_text", overrides=SHARED))
    return out


def _greedy(model, cache, prompt, n):
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    steps = generate_step(mx.array(prompt), model, max_tokens=n, prompt_cache=cache,
                          sampler=lambda lp: mx.argmax(lp, axis=-1))
    return [int(t) for t, _ in steps]


def _logits_with_rollbacks(model, cache, tokens, chunks, junk):
    """Feed `tokens` in `chunks`; before each chunk feed `junk` tokens (one by one or as one chunk) and
    roll them back. Returns the logits of the real tokens."""
    import mlx.core as mx
    from mlx_lm.models.cache import trim_prompt_cache

    out, i = [], 0
    for c in chunks:
        if junk:
            for piece in ([[t] for t in junk] if c == 1 else [junk]):
                model(mx.array(piece)[None], cache=cache)
            assert trim_prompt_cache(cache, len(junk)) == len(junk)
        out.append(model(mx.array(tokens[i:i + c])[None], cache=cache)[0])
        i += c
    return mx.concatenate(out, axis=0)


def test_window_cache_matches_mlx_lm_and_rolls_back_without_a_trace(engine, gemma4_shared):
    def check(ctx):
        import mlx.core as mx
        from mlx_lm import load
        from mlx_lm.models.cache import make_prompt_cache
        from temper.core.engine.kv_cache import KVPlan, build_cache

        model, _ = load(str(gemma4_shared))
        tokens = [int(t) for t in mx.random.randint(0, 500, (90,), key=mx.random.key(3))]
        chunks = [20] + [1] * 30 + [5, 7] + [1] * 28
        ref = _logits_with_rollbacks(model, make_prompt_cache(model), tokens, chunks, [])
        n = len(make_prompt_cache(model))
        errors = {}
        for extra in (0, 3):
            float_plan = KVPlan.uniform(n, None)
            errors[f"extra {extra}"] = _logits_with_rollbacks(
                model, build_cache(model, float_plan, extra), tokens, chunks, []) - ref
        # 4 junk tokens rolled back: the draft of 3 plus the verifier's own token
        errors["rollback"] = _logits_with_rollbacks(
            model, build_cache(model, KVPlan.uniform(n, None), 3), tokens, chunks, [7, 8, 9, 10]) - ref
        return {k: float(mx.abs(v).max()) for k, v in errors.items()}

    errors = engine.run(check)
    assert all(e < 1e-3 for e in errors.values()), errors


def test_a_rollback_longer_than_the_kept_positions_is_refused(engine, gemma4_shared):
    def check(ctx):
        import mlx.core as mx
        from mlx_lm import load
        from temper.core.engine.kv_cache import build_cache, can_trim

        model, _ = load(str(gemma4_shared))
        cache = build_cache(model, None, extra=2)
        model(mx.arange(40)[None], cache=cache)
        return can_trim(cache, 3), can_trim(cache, 4)

    assert engine.run(check) == (True, False)


def test_quantized_caches_cover_sliding_full_and_shared_layers(engine, gemma4_shared):
    forget_session(engine)
    for bits in (4, 8):
        result, _, stats = ask(engine, gemma4_shared, effort="none", kv_bits=bits, sampling=greedy(40))
        kinds = engine.run(lambda ctx: [type(c).__name__ for c in ctx.state["chat_session"].cache])
        assert kinds == ["QuantizedWindowCache", "QuantizedWindowCache", "QuantizedKVCache",
                         "QuantizedWindowCache", "QuantizedSharedKV", "QuantizedSharedKV"]
        assert stats.kv == f"uniform {bits}-bit" and stats.tokens > 0


def test_bench_runs_the_quantized_cache_on_sliding_full_and_shared_layers(engine, gemma4_shared):
    """`temper bench --kv-bits` (and the Performance tab's kv field, which fills the same BenchConfig) on a
    gemma4 with sliding, full and KV-shared layers: the cache named in the result, its bytes 8 > 4 bits."""
    from temper.core.bench.runner import BenchConfig, run_suite
    from temper.core.engine.models import ensure_loaded

    def run(ctx):
        lm = ensure_loaded(ctx.state, gemma4_shared)
        out = {}
        for bits in (0, 8, 4):
            r = run_suite(ctx, lm, BenchConfig(pp=[48], tg=[4], n=1, warmup=False, bandwidth=False, kv_bits=bits))
            out[bits] = (r.model["kv"], r.rows[0].runs[0].kv_bytes)
        return out

    out = engine.run(run)
    assert [out[b][0] for b in (0, 8, 4)] == ["float", "uniform 8-bit", "uniform 4-bit"]
    assert out[0][1] > out[8][1] > out[4][1] > 0


def test_drafting_on_a_sliding_window_model_is_exact(engine, gemma4_shared):
    """Greedy output with a drafter equals greedy output without it, token for token, generating 5x the
    window; some drafts are accepted and some rejected (so rollbacks of the full window happen)."""
    forget_session(engine)
    plain, _, _ = ask(engine, gemma4_shared, effort="none", sampling=greedy(80))
    forget_session(engine)
    drafted, events, stats = ask(engine, gemma4_shared, effort="none", drafter="self", num_draft_tokens=3,
                                 sampling=greedy(80))
    assert drafted.tokens == plain.tokens
    assert len(plain.tokens) > 3 * WINDOW
    assert 0 < stats.accepted < stats.drafted
    assert any(e.from_draft for e in events)


def test_drafting_with_a_quantized_cache_matches_the_quantized_cache_alone(engine, gemma4_shared):
    forget_session(engine)
    plain, _, _ = ask(engine, gemma4_shared, effort="none", kv_bits=8, sampling=greedy(60))
    forget_session(engine)
    drafted, _, _ = ask(engine, gemma4_shared, effort="none", kv_bits=8, drafter="self", sampling=greedy(60))
    assert drafted.tokens == plain.tokens


def test_kv_config_json_is_the_default_and_zero_turns_it_off(engine, gemma4_shared, tmp_path):
    import shutil

    from temper.core.engine import kv_config

    folder = tmp_path / "with-kv-config"
    shutil.copytree(gemma4_shared, folder)
    kv_config.write(folder, {"group_size": 32, "bits": [8, 4, 8, 4]})
    forget_session(engine)
    _, _, stats = ask(engine, folder, effort="none", sampling=greedy(8))
    assert stats.kv == "kv_config.json (2x8-bit, 2x4-bit)"
    kinds = engine.run(lambda ctx: [(type(c).__name__, getattr(c, "bits", None))
                                    for c in ctx.state["chat_session"].cache])
    assert kinds[:4] == [("QuantizedWindowCache", 8), ("QuantizedWindowCache", 4), ("QuantizedKVCache", 8),
                         ("QuantizedWindowCache", 4)]
    assert kinds[4:] == [("QuantizedSharedKV", 4), ("QuantizedSharedKV", 8)]  # layer 4 reads 3, 5 reads 2
    _, _, stats = ask(engine, folder, effort="none", sampling=greedy(8), kv_bits=0)
    assert stats.kv == "float"
    kv_config.write(folder, {"group_size": 32, "bits": [8, 4]})
    with pytest.raises(TemperError, match="plans 2 caches and the model has 4"):
        engine.run(chat_job(ChatRequest(str(folder), MESSAGES, greedy(), effort="none")))


def test_kv_calibrate_writes_a_plan_that_chat_then_uses(engine, gemma4_shared, tmp_path):
    import json
    import shutil

    from temper.core.quant.kv_sensitivity import KVCalibrateRequest, run_kv_calibration

    folder = tmp_path / "calibrated"
    shutil.copytree(gemma4_shared, folder)
    request = KVCalibrateRequest(str(folder), target_bits=6.0, samples=1, seq_len=64, chunk=16, context=4096)
    data = engine.run(lambda ctx: run_kv_calibration(ctx, request))
    saved = json.loads((folder / "kv_config.json").read_text())
    assert saved["bits"] == data["bits"] and len(saved["bits"]) == 4
    assert saved["kinds"] == ["sliding", "sliding", "full", "sliding"]
    assert all(k4 >= k8 >= 0 for k4, k8 in zip(saved["kl"]["4"], saved["kl"]["8"], strict=True))
    assert any(k > 0 for k in saved["kl"]["4"])
    # at 4096 tokens the full layer holds 4096 positions, each window 16: the full layer dominates the
    # bytes, so a mean of 6 bits needs it at 4 bits; the windows then stay at 8
    assert saved["bits"] == [8, 8, 4, 8] and 4 <= saved["mean_bits"] <= 6.0
    forget_session(engine)
    _, _, stats = ask(engine, folder, effort="none", sampling=greedy(8))
    assert stats.kv == "kv_config.json (3x8-bit, 1x4-bit)"


def test_kv_allocation_takes_the_cheapest_bytes_first():
    from temper.core.quant.kv_sensitivity import KVSensitivity, allocate

    sens = KVSensitivity(kl={4: [0.5, 0.01, 0.02, 0.0], 8: [0.0] * 4}, layers=[0, 1, 2, 3],
                         kinds=["full", "full", "full", "ArraysCache"], weights=[100, 100, 100, 0])
    assert allocate(sens, 8.0) == [8, 8, 8, None]
    assert allocate(sens, 7.0) == [8, 4, 8, None]
    assert allocate(sens, 6.0) == [8, 4, 4, None]
    assert allocate(sens, 4.0) == [4, 4, 4, None]


def test_the_kv_calibrate_command_prints_its_plan_as_a_table(engine, gemma4_shared, tmp_path, capsys, monkeypatch):
    """Before: the command wrote its own `\\r` progress line and padded its table by hand; now progress is
    cli/progress.py's and the table cli/output.py's (plain aligned text when piped, as here)."""
    import shutil

    import temper.core.engine.thread as thread
    from temper.cli.main import main

    monkeypatch.setattr(thread, "_default", engine)
    folder = tmp_path / "cli-calibrated"
    shutil.copytree(gemma4_shared, folder)
    assert main(["kv-calibrate", str(folder), "--samples", "1", "--seq-len", "64", "--chunk", "16",
                 "--context", "4096"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["cache", "layer", "kind", "ΔKL", "8-bit", "ΔKL", "4-bit", "bits"]
    assert [line.split()[-1] for line in lines[1:5]] == ["8", "8", "4", "8"] and "\r" not in err
    assert "[kv]" in err and f"saved: {folder / 'kv_config.json'}" in out

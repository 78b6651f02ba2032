"""The Fisher pass's memory and cost do not grow with candidates × model size; the mode rule; the memory
guard; score reuse keyed on every setting that changes the result."""

from __future__ import annotations

import numpy as np
import pytest
from temper.core.errors import QuantError
from temper.core.quant.calibration import TokenSet
from temper.core.quant.candidates import grid
from temper.core.quant.mode import ModelSize, choose_mode, peak_bytes
from temper.core.quant.sensitivity import run_sensitivity


def _tokens(samples: int = 2, seq_len: int = 32, vocab: int = 500) -> TokenSet:
    rng = np.random.default_rng(0)
    return TokenSet("t", "calibration", rng.integers(0, vocab, (samples, seq_len)).astype(np.int32))


def _fisher_peak(model_path, cands, tokens):
    """Peak MLX bytes above the loaded model during the Fisher pass, and the statistics' bytes."""
    import mlx.core as mx
    from mlx_lm.utils import load_model
    from temper.core.quant.estimate import fisher_estimates
    from temper.core.quant.tensors import quantizable

    model, _ = load_model(model_path)
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    tensors = quantizable(model)
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    sizes: dict[str, int] = {}
    fisher_estimates(model, tokens.chunks, tensors, cands, sizes=sizes)
    _fisher_peak.rows = sum(t.params // t.shape[-1] for t in tensors)
    _fisher_peak.largest = max(t.params for t in tensors) * 4
    return mx.get_peak_memory() - base, sizes["statistics"], sum(t.params for t in tensors) * 4


def test_fisher_memory_does_not_grow_with_candidates(engine, tmp_path):
    """18 candidates instead of 1 must not add a per-candidate copy of the model (the old delta cache
    held params × candidates × 4 bytes; its per-chunk products evaluated every candidate at once)."""
    from temper.core.library.synthetic import build_model

    model = engine.run(lambda ctx: build_model(tmp_path / "m", "llama", overrides={
        "num_hidden_layers": 4, "hidden_size": 256, "intermediate_size": 1024}))
    tokens = _tokens()
    one = grid(bits=(4,), group_sizes=(64,))
    many = grid(bits=(2, 3, 4, 5, 6, 8), group_sizes=(32, 64, 128))
    peak1, stats1, weights = engine.run(lambda ctx: _fisher_peak(model, one, tokens))
    peak18, stats18, _ = engine.run(lambda ctx: _fisher_peak(model, many, tokens))
    largest = _fisher_peak.largest                      # fp32 bytes of the largest tensor
    # 17 more candidates cost a few slices of the largest tensor (ΔW and its terms) and the group sums,
    # never a copy of the model per candidate (the old delta cache: 17 × weights more)
    assert peak18 - peak1 < 8 * largest + 0.06 * weights, (peak1, peak18, largest, weights)
    assert peak18 < 3 * weights, (peak18, weights)     # statistics + streamed gradients, not × 18
    # statistics: D (one per weight) + one group-sum array per group size: not per candidate
    assert stats1 <= weights * 1.1 and stats18 <= weights * (1 + 1 / 32 + 1 / 64 + 1 / 128) * 1.1
    assert largest > 0


def test_fisher_statistics_grow_with_the_model_not_with_sequences(engine, tmp_path):
    import json

    from temper.core.library.synthetic import build_model

    model = engine.run(lambda ctx: build_model(tmp_path / "m", "llama"))
    hidden = json.loads((model / "config.json").read_text())["hidden_size"]
    cands = grid(bits=(2, 4), group_sizes=(32,))
    a, b = _tokens(samples=2), _tokens(samples=6)
    _, s2, _ = engine.run(lambda ctx: _fisher_peak(model, cands, a))
    _, s6, _ = engine.run(lambda ctx: _fisher_peak(model, cands, b))
    # more sequences add: the embedding rows the new tokens reach (≤ tokens × hidden), and one float per
    # weight row per sequence (⟨G_s, W⟩): nothing of the size of the model
    new_rows = len(np.unique(b.chunks)) - len(np.unique(a.chunks))
    per_sequence = _fisher_peak.rows * 4
    assert s6 - s2 <= new_rows * hidden * 4 * (1 + 1 / 32) + 4 * per_sequence, (s2, s6)


def test_mode_rule_by_backend_and_size():
    small = ModelSize(135_000_000, 270_000_000, 28_000_000, 576, 30, 49152)
    big = ModelSize(8_000_000_000, 16_000_000_000, 500_000_000, 4096, 32, 128256)
    assert choose_mode(small, "cpu").mode == "fast" and "CPU" in choose_mode(small, "cpu").reason
    toy = ModelSize(10_000_000, 20_000_000, 1_000_000, 256, 8, 32000)
    assert choose_mode(toy, "cuda", available=100 << 30).mode == "hybrid"
    assert choose_mode(small, "cuda", available=100 << 30).mode == "fast"    # hybrid: 148 s on an H200
    assert choose_mode(big, "cuda", available=100 << 30).mode == "fast"
    assert choose_mode(toy, "metal", available=1 << 20).mode == "fast"     # the fp32 copy does not fit
    # the fast pass is priced well below the exact one, and grows with the model
    assert peak_bytes(small, "fast", "cpu") < peak_bytes(small, "exact", "cpu")
    assert peak_bytes(big, "fast", "cuda") > peak_bytes(small, "fast", "cuda")


def test_memory_guard_refuses_a_fast_pass_that_does_not_fit(engine, trained_tiny, monkeypatch):
    from temper.core.quant import mode

    monkeypatch.setattr(mode, "available_bytes", lambda where=None: 1 << 20)
    with pytest.raises(QuantError, match=r"needs about .* GB even in 8 parts and .* GB is available"):
        engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, grid(bits=(4,)), _tokens(), mode="fast"))


def test_reuse_is_keyed_on_fraction_and_seed(engine, trained_tiny):
    """Regression: --fraction 0.5 after a 0.25 run returned the 0.25 table as 'reused'."""
    cands = grid(bits=(2, 4), group_sizes=(64,))
    tokens = _tokens(samples=1, seq_len=16)

    def run(**kw):
        return engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, cands, tokens, mode="hybrid", **kw))

    quarter = run(fraction=0.25)
    assert not quarter.meta["reused"]
    half = run(fraction=0.5)
    assert not half.meta["reused"] and len(half.meta["exact_paths"]) > len(quarter.meta["exact_paths"])
    assert half.meta["file"] != quarter.meta["file"]
    assert run(fraction=0.25).meta["reused"] and run(fraction=0.5).meta["reused"]
    other_seed = run(fraction=0.25, seed=1)
    assert not other_seed.meta["reused"]
    fast = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, cands, tokens, mode="fast"))
    assert not fast.meta["reused"]
    assert fast.meta["key"]["seed"] == 0 and "fraction" not in fast.meta["key"]


def _in_memory_model(layers: int, vocab: int, hidden: int = 64):
    import mlx.core as mx
    from mlx_lm.utils import _get_classes
    from temper.core.library.synthetic import PRESETS

    config = dict(PRESETS["llama"], num_hidden_layers=layers, hidden_size=hidden, intermediate_size=2 * hidden,
                  vocab_size=vocab, tie_word_embeddings=True)
    model_cls, args_cls = _get_classes(config)
    mx.random.seed(0)
    model = model_cls(args_cls.from_dict(config))
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return model


def _pass_peak(model, cands, chunks) -> tuple[int, int]:
    """(peak MLX bytes above the model during a Fisher pass, bytes of its statistics)."""
    import mlx.core as mx
    from temper.core.quant.estimate import fisher_estimates
    from temper.core.quant.tensors import quantizable

    tensors = quantizable(model)
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    sizes: dict[str, int] = {}
    fisher_estimates(model, chunks, tensors, cands, sizes=sizes)
    return mx.get_peak_memory() - base, sizes["statistics"]


def test_extra_candidates_cost_the_same_at_twice_the_layers(engine):
    """The cost of more candidates is a few slices of one tensor, whatever the model's size: going from 2 to
    8 candidates adds no more at 8 layers than at 4 (a delta cache, or gradients multiplied with every
    candidate's delta at once, would add candidates × model size)."""
    chunks = _tokens(samples=2, seq_len=32, vocab=500).chunks
    two = grid(bits=(2, 4), group_sizes=(64,))
    eight = grid(bits=(2, 3, 4, 8), group_sizes=(32, 64))

    def extra(layers: int) -> tuple[int, int]:
        from mlx.utils import tree_flatten

        model = _in_memory_model(layers, 512, hidden=256)
        weights = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
        p2, _ = _pass_peak(model, two, chunks)
        p8, _ = _pass_peak(model, eight, chunks)
        return p8 - p2, weights

    extra4, weights4 = engine.run(lambda ctx: extra(4))
    extra8, weights8 = engine.run(lambda ctx: extra(8))
    assert weights8 > 1.8 * weights4
    largest = 256 * 512 * 4                 # the tied embedding/head, the largest tensor, in fp32
    # 6 more candidates: their group sums (1/32 of the weights) and a few slices of ΔW, not 6 × weights
    assert extra4 < 8 * largest + weights4 // 16, (extra4, weights4)
    assert extra8 < 8 * largest + weights8 // 16, (extra8, weights8)


def test_head_slices_are_freed_inside_the_gradient(engine, monkeypatch):
    """The head's vocabulary slices run inside the gradient transformation, where MLX keeps the graph of every
    array it evaluates: without logit_head.leaf the running logsumexp held every slice's logits alive (5.8 GB
    on a 262k vocabulary). Here: 64 tokens × a 32,768 vocabulary in 1 MiB slices; the pass must stay within
    a few full-vocabulary (tokens × vocab) fp32 arrays above its statistics."""
    from temper.core.quant import logit_head

    monkeypatch.setattr(logit_head, "SLICE_BYTES", 1 << 20)
    tokens, vocab = 64, 32768
    chunks = _tokens(samples=1, seq_len=tokens, vocab=vocab).chunks
    full = tokens * vocab * 4

    def peak() -> tuple[int, int]:
        model = _in_memory_model(2, vocab)
        return _pass_peak(model, grid(bits=(4,), group_sizes=(64,)), chunks)

    above, stats = engine.run(lambda ctx: peak())
    assert above < stats + 3 * full, (above, stats, full)


def test_fisher_sequences_rule_by_backend():
    from temper.core.quant.mode import CPU_FISHER_SEQUENCES, fisher_sequences

    n, why = fisher_sequences(4 * CPU_FISHER_SEQUENCES, "cpu")
    assert n == CPU_FISHER_SEQUENCES and "CPU" in why
    assert fisher_sequences(4, "cpu") == (4, "")           # never more than asked
    assert fisher_sequences(64, "cuda") == (64, "")
    assert fisher_sequences(64, "metal") == (64, "")


def test_kept_logits_give_the_scores_of_recomputed_ones(engine, monkeypatch):
    """Passes B and C reuse pass A's logits when they fit (logit_head.Kept); with nothing kept every pass
    recomputes them: the scores must not change."""
    from temper.core.quant import logit_head
    from temper.core.quant.estimate import fisher_estimates
    from temper.core.quant.tensors import quantizable

    chunks = _tokens(samples=2, seq_len=32, vocab=700).chunks
    cands = grid(bits=(2, 4), group_sizes=(32,))

    def scores(keep: int) -> dict:
        monkeypatch.setattr(logit_head, "KEEP_BYTES", keep)
        monkeypatch.setattr(logit_head, "SLICE_BYTES", 1 << 16)      # several vocabulary slices
        model = _in_memory_model(2, 700)
        return fisher_estimates(model, chunks, quantizable(model), cands, seed=3)

    kept = engine.run(lambda ctx: scores(1 << 30))
    again = engine.run(lambda ctx: scores(0))
    for path, row in kept.items():
        for key, value in row.items():
            assert value == pytest.approx(again[path][key], rel=1e-5, abs=1e-12), (path, key)

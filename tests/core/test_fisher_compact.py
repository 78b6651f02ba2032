"""The Fisher pass with `compact=True` (estimate.fisher_estimates): looked-up tables that are not the head keep
only the calibration's rows, so the estimates are the same and the pass holds less (gemma4 E2B's per-layer input
table is half its model)."""

from __future__ import annotations

import numpy as np
import pytest


def _load(path, dtype):
    import mlx.core as mx
    from mlx_lm.utils import load_model

    model, _ = load_model(path)
    model.set_dtype(dtype)
    mx.eval(model.parameters())
    return model


def _estimates(path, chunks, compact, dtype_name="float32"):
    import mlx.core as mx
    from temper.core.quant import estimate
    from temper.core.quant.candidates import Candidate
    from temper.core.quant.tensors import quantizable

    dtype = getattr(mx, dtype_name)
    model = _load(path, dtype)
    mx.synchronize()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    est = estimate.fisher_estimates(model, chunks, quantizable(model), [Candidate(4, 32), Candidate(2, 64)],
                                    seed=1, storage_dtype=dtype, compact=compact)
    return est, mx.get_peak_memory() - base, model


@pytest.fixture(scope="module")
def gemma4_per_layer(tmp_path_factory, engine):
    """A random gemma4_text with per-layer inputs (its own 512 × 4·16 looked-up table, as E-models have)."""
    from temper.core.library.synthetic import GEMMA4_TEXT_TINY, save_random

    out = tmp_path_factory.mktemp("g4pl") / "m"
    config = dict(GEMMA4_TEXT_TINY, hidden_size_per_layer_input=16, vocab_size=512, vocab_size_per_layer_input=512)
    engine.run(lambda ctx: save_random(out, config, dtype="float32", tokenizer_vocab=None))
    return out


@pytest.mark.parametrize("fixture", ["gemma4_per_layer", "trained_tiny"])
def test_compacted_tables_give_the_same_estimates(request, engine, fixture):
    path = request.getfixturevalue(fixture)
    chunks = np.random.default_rng(0).integers(0, 200, (2, 16)).astype(np.int32)

    def run(ctx):
        full, _, _ = _estimates(path, chunks, False)
        small, _, model = _estimates(path, chunks, True)
        tables = {p: tuple(m.weight.shape) for p, m in model.named_modules()
                  if type(m).__name__ == "Embedding"}
        return full, small, tables

    full, small, tables = engine.run(run)
    assert full.keys() == small.keys()
    for path_, row in full.items():
        for key, value in row.items():
            assert small[path_][key] == pytest.approx(value, rel=1e-5, abs=1e-12), (path_, key)
    rows = len(np.unique(chunks))
    if fixture == "gemma4_per_layer":                     # its per-layer input table was compacted
        assert any(shape[0] == rows for shape in tables.values()), tables


def test_compacting_a_large_untied_table_lowers_the_pass_peak(engine, tmp_path):
    """A model whose input table (32768 × 256 bf16, 16 MiB) is not its head: compacted, the pass's peak MLX
    memory (above the loaded model) drops by most of the table."""
    from temper.core.library.synthetic import save_random

    config = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 1, "intermediate_size": 256,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 32768, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": False}
    save_random(tmp_path / "m", config, tokenizer_vocab=None)
    chunks = np.random.default_rng(1).integers(0, 32768, (2, 32)).astype(np.int32)
    table = 32768 * 256 * 2

    def run(ctx):
        peaks = {}
        for compact in (False, True):
            _, peaks[compact], model = _estimates(tmp_path / "m", chunks, compact, "bfloat16")
            del model
        return peaks

    peaks = engine.run(run)                     # each: the pass's peak above the loaded model's memory
    assert peaks[False] - peaks[True] > 0.75 * table, peaks


def test_the_pass_is_priced_with_its_compacted_tables(gemma4_per_layer, trained_tiny):
    """mode.ModelSize counts the tables the fast pass compacts: gemma4's per-layer input table (its main table is
    the tied head, kept whole); an untied model's input table. The fast pass's price drops by most of them."""
    import json

    from temper.core.quant.mode import ModelSize, peak_bytes

    g = ModelSize.of(gemma4_per_layer)
    assert g.lookup_params == 512 * 4 * 16                   # the per-layer table only
    cfg = json.loads((trained_tiny / "config.json").read_text())
    t = ModelSize.of(trained_tiny)
    tied = cfg.get("tie_word_embeddings", True)
    assert t.lookup_params == (0 if tied else cfg["vocab_size"] * cfg["hidden_size"])
    whole = ModelSize(g.params, g.stored_bytes, g.embed_params, g.hidden, g.layers, g.vocab)
    saved = peak_bytes(whole, "fast", "cuda", tokens=8) - peak_bytes(g, "fast", "cuda", tokens=8)
    assert saved > 0.9 * g.lookup_params * (g.stored_bytes // g.params)

"""The sensitivity pass on the trained fixture: exact KL, fast estimate, hybrid, resume, reuse, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from temper.core.errors import JobCancelled, QuantError
from temper.core.quant import reference
from temper.core.quant.calibration import calibration_set
from temper.core.quant.candidates import grid
from temper.core.quant.rank_correlation import spearman
from temper.core.quant.scores import SensitivityTable
from temper.core.quant.sensitivity import LayerScored, run_sensitivity

CANDS = grid(bits=(2, 4, 8), group_sizes=(64,))
N_TENSORS = 30   # 4 blocks x 7 Linears + embed_tokens + lm_head


@pytest.fixture(scope="module")
def calib(trained_tiny):
    from mlx_lm.utils import load_tokenizer

    return calibration_set(load_tokenizer(trained_tiny), samples=2, seq_len=32)


@pytest.fixture(scope="module")
def exact_table(engine, trained_tiny, calib, tmp_path_factory) -> SensitivityTable:
    out = tmp_path_factory.mktemp("sens") / "exact.json"
    return engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="exact", out=out))


def _values(table: SensitivityTable, key: str) -> list[float]:
    return [t.scores[key] for t in table.tensors]


def test_exact_covers_every_tensor_and_grows_as_bits_drop(exact_table):
    paths = [t.path for t in exact_table.tensors]
    assert len(paths) == N_TENSORS
    assert paths[0] == "model.embed_tokens" and paths[-1] == "lm_head"    # measured like any other tensor
    assert all(set(t.methods.values()) == {"exact"} for t in exact_table.tensors)
    m2, m4, m8 = (float(np.mean(_values(exact_table, f"affine:{b}b:g64"))) for b in (2, 4, 8))
    assert m2 > m4 > m8 >= 0
    assert m8 < 1e-3 and m2 > 20 * m8
    # per tensor: 2-bit always hurts more than 8-bit
    assert all(t.scores["affine:2b:g64"] > t.scores["affine:8b:g64"] for t in exact_table.tensors)
    # one reference batch, one check of the block replay, then 3 candidates per tensor
    assert exact_table.meta["forward_passes"] == 2 + N_TENSORS * 3
    assert exact_table.meta["peak_mlx_bytes"] > 0 and exact_table.meta["reference"] == "full"
    assert exact_table.meta["replay"] is True


def test_block_replay_gives_the_same_kl_as_full_passes(engine, trained_tiny, calib, exact_table, tmp_path):
    two = grid(bits=(2,), group_sizes=(64,))
    full = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, two, calib, mode="exact", replay=False,
                                                  out=tmp_path / "full.json"))
    assert full.meta["replay"] is False and full.meta["forward_passes"] == 1 + N_TENSORS
    got = [t.scores["affine:2b:g64"] for t in exact_table.tensors]
    want = [t.scores["affine:2b:g64"] for t in full.tensors]
    assert got == pytest.approx(want, rel=1e-4, abs=1e-9)


def test_fast_estimate_ranks_like_exact(engine, trained_tiny, calib, exact_table, tmp_path):
    events: list[LayerScored] = []
    job = engine.submit(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="fast",
                                                    out=tmp_path / "fast.json"))
    events = [e for e in job.events() if isinstance(e, LayerScored)]
    fast = job.result()
    assert [e.done for e in events] == list(range(1, N_TENSORS + 1)) and events[-1].total == N_TENSORS
    assert fast.meta["forward_passes"] == calib.samples      # one forward+backward per chunk
    for key in ("affine:2b:g64", "affine:4b:g64"):
        rho = spearman(_values(fast, key), _values(exact_table, key))
        assert rho > 0.6, (key, rho)


def test_hybrid_matches_exact_on_measured_tensors(engine, trained_tiny, calib, exact_table, tmp_path):
    hyb = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="hybrid",
                                                 fraction=0.2, out=tmp_path / "hybrid.json"))
    measured = set(hyb.meta["exact_paths"])
    assert len(measured) == 6
    exact = exact_table.by_path()
    for row in hyb.tensors:
        kinds = set(row.methods.values())
        if row.path in measured:
            assert kinds == {"exact"}
            assert row.scores == pytest.approx(exact[row.path].scores, rel=1e-6)
        else:
            assert kinds == {"estimate"}
    assert set(hyb.meta["correction"]) == {c.key for c in CANDS}


def test_resume_after_cancel_equals_uninterrupted(engine, trained_tiny, calib, exact_table, tmp_path):
    out = tmp_path / "resume.json"
    job = engine.submit(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="exact", out=out))
    scored = 0
    for event in job.events():
        if isinstance(event, LayerScored):
            scored += 1
            if scored == 5:
                job.cancel()
    with pytest.raises(JobCancelled):
        job.result()
    partial = SensitivityTable.load(out)
    finished = [t for t in partial.tensors if t.scores]
    assert not partial.meta["complete"]
    assert 5 <= len(finished) < N_TENSORS
    job = engine.submit(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="exact", out=out))
    events = [e for e in job.events() if isinstance(e, LayerScored)]
    resumed = job.result()
    assert len(events) == N_TENSORS          # finished tensors are announced too, so a live view fills in
    # each event carries its tensor's facts: the live Layers view places the row without the table
    facts = {t.path: (t.params, t.kind, t.layer, tuple(t.shape)) for t in resumed.tensors}
    assert {e.path: (e.params, e.kind, e.layer, e.shape) for e in events} == facts
    assert resumed.meta["forward_passes"] == 2 + (N_TENSORS - len(finished)) * 3
    assert [t.scores for t in resumed.tensors] == [t.scores for t in exact_table.tensors]


def test_saved_table_is_reused_without_forward_passes(engine, trained_tiny, calib, exact_table, monkeypatch):
    calls = []
    original = reference.forward
    monkeypatch.setattr(reference, "forward", lambda m, x: calls.append(1) or original(m, x))
    out = Path(exact_table.meta["file"])
    subset = grid(bits=(2, 8), group_sizes=(64,))
    again = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, subset, calib, mode="exact", out=out))
    assert calls == [] and again.meta["reused"] and again.meta["forward_passes"] == 0
    assert again.candidates == [c.key for c in subset]
    assert again.tensors[3].scores == {k: exact_table.tensors[3].scores[k] for k in again.candidates}
    # a hybrid or fast request is served by the exact table too (exact answers every mode)
    engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, subset, calib, mode="hybrid", out=out))
    engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, subset, calib, mode="fast", out=out))
    assert calls == []


def test_cancel_takes_effect_within_one_tensor(engine, trained_tiny, calib, tmp_path, monkeypatch):
    calls = []
    original = reference.forward
    holder = {}

    def forward(model, x):
        calls.append(1)
        if len(calls) == 4:       # reference, replay check, then the first tensor's first candidate: cancel
            holder["job"].cancel()
        return original(model, x)

    monkeypatch.setattr(reference, "forward", forward)
    out = tmp_path / "cancel.json"
    holder["job"] = job = engine.submit(
        lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="exact", out=out))
    with pytest.raises(JobCancelled):
        job.result()
    assert len(calls) == 4       # stopped before the tensor's next candidate
    assert not out.exists() or not any(t.scores for t in SensitivityTable.load(out).tensors)


def test_group_size_that_does_not_divide_is_skipped_and_recorded(engine, tmp_path):
    from temper.core.library.synthetic import build_model

    model = engine.run(lambda ctx: build_model(tmp_path / "odd", "llama", overrides={"intermediate_size": 96}))
    cands = grid(bits=(4,), group_sizes=(32, 64))
    table = engine.run(lambda ctx: run_sensitivity(ctx, model, cands, None, mode="fast", samples=1, seq_len=16))
    down = table.by_path()["model.layers.0.mlp.down_proj"]          # input dim 96: gs 64 cannot split it
    assert down.skipped == ["affine:4b:g64"] and list(down.scores) == ["affine:4b:g32"]
    up = table.by_path()["model.layers.0.mlp.up_proj"]
    assert up.skipped == [] and set(up.scores) == {"affine:4b:g32", "affine:4b:g64"}
    assert Path(table.meta["file"]).parent.name == "sensitivity"    # default place: data_dir()/sensitivity


def test_bad_inputs(engine, trained_tiny, calib, tmp_path):
    with pytest.raises(QuantError, match="unknown sensitivity mode"):
        engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="slow"))
    with pytest.raises(QuantError, match="no quantization candidates"):
        engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, [], calib))
    with pytest.raises(QuantError, match="unknown quantization mode"):
        grid(modes=("int3",))
    with pytest.raises(QuantError, match="hybrid fraction"):
        engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, fraction=0))
    import json
    import shutil

    quantized = tmp_path / "q"
    shutil.copytree(trained_tiny, quantized)
    config = json.loads((quantized / "config.json").read_text())
    config["quantization"] = {"group_size": 64, "bits": 4}
    (quantized / "config.json").write_text(json.dumps(config))
    with pytest.raises(QuantError, match="already quantized"):
        engine.run(lambda ctx: run_sensitivity(ctx, quantized, CANDS, calib))


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0)


def test_cli_prints_a_table_and_reuses_it(trained_tiny, capsys):
    from temper.cli.main import main

    argv = ["sensitivity", str(trained_tiny), "--mode", "fast", "--bits", "2,4", "--samples", "1",
            "--seq-len", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "model.layers.3.mlp.down_proj" in out and "lm_head" in out and "~" in out
    assert "1 forward passes" in out
    assert main(argv) == 0
    assert "reused saved table" in capsys.readouterr().out
    assert main(["sensitivity", str(trained_tiny), "--bits", "7"]) == 2
    assert "--bits: item 1: must be one of 2, 3, 4, 5, 6, 8, got 7" in capsys.readouterr().err
    streamed = ["sensitivity", str(trained_tiny), "--streamed", "--bits", "4", "--samples", "1", "--seq-len", "16"]
    assert main(streamed) == 0
    out = capsys.readouterr().out
    assert "mode exact" in out and "streamed, 18 block reads" in out     # 4 reference + 10 origins + 4 embedding


def test_gemma4_mechanics_tied_embedding_and_replay(engine, tiny_gemma4, tmp_path):
    """Random weights (mechanics only): sliding + full attention, tied embedding measured once."""
    cands = grid(bits=(2, 8), group_sizes=(32,))
    table = engine.run(lambda ctx: run_sensitivity(ctx, tiny_gemma4, cands, None, mode="exact", samples=1,
                                                   seq_len=24, out=tmp_path / "g4.json"))
    paths = [t.path for t in table.tensors]
    assert "model.embed_tokens" in paths and "lm_head" not in paths       # tied: one tensor, both uses
    assert all(t.scores["affine:2b:g32"] > t.scores["affine:8b:g32"] for t in table.tensors)
    assert table.meta["replay"] is True and table.float_bytes == 4


def test_finished_exact_table_answers_fast_and_hybrid_requests(engine, trained_tiny, calib):
    one = grid(bits=(3,), group_sizes=(64,))
    first = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, one, calib, mode="exact"))
    assert not first.meta["reused"] and first.meta["forward_passes"] == 2 + N_TENSORS
    for mode in ("fast", "hybrid"):
        again = engine.run(lambda ctx, mode=mode: run_sensitivity(ctx, trained_tiny, one, calib, mode=mode))
        assert again.meta["reused"] and again.meta["mode"] == "exact"
        assert [t.scores for t in again.tensors] == [t.scores for t in first.tensors]
    # the other way round does not hold: a fast table never stands in for an exact request
    fast = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, grid(bits=(5,)), calib, mode="fast"))
    assert not fast.meta["reused"]
    exact = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, grid(bits=(5,)), calib, mode="exact"))
    assert not exact.meta["reused"] and set(exact.tensors[0].methods.values()) == {"exact"}


def test_streamed_pass_gives_the_exact_scores_and_resumes(engine, trained_tiny, calib, exact_table, tmp_path):
    out = tmp_path / "streamed.json"
    job = engine.submit(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="hybrid",
                                                    streamed=True, out=out))
    scored = 0
    for event in job.events():
        if isinstance(event, LayerScored):
            scored += 1
            if scored == 4:
                job.cancel()
    with pytest.raises(JobCancelled):
        job.result()
    partial = SensitivityTable.load(out)
    assert not partial.meta["complete"] and 4 <= sum(1 for t in partial.tensors if t.scores) < N_TENSORS
    job = engine.submit(lambda ctx: run_sensitivity(ctx, trained_tiny, CANDS, calib, mode="hybrid",
                                                    streamed=True, out=out))
    assert sum(isinstance(e, LayerScored) for e in job.events()) == N_TENSORS
    table = job.result()
    assert table.meta["streamed"] is True and table.meta["mode"] == "exact"   # streaming measures exactly
    got = np.array([[t.scores[c.key] for c in CANDS] for t in table.tensors])
    want = np.array([[t.scores[c.key] for c in CANDS] for t in exact_table.tensors])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
    assert all(set(t.methods.values()) == {"exact"} for t in table.tensors)


@pytest.mark.parametrize("shared", [False, True])
def test_streamed_gemma4_equals_in_memory(engine, tiny_gemma4, tmp_path, shared):
    """Issue 13 item 3: the streamed pass carries gemma4's key/value state (and per-layer inputs)."""
    from temper.core.library.synthetic import GEMMA4_TEXT_TINY, build_model

    model = tiny_gemma4
    if shared:     # E2B-like: KV-shared blocks and per-layer input embeddings
        model = engine.run(lambda ctx: build_model(tmp_path / "e2b", dict(
            GEMMA4_TEXT_TINY, num_kv_shared_layers=2, hidden_size_per_layer_input=16,
            layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"])))
    cands = grid(bits=(2, 8), group_sizes=(32,))

    def run(streamed):
        return engine.run(lambda ctx: run_sensitivity(ctx, model, cands, None, mode="exact", samples=2, seq_len=24,
                                                       streamed=streamed, out=tmp_path / f"g{streamed}.json"))

    memory, streamed = run(False), run(True)
    assert streamed.meta["streamed"] is True
    got = np.array([[t.scores.get(c.key, 0.0) for c in cands] for t in streamed.tensors])
    want = np.array([[t.scores.get(c.key, 0.0) for c in cands] for t in memory.tensors])
    assert [t.path for t in streamed.tensors] == [t.path for t in memory.tensors]
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-7)


def test_streamed_peak_memory_stays_below_the_model(engine, tmp_path):
    """With 8 blocks the in-memory pass must hold all fp32 weights; the streamed one holds one block."""
    from temper.core.library.synthetic import build_model
    from temper.core.quant.calibration import TokenSet
    from temper.core.quant.streamed import fp32_bytes

    model = engine.run(lambda ctx: build_model(tmp_path / "deep", "llama", overrides={
        "num_hidden_layers": 8, "hidden_size": 256, "intermediate_size": 1024}))
    tokens = TokenSet("t", "calibration", np.random.default_rng(0).integers(0, 500, (1, 16)).astype(np.int32))
    table = engine.run(lambda ctx: run_sensitivity(ctx, model, grid(bits=(4,), group_sizes=(64,)), tokens,
                                                   streamed=True, out=tmp_path / "deep.json"))
    size = fp32_bytes(model)
    assert size > 30 << 20
    assert table.meta["peak_mlx_bytes"] - table.meta["baseline_mlx_bytes"] < size / 3, table.meta
    assert table.meta["block_loads"] == 8 + 8 * 9 // 2 + 8    # reference, origins, the embedding's stream

"""The Fisher pass in parts (fisher_groups.py): where its statistics do not fit the free memory, tensors are
measured a part at a time, the same scores for a part of the statistics' memory."""

from __future__ import annotations

import numpy as np
import pytest
from temper.core.errors import QuantError
from temper.core.quant import fisher_groups
from temper.core.quant.calibration import TokenSet
from temper.core.quant.candidates import Candidate, grid
from temper.core.quant.sensitivity import run_sensitivity

CANDS = [Candidate(2, 64), Candidate(4, 32)]


def _model(path):
    import mlx.core as mx
    from mlx_lm.utils import load_model

    model, _ = load_model(path)
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return model


def _chunks(samples: int = 3, seq_len: int = 32, vocab: int = 500) -> np.ndarray:
    return np.random.default_rng(0).integers(0, vocab, (samples, seq_len)).astype(np.int32)


def _needs(model, tensors, cands, chunks) -> tuple[int, int]:
    """(what a pass over all `tensors` holds, what the largest single tensor's pass holds) for `chunks`."""
    from temper.core.quant.logit_head import find_head

    head = find_head(model)
    reach = fisher_groups.Reach.of(chunks, head.vocab)
    return (fisher_groups.needed_bytes(tensors, cands, 4, head.path, reach),
            max(fisher_groups.needed_bytes([t], cands, 4, head.path, reach) for t in tensors))


def test_a_table_counts_only_the_rows_the_calibration_reaches(engine, tiny_llama):
    """An untied embedding keeps statistics and gradients for the token ids the text holds, the head a full
    set of statistics and one vocabulary slice's gradient: a table larger than the room is no reason to refuse
    when the rows reached fit (Llama-3-8B's 128k-row table was refused at 1.5 GB on the GPU)."""
    def run(ctx):
        from temper.core.quant.logit_head import find_head
        from temper.core.quant.tensors import quantizable

        model = _model(tiny_llama)
        tensors = quantizable(model)
        head = find_head(model)
        chunks = _chunks(samples=1, seq_len=16)
        reach = fisher_groups.Reach.of(chunks, head.vocab)
        table = next(t for t in tensors if hasattr(t.module, "as_linear") and t.path != head.path)
        rows = table.params // table.shape[-1]
        whole = fisher_groups.needed_bytes([table], CANDS, 4)
        reached = fisher_groups.needed_bytes([table], CANDS, 4, head.path, reach)
        try:
            fisher_groups.parts([table], CANDS, 4, reached, head.path, reach)
            fisher_groups.parts([table], CANDS, 4, reached, head.path)
            refused = ""
        except QuantError as exc:
            refused = str(exc)
        return rows, reach.rows, whole, reached, refused

    rows, reached_rows, whole, reached, refused = engine.run(run)
    assert reached_rows == len(np.unique(_chunks(samples=1, seq_len=16))) < rows
    assert reached == pytest.approx(whole * reached_rows / rows)
    assert "alone need" in refused                     # without the reach, the same room is refused


def test_parts_keep_model_order_with_looked_up_tables_and_head_last(engine, tiny_llama):
    def run(ctx):      # only names and numbers leave the engine thread (MLX arrays stay where they were made)
        from temper.core.quant.logit_head import find_head
        from temper.core.quant.tensors import quantizable

        model = _model(tiny_llama)
        tensors = quantizable(model)
        total = sum(fisher_groups.statistics_bytes(t, CANDS, 4) for t in tensors)
        largest = max(fisher_groups.statistics_bytes(t, CANDS, 4) + 4 * t.params for t in tensors)
        room = max(total // 3, largest)
        head = find_head(model).path
        split = fisher_groups.parts(tensors, CANDS, 4, room, head)
        try:
            fisher_groups.parts(tensors, CANDS, 4, 1000, head)
            refused = ""
        except QuantError as exc:
            refused = str(exc)
        return ([t.path for t in tensors], {t.path for t in tensors if hasattr(t.module, "as_linear")},
                [[t.path for t in p] for p in split],
                [sum(fisher_groups.statistics_bytes(t, CANDS, 4) for t in p) for p in split], room, head, refused)

    paths, looked_up, parts, part_bytes, room, head, refused = engine.run(run)
    assert len(parts) >= 2
    order = [p for part in parts for p in part]
    assert sorted(order) == sorted(paths)                                    # each tensor once
    body = [p for p in paths if p != head and p not in looked_up]
    assert order[:len(body)] == body                                         # the Linears first, in model order
    assert set(order[-len(looked_up):]) == looked_up                         # the looked-up tables at the end
    assert all(b <= room for b in part_bytes)
    assert "alone need" in refused


def test_parts_give_the_single_pass_scores_for_part_of_its_statistics(engine, tiny_llama):
    def run(ctx):
        from temper.core.quant.estimate import fisher_estimates
        from temper.core.quant.tensors import quantizable

        model = _model(tiny_llama)
        tensors = quantizable(model)
        whole_sizes: dict[str, int] = {}
        whole = fisher_estimates(model, _chunks(), tensors, CANDS, seed=1, sizes=whole_sizes)
        total, largest = _needs(model, tensors, CANDS, _chunks())
        notes: list[str] = []
        sizes: dict[str, int] = {}
        seen.clear()
        parted = fisher_groups.grouped_estimates(model, _chunks(), quantizable(model), CANDS, seed=1, sizes=sizes,
                                                 progress=lambda done, total, message, work=None: seen.append(
                                                     (done, total, message, dict(work or {}))),
                                                 room=fisher_groups.WORKING + max(total // 3, largest),
                                                 element=4,
                                                 note=notes.append)
        return whole, whole_sizes, parted, sizes, notes

    seen: list[tuple] = []
    whole, whole_sizes, parted, sizes, notes = engine.run(run)
    dones, totals = [d for d, *_ in seen], {t for _, t, *_ in seen}
    assert dones == sorted(dones) and len(totals) == 1 and dones[-1] == totals.pop()   # one count over the parts
    fractions = [w["work"] / w["work_total"] for *_, w in seen if w.get("work_total")]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)        # one ETA over the parts
    assert seen[0][2].startswith("part 1/") and seen[-1][2].startswith(f"part {sizes['parts']}/")
    assert sizes["parts"] >= 2 and len(notes) == 1 and "parts" in notes[0]
    assert sizes["statistics"] < 0.75 * whole_sizes["statistics"]
    assert parted.keys() == whole.keys()
    for path, scores in whole.items():
        for key, value in scores.items():
            assert parted[path][key] == pytest.approx(value, rel=1e-4, abs=1e-12), (path, key)


def test_a_sensitivity_run_short_of_memory_measures_in_parts(engine, trained_tiny, monkeypatch):
    """The run asks how much is free (free_room) and keeps how many parts it took in the table."""
    def sizes(ctx):
        from temper.core.quant.tensors import quantizable

        model = _model(trained_tiny)
        return _needs(model, quantizable(model), grid(bits=(2, 4)), _chunks(samples=2))

    total, largest = engine.run(sizes)
    assert largest < total // 2
    monkeypatch.setattr(fisher_groups, "free_room", lambda: fisher_groups.WORKING + max(largest, total // 2))
    tokens = TokenSet("t", "calibration", _chunks(samples=2))
    table = engine.run(lambda ctx: run_sensitivity(ctx, trained_tiny, grid(bits=(2, 4)), tokens, mode="fast"))
    assert table.meta["fisher_parts"] > 1
    assert table.tensors and all(row.scores for row in table.tensors)


def test_the_room_can_be_capped_but_never_raised(monkeypatch):
    from temper.core.quant import mode

    monkeypatch.setattr(mode, "available_bytes", lambda where=None: 10 << 30)
    free = fisher_groups.free_room()
    assert free == int(mode.FIT_FRACTION * (10 << 30))
    monkeypatch.setenv(fisher_groups.ROOM_ENV, "512")
    assert fisher_groups.free_room() == 512 << 20
    monkeypatch.setenv(fisher_groups.ROOM_ENV, str(100 << 10))      # 100 GB: more than is free
    assert fisher_groups.free_room() == free


LLAMA_UNTIED = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "rms_norm_eps": 1e-5,
                "tie_word_embeddings": False}


@pytest.mark.parametrize("shape", ["llama_untied", "gemma4_per_layer"])
def test_parts_compact_the_tables_before_the_first_part(engine, tmp_path, shape):
    """With `compact`, a looked-up table that is not the head (Llama's untied input table, Gemma-4's per-layer
    input table) holds only the rows the calibration reaches from the first part on (not only in the last, as
    before: a Llama-3-8B shape in parts peaked 1 GB above one pass), and the scores are the single compacted
    pass's."""
    from temper.core.library.synthetic import GEMMA4_TEXT_TINY, save_random

    config, table_path = LLAMA_UNTIED, "model.embed_tokens"
    if shape == "gemma4_per_layer":
        config = dict(GEMMA4_TEXT_TINY, hidden_size_per_layer_input=16, vocab_size=4096,
                      vocab_size_per_layer_input=4096)
        table_path = "model.embed_tokens_per_layer"
    engine.run(lambda ctx: save_random(tmp_path / "m", config, dtype="float32", tokenizer_vocab=None))
    chunks = np.random.default_rng(2).integers(0, 4096, (2, 16)).astype(np.int32)

    def run(ctx):
        from temper.core.quant.estimate import fisher_estimates
        from temper.core.quant.tensors import quantizable

        model = _model(tmp_path / "m")
        tensors = quantizable(model)
        table = next(t for t in tensors if t.path.endswith(table_path))
        rows_seen: list[int] = []
        total, largest = _needs(model, tensors, CANDS, chunks)
        sizes: dict[str, int] = {}
        parted = fisher_groups.grouped_estimates(
            model, chunks, tensors, CANDS, seed=1, room=fisher_groups.WORKING + max(total // 3, largest), element=4,
            compact=True, sizes=sizes,
            progress=lambda done, total, message, work=None: rows_seen.append(table.module["weight"].shape[0]))
        fresh = _model(tmp_path / "m")
        single = fisher_estimates(fresh, chunks, quantizable(fresh), CANDS, seed=1, compact=True)
        return parted, single, rows_seen, sizes["parts"]

    parted, single, rows_seen, parts = engine.run(run)
    assert parts >= 2
    assert set(rows_seen) == {len(np.unique(chunks))}                       # compacted in every part
    assert parted.keys() == single.keys()
    for path, scores in single.items():
        for key, value in scores.items():
            assert parted[path][key] == pytest.approx(value, rel=1e-4, abs=1e-12), (path, key)


def test_a_refusal_says_where_the_room_came_from(engine, tiny_llama, monkeypatch):
    """Too small a room: one line naming the tensor, what is left for it, the cap and the working arrays."""
    monkeypatch.setenv(fisher_groups.ROOM_ENV, "1")

    def run(ctx):
        from temper.core.quant.tensors import quantizable

        model = _model(tiny_llama)
        try:
            fisher_groups.grouped_estimates(model, _chunks(), quantizable(model), CANDS, seed=1, element=4,
                                            room=fisher_groups.free_room())
        except QuantError as exc:
            return str(exc)
        return ""

    said = engine.run(run)
    assert "alone need" in said and f"capped by {fisher_groups.ROOM_ENV}=1" in said and "working arrays" in said
    assert "\n" not in said

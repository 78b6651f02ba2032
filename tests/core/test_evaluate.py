"""Held-out quality against the base, and the quantize / eval commands end to end."""

from __future__ import annotations

import json

import pytest
from quant_support import HELD_OUT, chunks_for, scored_table
from temper.cli.main import main
from temper.core.errors import QuantError
from temper.core.quant.candidates import grid
from temper.core.quant.evaluate import compare_folder, evaluate, format_table, reference
from temper.core.quant.inventory import load_inventory
from temper.core.quant.pipeline import quantize
from temper.core.quant.recipes import build_plan
from temper.core.quant.request import QuantRequest
from temper.core.quant.write import write_quantized


@pytest.fixture(scope="module")
def written(tiny_llama, engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("quants")
    inv = engine.run(lambda ctx: load_inventory(tiny_llama))
    for recipe in ("uniform-2", "uniform-8"):
        engine.run(lambda ctx, r=recipe: write_quantized(tiny_llama, build_plan(r, inv), root / r))
    return root


def test_base_against_itself_is_zero(tiny_llama, engine):
    chunks = chunks_for(tiny_llama)

    def run(ctx):
        from mlx_lm import load
        from temper.core.quant.evaluate import compare_model
        ref = reference(tiny_llama, chunks)
        model, _ = load(str(tiny_llama))
        return ref, compare_model(model, ref, name="same")

    ref, q = engine.run(run)
    assert q.kl_mean == pytest.approx(0, abs=1e-6) and q.kl_max == pytest.approx(0, abs=1e-5)
    assert q.top1 == 1.0 and q.ppl == pytest.approx(ref.ppl, rel=1e-5)
    assert q.tokens == sum(len(c) for c in chunks)


def test_fewer_bits_more_divergence(tiny_llama, engine, written):
    chunks = chunks_for(tiny_llama)
    rows = engine.run(lambda ctx: evaluate(ctx, tiny_llama, [written / "uniform-2", written / "uniform-8"], chunks))
    base, two, eight = rows
    assert base.kl_mean == 0 and base.real_bpw == pytest.approx(32.0, rel=0.01)
    assert two.kl_mean > 10 * eight.kl_mean > 0
    assert two.top1 < eight.top1 <= 1.0
    for r in (two, eight):
        assert r.kl_median <= r.kl_p95 <= r.kl_p99 <= r.kl_max
        assert r.kl_se > 0 and r.ppl > 1 and r.real_bpw < 10
    assert eight.real_bpw > two.real_bpw
    text = format_table(rows)
    assert "uniform-2" in text and "±" in text and "top-1" in text


def test_evaluation_needs_text(tiny_llama, engine, written):
    def run(ctx):
        ref = reference(tiny_llama, [[1]])
        return compare_folder(ref, written / "uniform-8")
    with pytest.raises(QuantError, match="no evaluation text"):
        engine.run(run)


def test_quantize_job_emits_phases_and_verifies(tiny_llama, engine, tmp_path):
    table = engine.run(lambda ctx: scored_table(ctx, tiny_llama, grid((2, 4, 8), (64,))))
    table.save(tmp_path / "scores.json")
    req = QuantRequest(model=str(tiny_llama), target_bpw=5.0, sensitivity=str(tmp_path / "scores.json"),
                       output=str(tmp_path / "q"), samples=2, seq_len=48)
    job = engine.submit(lambda ctx: quantize(ctx, req), kind="quantize")
    phases = [e.phase for e in job.events() if hasattr(e, "phase")]
    result = job.result()
    for phase in ("inventory", "sensitivity", "allocate", "write", "verify", "evaluate"):
        assert phase in phases
    assert result.verify.ok and result.verify.real_bpw <= 5.0
    assert result.quality[1].kl_mean > 0
    assert "on held-out text" in (tmp_path / "q" / "README.md").read_text()


def test_cli_quantize_and_eval(tiny_llama, engine, tmp_path, capsys, monkeypatch):
    import temper.core.engine.thread as thread

    monkeypatch.setattr(thread, "_default", engine)
    out = tmp_path / "cli-q"
    assert main(["quantize", str(tiny_llama), "--recipe", "mixed_3_6", "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verify"]["ok"] and data["plan"]["method"] == "mixed_3_6"
    assert main(["quantize", str(tiny_llama), "--recipe", "mixed_3_6", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["quantize", str(tiny_llama), "--recipe", "nope"]) == 2
    assert "unknown recipe" in capsys.readouterr().err
    assert main(["quantize", str(tiny_llama), "--bpw", "4", "--sensitivity", str(tmp_path / "none.json")]) == 2
    assert "cannot read sensitivity file" in capsys.readouterr().err
    # --bpw measures scores with the sensitivity pass; a second budget reuses the saved table
    assert main(["quantize", str(tiny_llama), "--bpw", "4.5", "--sensitivity-mode", "fast", "--plan-only"]) == 0
    first = capsys.readouterr().err
    assert "measured fast scores (" in first and "(0 forward passes)" not in first
    assert main(["quantize", str(tiny_llama), "--bpw", "5.5", "--sensitivity-mode", "fast", "--plan-only"]) == 0
    assert "reused fast scores (0 forward passes)" in capsys.readouterr().err
    assert main(["quantize", str(tiny_llama), "--recipe", "uniform-4", "--plan-only"]) == 0
    assert "model.layers.1.mlp.down_proj" in capsys.readouterr().out
    text = tmp_path / "held.txt"
    text.write_text(HELD_OUT * 4)
    assert main(["eval", str(tiny_llama), str(out), "--text", str(text), "--chunks", "2", "--chunk-len", "32"]) == 0
    printed = capsys.readouterr().out
    assert "cli-q" in printed and "KL mean" in printed


def test_quantize_job_with_awq_and_plan_only(tiny_gemma4, engine, tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text(HELD_OUT * 3)
    req = QuantRequest(model=str(tiny_gemma4), recipe="unsloth-3", awq=True, output=str(tmp_path / "a"),
                       calibration=str(text), samples=2, seq_len=48, evaluate=False)
    result = engine.run(lambda ctx: quantize(ctx, req))
    assert result.verify.ok and "groups scaled" in (tmp_path / "a" / "README.md").read_text()
    only = engine.run(lambda ctx: quantize(ctx, QuantRequest(model=str(tiny_gemma4), recipe="mixed_4_6",
                                                             plan_only=True, output=str(tmp_path / "b"))))
    assert only.out is None and not (tmp_path / "b").exists()
    assert only.to_dict()["plan"]["method"] == "mixed_4_6"


def test_evaluate_reports_every_chunk_so_its_eta_moves(tiny_llama, engine):
    from temper.core.engine.events import Progress
    from temper.core.quant.evaluate import evaluate

    seen: list[Progress] = []

    class Ctx:
        job_id = 7

        def check(self) -> None:
            pass

        def emit(self, event) -> None:
            seen.append(event)

    chunks = [[1, 2, 3, 4, 5, 6, 7, 8]] * 3
    engine.run(lambda ctx: evaluate(Ctx(), tiny_llama, [tiny_llama], chunks))
    loading = [(e.done, e.message) for e in seen if e.phase == "evaluate" and e.message.startswith("loading")]
    steps = [(e.done, e.total) for e in seen if e.phase == "evaluate" and not e.message.startswith("loading")]
    assert steps == [(i, 6) for i in range(7)]          # 3 chunks x (base + 1 model), then done
    assert loading == [(0, f"loading base {tiny_llama.name}"), (3, f"loading {tiny_llama.name}")]  # before each load

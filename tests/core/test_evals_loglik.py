"""MMLU cloze scoring: the shared-context path (context once, its cache copied per choice) gives the
same log-likelihoods as running each context + choice from scratch, and the per-character choice rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temper.core.evals.loglik import choice_logprobs, pick


def test_pick_divides_by_characters_without_the_leading_space() -> None:
    # " ab" (2 chars) at -3.0 is -1.5/char; " abcdef" (6 chars) at -6.0 is -1.0/char: the longer one wins
    assert pick([-3.0, -6.0], [" ab", " abcdef"]) == 1
    assert pick([-1.0, -1.0], [" a", " b"]) == 0                         # ties: the first


def test_cached_context_matches_scoring_each_row_from_scratch(trained_tiny: Path, engine) -> None:
    def job(ctx: Any) -> tuple[list[float], list[float]]:
        import mlx.core as mx
        from mlx_lm import load

        model, tok = load(str(trained_tiny))
        context = "The following are questions about geography.\nQuestion: What is the capital of France?\nAnswer:"
        choices = [" Paris", " The city of Lyon in the south", " Rome", " a"]
        fast = choice_logprobs(model, tok, context, choices)
        slow = []
        ctx_ids = list(tok.encode(context, add_special_tokens=True))
        for c in choices:
            ids = list(tok.encode(c, add_special_tokens=False))
            logits = model(mx.array([ctx_ids + ids])).astype(mx.float32)[0]
            logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            slow.append(sum(float(logp[len(ctx_ids) - 1 + k, t]) for k, t in enumerate(ids)))
        return fast, slow

    fast, slow = engine.run(job)
    assert fast == pytest.approx(slow, abs=2e-3)
    assert len(set(round(x, 3) for x in slow)) == 4                     # the choices really differ

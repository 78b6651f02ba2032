"""The one reference of next-token distributions (core/quant/reference.py): full vs top-k storage, per-token
KL, top-1 agreement and perplexity, chunk arrays and token lists of any length."""

from __future__ import annotations

import pytest
from temper.core.quant import reference as reference
from temper.core.quant.calibration import calibration_set
from temper.core.quant.candidates import Candidate
from temper.core.quant.tensors import fake_quantize, quantizable


def test_topk_reference_is_a_close_lower_bound(engine, trained_tiny):
    def work(ctx):
        import mlx.core as mx
        from temper.core.engine.loader import load

        lm = load(trained_tiny)
        lm.model.set_dtype(mx.float32)
        chunks = calibration_set(lm.tokenizer, samples=2, seq_len=32).chunks
        full = reference.Reference(lm.model, chunks, vocab=1024)
        topk = reference.Reference(lm.model, chunks, vocab=1024, budget_bytes=0)
        same = full.per_token(lm.model)
        head = next(t for t in quantizable(lm.model) if t.path == "lm_head")
        original = head.module["weight"]
        head.module["weight"] = fake_quantize(original, Candidate(2, 64), mx.bfloat16)
        result = (full.kind, topk.kind, same, full.kl(lm.model), topk.kl(lm.model), full.per_token(lm.model))
        head.module["weight"] = original
        return result

    kind_full, kind_topk, same, kl_full, kl_topk, changed = engine.run(work)
    tok_kl, tok_top1 = changed.kl, changed.top1
    assert kind_full == "full" and kind_topk.startswith("top-256")
    assert same.kl.max() < 1e-5 and same.top1.all()             # the model against itself
    assert 0 < kl_topk <= kl_full * (1 + 1e-5)
    assert kl_topk > 0.9 * kl_full
    assert tok_kl.shape == (64,) and tok_kl.mean() == pytest.approx(kl_full, rel=1e-4)
    assert 0 < tok_top1.mean() < 1


@pytest.mark.parametrize("fault", ["differs", "raises"])
def test_a_failed_replay_check_is_said_not_silent(engine, trained_tiny, monkeypatch, fault):
    """Before: a replay that did not reproduce the reference (or raised) quietly turned replay off, and every
    later pass ran whole forwards, 2-10x slower, with nothing said. Now the reason is in `replay_note` (the
    table's meta, the job's progress and `temper sensitivity`'s summary)."""
    from temper.core.quant.replay import Replay

    class Wrong(Replay):
        def __call__(self, *args, **kwargs):
            if fault == "raises":
                raise RuntimeError("this block takes a cache the stand-in lacks")
            return self.out * 1.5

    def work(ctx):
        from temper.core.engine.loader import load

        lm = load(trained_tiny)
        chunks = calibration_set(lm.tokenizer, samples=2, seq_len=32).chunks
        good = reference.Reference(lm.model, chunks, vocab=1024)
        monkeypatch.setattr(reference, "Replay", Wrong)
        bad = reference.Reference(lm.model, chunks, vocab=1024)
        return good, bad

    good, bad = engine.run(work)
    assert good.replay and good.replay_note == ""
    assert not bad.replay and not bad.recorded
    wanted = "differs from the reference" if fault == "differs" else "RuntimeError: this block takes a cache"
    assert wanted in bad.replay_note and "2-10x slower" in bad.replay_note


def test_token_lists_of_any_length_give_exact_perplexity_and_top1_in_both_forms(engine, trained_tiny):
    """The held-out evaluation's use: chunks of different lengths, one forward each, the vocabulary read from
    the logits. Perplexity and top-1 agreement are exact in the top-k form too (taken before the cut); the
    top-k form keeps K log-probs per position, not the vocabulary's."""
    import numpy as np

    chunks = [[5, 9, 2, 7, 11, 3, 8], [4, 4, 6, 1], [12, 30, 2, 9, 9, 17]]

    def work(ctx):
        import mlx.core as mx
        from temper.core.engine.loader import load

        lm = load(trained_tiny)
        lm.model.set_dtype(mx.float32)
        seen = []
        full = reference.Reference(lm.model, chunks, check=lambda: seen.append(1), replay=False)
        topk = reference.Reference(lm.model, chunks, budget_bytes=0, replay=False)
        direct = [np.array(reference.log_softmax(lm.model(mx.array([c])).astype(mx.float32))[0]) for c in chunks]
        head = next(t for t in quantizable(lm.model) if t.path == "lm_head")
        original = head.module["weight"]
        head.module["weight"] = fake_quantize(original, Candidate(2, 64), mx.bfloat16)
        changed = [np.array(reference.log_softmax(lm.model(mx.array([c])).astype(mx.float32))[0]) for c in chunks]
        scores = (full.per_token(lm.model), topk.per_token(lm.model))
        head.module["weight"] = original
        return full, topk, seen, direct, changed, scores

    full, topk, seen, direct, changed, (s_full, s_topk) = engine.run(work)
    assert len(seen) == len(chunks) and full.tokens == topk.tokens == sum(map(len, chunks))
    assert full.kind == "full" and topk.kind == "top-256 + tail" and not full.replay
    assert topk.batches[0].top.shape[-1] == 256 and topk.batches[0].logp is None

    def nll(lps):
        return -sum(float(lp[np.arange(len(c) - 1), c[1:]].sum()) for lp, c in zip(lps, chunks, strict=True))

    predicted = sum(len(c) - 1 for c in chunks)
    assert full.predicted == topk.predicted == predicted
    assert full.ppl == pytest.approx(np.exp(nll(direct) / predicted), rel=1e-5) == topk.ppl
    want_kl = np.concatenate([(np.exp(p) * (p - q)).sum(-1) for p, q in zip(direct, changed, strict=True)])
    want_top1 = np.concatenate([p.argmax(-1) == q.argmax(-1) for p, q in zip(direct, changed, strict=True)])
    assert s_full.kl == pytest.approx(np.maximum(want_kl, 0), rel=1e-4, abs=1e-6)
    assert (s_full.top1 == want_top1).all() and (s_topk.top1 == want_top1).all() and 0 < want_top1.mean() < 1
    assert s_full.ppl == pytest.approx(np.exp(nll(changed) / predicted), rel=1e-5) == s_topk.ppl
    assert (s_topk.kl <= s_full.kl * (1 + 1e-4) + 1e-6).all() and s_topk.kl.mean() > 0.9 * s_full.kl.mean()

"""Reference distributions: full vs top-k storage, per-token KL and top-1 agreement."""

from __future__ import annotations

import pytest
from temper.core.quant import kl
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
        full = kl.Reference(lm.model, chunks, vocab=1024)
        topk = kl.Reference(lm.model, chunks, vocab=1024, budget_bytes=0)
        same_kl, same_top1 = full.per_token(lm.model)
        head = next(t for t in quantizable(lm.model) if t.path == "lm_head")
        original = head.module["weight"]
        head.module["weight"] = fake_quantize(original, Candidate(2, 64), mx.bfloat16)
        result = (full.kind, topk.kind, same_kl, same_top1, full.kl(lm.model), topk.kl(lm.model),
                  full.per_token(lm.model))
        head.module["weight"] = original
        return result

    kind_full, kind_topk, same_kl, same_top1, kl_full, kl_topk, (tok_kl, tok_top1) = engine.run(work)
    assert kind_full == "full" and kind_topk.startswith("top-256")
    assert same_kl.max() < 1e-5 and same_top1.all()             # the model against itself
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
        good = kl.Reference(lm.model, chunks, vocab=1024)
        monkeypatch.setattr(kl, "Replay", Wrong)
        bad = kl.Reference(lm.model, chunks, vocab=1024)
        return good, bad

    good, bad = engine.run(work)
    assert good.replay and good.replay_note == ""
    assert not bad.replay and not bad.recorded
    wanted = "differs from the reference" if fault == "differs" else "RuntimeError: this block takes a cache"
    assert wanted in bad.replay_note and "2-10x slower" in bad.replay_note

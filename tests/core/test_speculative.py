"""Speculative decoding: greedy output with a drafter equals greedy output without it (fp32 fixtures)."""

from __future__ import annotations

import pytest
from chat_helpers import MESSAGES, ask, greedy
from temper.core.engine.generate import ChatRequest, chat_job
from temper.core.errors import TemperError

PROMPTS = [
    MESSAGES,
    [{"role": "user", "content": "def load(path): return"}],
    [{"role": "user", "content": "Explain the cache in one line."},
     {"role": "assistant", "content": "It keeps keys and values."},
     {"role": "user", "content": "Why trim it?"}],
]


def _build(models_root, engine, name, **kw):
    from temper.core.library.synthetic import build_model

    out = models_root / name
    if not (out / "config.json").exists():
        engine.run(lambda ctx: build_model(out, "llama", **kw))
    return out


@pytest.fixture(scope="module")
def small_drafter(models_root, engine, tiny_llama):
    """A separate drafter folder: the chat model converted to 4-bit by mlx-lm (the usual real pairing)."""
    import contextlib
    import io

    from mlx_lm.convert import convert

    out = models_root / "tiny-llama-4bit"
    if not out.exists():
        with contextlib.redirect_stdout(io.StringIO()):
            engine.run(lambda ctx: convert(hf_path=str(tiny_llama), mlx_path=str(out), quantize=True,
                                           q_group_size=64, q_bits=4))
    return out


@pytest.fixture(scope="module")
def other_vocab(models_root, engine):
    return _build(models_root, engine, "tiny-llama-vocab300", vocab_size=300)


@pytest.mark.parametrize("drafter", ["external", "self"])
@pytest.mark.parametrize("draft_tokens", [2, 4])
def test_greedy_with_a_drafter_equals_greedy_without(engine, tiny_llama, small_drafter, drafter, draft_tokens):
    spec = str(small_drafter) if drafter == "external" else "self"
    accepted = 0
    for messages in PROMPTS:
        plain, _, _ = ask(engine, tiny_llama, messages, effort="none", sampling=greedy(40))
        fast, events, stats = ask(engine, tiny_llama, messages, effort="none", sampling=greedy(40),
                                  drafter=spec, num_draft_tokens=draft_tokens)
        assert fast.tokens == plain.tokens
        assert fast.text == plain.text
        assert stats.drafter and stats.acceptance is not None and 0 <= stats.acceptance <= 1
        # every drafted token the verifier kept was shown, except tokens never shown as text
        # (an end-of-turn token, a <think> marker the random model happened to emit)
        shown = [e for e in events if e.token >= 0]
        unshown = len(fast.tokens) - len(shown)
        assert 0 <= stats.accepted - sum(1 for e in shown if e.from_draft) <= unshown
        assert stats.accepted <= stats.drafted
        accepted += stats.accepted
    assert accepted > 0  # drafted tokens were accepted, so batched verification was exercised


def test_greedy_equality_holds_with_a_thinking_budget(engine, tiny_llama):
    """The budget processor runs for the drafter and the verifier alike, through rewinds."""
    kw = dict(effort="low", budgets={"low": 6}, sampling=greedy(30))
    plain, _, _ = ask(engine, tiny_llama, **kw)
    fast, _, stats = ask(engine, tiny_llama, drafter="self", num_draft_tokens=3, **kw)
    assert fast.tokens == plain.tokens
    assert stats.thinking_tokens == 6


def test_self_drafter_acceptance_is_reported_live(engine, tiny_llama):
    from temper.core.engine.generate import StatsEvent

    job = engine.submit(chat_job(ChatRequest(str(tiny_llama), MESSAGES, greedy(60), effort="none",
                                             drafter="self")))
    events = [e for e in job.events(timeout=60) if isinstance(e, StatsEvent)]
    assert events[-1].final and events[-1].stats.drafter.startswith("self (affine 3-bit")
    assert all(e.stats.acceptance is None or 0 <= e.stats.acceptance <= 1 for e in events)


def test_a_drafter_with_another_tokenizer_is_refused(engine, tiny_llama, other_vocab):
    with pytest.raises(TemperError, match="different tokenizer.*same model family"):
        engine.run(chat_job(ChatRequest(str(tiny_llama), MESSAGES, greedy(), drafter=str(other_vocab))))


def test_the_chat_model_as_its_own_drafter_is_refused(engine, tiny_llama):
    with pytest.raises(TemperError, match="drafter self"):
        engine.run(chat_job(ChatRequest(str(tiny_llama), MESSAGES, greedy(), drafter=str(tiny_llama))))


def test_a_follow_up_with_a_drafter_reuses_both_caches_and_stays_exact(engine, tiny_llama):
    from chat_helpers import forget_session

    forget_session(engine)
    first, _, _ = ask(engine, tiny_llama, effort="none", drafter="self", sampling=greedy(20))
    turn2 = MESSAGES + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "More?"}]
    warm, _, stats = ask(engine, tiny_llama, turn2, effort="none", drafter="self", sampling=greedy(20))
    assert 0 < stats.prefill_tokens < stats.prompt_tokens
    forget_session(engine)
    cold, _, _ = ask(engine, tiny_llama, turn2, effort="none", sampling=greedy(20))
    assert warm.tokens == cold.tokens


def test_building_the_self_drafter_shows_progress_once(engine, tiny_llama):
    """The first answer with the self-drafter builds it (30 s on the demo model): Progress events say so, with
    a percentage, before the first token; the next answer reuses it and says nothing."""
    from temper.core.engine import Progress
    from temper.core.engine.generate import TokenEvent

    engine.run(lambda ctx: ctx.state.pop("drafters", None))

    def run():
        job = engine.submit(chat_job(ChatRequest(str(tiny_llama), MESSAGES, greedy(8), effort="none",
                                                 drafter="self")))
        return list(job.events(timeout=60))

    events = run()
    building = [e for e in events if isinstance(e, Progress) and e.phase == "drafter"]
    assert building and "building the self-drafter" in building[0].message and building[0].total is None
    counted = [e for e in building if e.total]
    assert counted and counted[-1].done == counted[-1].total and counted[-1].message.endswith("100%…")
    assert [e.done for e in counted] == sorted(e.done for e in counted)
    first_token = next(i for i, e in enumerate(events) if isinstance(e, TokenEvent))
    assert events.index(building[-1]) < first_token
    assert not [e for e in run() if isinstance(e, Progress)]


def test_loss_note_against_a_baseline_or_from_acceptance():
    from temper.core.engine.speculative import loss_note

    assert "loss here: 5.0 tok/s vs 9.0" in loss_note(5.0, 9.0, 0.3, 3)
    assert loss_note(12.0, 9.0, 0.3, 3) is None                      # measured faster: no note
    assert "27% of drafts accepted" in loss_note(5.0, None, 0.27, 2)  # SmolLM2's self-drafter rate
    assert loss_note(5.0, None, 0.95, 3) is None                     # 3.7 tokens per round: a gain
    assert loss_note(5.0, None, None, 3) is None


def test_a_drafter_slower_than_none_gets_a_note(engine, tiny_llama):
    """The note compares with this model's last answer without a drafter (made unbeatable here)."""
    from temper.core.engine.generate import _BASELINES

    ask(engine, tiny_llama, MESSAGES, effort="none", sampling=greedy(20))
    assert engine.run(lambda ctx: ctx.state[_BASELINES][str(tiny_llama)]) > 0
    engine.run(lambda ctx: ctx.state[_BASELINES].__setitem__(str(tiny_llama), 1e9))
    _, _, stats = ask(engine, tiny_llama, MESSAGES, effort="none", sampling=greedy(20), drafter="self")
    assert any(n.startswith("drafter is a loss here") for n in stats.notes)

"""Reasoning effort: the template switch, the thinking budget, and how thinking tokens are flagged."""

from __future__ import annotations

import pytest
from chat_helpers import ask, greedy
from temper.core.engine.reasoning import (
    BudgetProcessor,
    Markers,
    ThinkingSplitter,
    ThinkState,
    budget_for,
    prompt_state,
)
from temper.core.errors import TemperError

ONE = Markers(start=(3,), end=(4,))
MULTI = Markers(start=(10, 11), end=(12, 13))


def test_budgets_by_effort():
    assert budget_for("none") is None and budget_for(None) is None
    assert budget_for("low") == 256 and budget_for("medium") == 1024 and budget_for("high") is None
    assert budget_for("low", {"low": 8}) == 8


def test_budget_processor_opens_then_closes_after_n_thinking_tokens():
    proc = BudgetProcessor(ONE, budget=3, initial=ThinkState(), seen=0)
    assert proc.next_forced([]) == 3                 # open the block first
    assert proc.next_forced([3, 50, 51]) is None     # 2 thinking tokens so far
    assert proc.next_forced([3, 50, 51, 52]) == 4    # budget spent: close
    assert proc.next_forced([3, 50, 51, 52, 4]) is None
    assert proc.next_forced([3, 50]) is None         # a rewind (speculative) is handled


def test_budget_processor_with_multi_token_markers():
    proc = BudgetProcessor(MULTI, budget=2, initial=ThinkState(), seen=0)
    assert proc.next_forced([]) == 10
    assert proc.next_forced([10]) == 11
    assert proc.next_forced([10, 11, 7]) is None
    assert proc.next_forced([10, 11, 7, 8]) == 12
    assert proc.next_forced([10, 11, 7, 8, 12]) == 13
    assert proc.next_forced([10, 11, 7, 8, 12, 13]) is None


def test_a_template_that_opens_the_block_is_respected():
    state = prompt_state([1, 2, 3], ONE)
    assert state.thinking and state.opened
    proc = BudgetProcessor(ONE, budget=1, initial=state, seen=0)
    assert proc.next_forced([]) is None              # no second open
    assert proc.next_forced([60]) == 4
    assert not prompt_state([3, 9, 4, 5], ONE).thinking


def test_splitter_holds_partial_markers_and_flags_thinking():
    split = ThinkingSplitter(MULTI)
    out = []
    for t in [5, 10, 11, 6, 12, 7, 12, 13, 8, 10, 9]:
        out += split.feed(t)
    out += split.flush()
    assert out == [(5, "answer"), (6, "think"), (12, "think"), (7, "think"), (8, "answer"),
                   (10, "answer"), (9, "answer")]
    assert split.transitions == ["open", "close"]


def test_unknown_effort_is_a_clear_error(engine, tiny_llama):
    with pytest.raises(TemperError, match="unknown reasoning effort 'max'"):
        ask(engine, tiny_llama, effort="max")


@pytest.mark.parametrize("budget", [1, 5, 12])
def test_the_budget_closes_the_thinking_block_after_n_tokens(engine, tiny_llama, budget):
    result, events, stats = ask(engine, tiny_llama, effort="low", budgets={"low": budget}, sampling=greedy(40))
    tok = engine.run(lambda ctx: ctx.state["loaded_models"][tiny_llama.resolve()].tokenizer)
    start, end = tok.think_start_id, tok.think_end_id
    assert result.tokens[0] == start
    assert result.tokens[1 + budget] == end          # exactly `budget` thinking tokens, then the close
    assert end not in result.tokens[1:1 + budget]
    assert stats.thinking_tokens == budget
    thinking = [e for e in events if e.thinking]
    assert "".join(e.text for e in thinking) == result.thinking
    answer_at = next((i for i, e in enumerate(events) if not e.thinking), len(events))
    assert all(not e.thinking for e in events[answer_at:])  # the answer follows the thinking
    assert "<think>" not in result.text and "</think>" not in result.text


def test_high_effort_thinks_past_the_low_budget(engine, tiny_llama):
    result, _, stats = ask(engine, tiny_llama, effort="high", budgets={"low": 4}, sampling=greedy(30))
    tok = engine.run(lambda ctx: ctx.state["loaded_models"][tiny_llama.resolve()].tokenizer)
    assert result.tokens[0] == tok.think_start_id
    assert stats.thinking_tokens > 4


def test_effort_none_turns_thinking_off_in_the_template(engine, tiny_llama):
    result, events, stats = ask(engine, tiny_llama, effort="none", sampling=greedy(20))
    tok = engine.run(lambda ctx: ctx.state["loaded_models"][tiny_llama.resolve()].tokenizer)
    rendered = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True,
                                       enable_thinking=False, tokenize=False)
    assert rendered.endswith("<think>\n\n</think>\n\n")
    assert stats.thinking_tokens == 0 and result.thinking == ""
    assert not any(e.thinking for e in events)


def test_effort_on_a_model_without_thinking_is_reported(engine, models_root):
    """A tokenizer without <think> tokens: effort has nothing to act on, and the stats say so."""
    import json

    from temper.core.library.synthetic import build_model

    out = models_root / "tiny-llama-nothink"
    if not (out / "config.json").exists():
        engine.run(lambda ctx: build_model(out, "llama"))
        cfg = json.loads((out / "tokenizer.json").read_text())
        for tok in cfg["added_tokens"]:
            if tok["content"] in ("<think>", "</think>"):
                tok["content"] = tok["content"].replace("think", "tnk")
        cfg["model"]["vocab"] = {k.replace("think>", "tnk>"): v for k, v in cfg["model"]["vocab"].items()}
        (out / "tokenizer.json").write_text(json.dumps(cfg))
    result, events, stats = ask(engine, out, effort="low", sampling=greedy(8))
    assert stats.notes == ["tiny-llama-nothink has no thinking mode: effort low ignored"]
    assert stats.thinking_tokens == 0 and not any(e.thinking for e in events)


def test_a_closed_block_cannot_be_reopened_or_reclosed_in_the_answer():
    """After the close, single-token markers are banned: logits for them are -inf, others untouched."""
    import mlx.core as mx
    from temper.core.engine.reasoning import BudgetProcessor, Markers, ThinkState

    markers = Markers(start=(3,), end=(4,))
    proc = BudgetProcessor(markers, budget=2, initial=ThinkState(), seen=0)
    logits = mx.zeros((1, 8))
    out = proc(mx.array([3, 5, 6, 4, 7]), logits)  # opened, 2 thinking tokens, closed, answering
    values = out.tolist()[0]
    assert values[3] == values[4] == float("-inf")
    assert all(v == 0.0 for i, v in enumerate(values) if i not in (3, 4))
    inside = proc(mx.array([3, 5]), logits).tolist()[0]  # still thinking: nothing banned or forced
    assert all(v == 0.0 for v in inside)

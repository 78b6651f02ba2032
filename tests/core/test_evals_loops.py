"""Repetition loops (core/evals/loops.py): what counts as a loop, by hand."""

from __future__ import annotations

from temper.core.evals.loops import LoopRule, period

RULE = LoopRule(repeats=3, span=12, max_period=8)


def test_a_block_repeated_often_enough_is_a_loop():
    block = [5, 6, 7, 8]
    assert period([1, 2] + block * 3, RULE) == 4                 # 3 repeats, 12 tokens
    assert period([1, 2] + block * 2, RULE) is None              # 2 repeats: not yet
    assert period([9] * 12, RULE) == 1                           # a one-token block needs the whole span
    assert period([9] * 11, RULE) is None


def test_the_shortest_block_is_reported_and_the_end_must_repeat():
    assert period([3, 4] * 8, RULE) == 2
    assert period([5, 6, 7, 8] * 3 + [1], RULE) is None          # the loop broke at the last token
    assert period(list(range(30)), RULE) is None
    assert period([], RULE) is None


def test_blocks_longer_than_the_limit_are_not_looked_for():
    block = list(range(9))                                       # 9 > max_period
    assert period(block * 4, RULE) is None
    assert period(block * 4, LoopRule(repeats=3, span=12, max_period=9)) == 9


def test_exact_settings_turn_the_loop_shortcut_off_and_key_the_cache_apart(monkeypatch):
    from temper.core.evals import tasks
    from temper.core.evals.loops import LOOP
    from temper.core.evals.run import EvalSettings

    monkeypatch.setattr(tasks, "data_hash", lambda task: "data")      # no data package needed for the key
    monkeypatch.setattr(tasks, "count", lambda task: 1319)

    default, exact = EvalSettings(tasks=("gsm8k",)), EvalSettings(tasks=("gsm8k",), exact=True)
    assert default.loops is LOOP and exact.loops is None
    assert default.task_settings("gsm8k")["loops"] == LOOP.key()
    assert exact.task_settings("gsm8k")["loops"] == "off"


def test_the_cli_flag_reaches_the_settings():
    from temper.cli.eval import task_settings as settings_from_args
    from temper.cli.main import build_parser

    args = build_parser().parse_args(["eval", "a", "b", "--tasks", "gsm8k", "--exact"])
    assert settings_from_args(args).exact is True
    args = build_parser().parse_args(["eval", "a", "b", "--tasks", "gsm8k"])
    assert settings_from_args(args).exact is False

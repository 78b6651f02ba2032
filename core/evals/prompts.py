"""Prompt formats. Each task's prompt is a shared prefix (few-shot examples: prefilled once and reused
through its KV cache) and a per-problem suffix. Plain text, no chat template: the standard completion
formats, so base and instruct models are judged alike.

- GSM8K: 5-shot, "Question: ...\\nAnswer: <steps>\\n#### <number>" with five worked examples written for
  temper (none is from GSM8K); generation stops at a blank line, the next "Question:", or once the
  "#### <number>" line is complete (the extractor reads the first number after "####", so nothing
  after that line can change the score).
- MMLU: 5-shot per subject (the subject's first five items, never scored), the classic
  "The following are multiple choice questions (with answers) about <subject>." header; the answer is
  the likeliest of the tokens " A", " B", " C", " D" after "Answer:".
- MMLU cloze ("mmlu_cloze"): 0-shot, the SmolLM/lighteval cloze prompt "The following are questions
  about <subject>.\nQuestion: <q>\nAnswer:", each choice's own text scored by log-likelihood per
  character (core/evals/loglik.py); the formulation SmolLM2's model card reports.
- HumanEval: 0-shot completion of the function's signature and docstring; stops where a new top-level
  statement would begin (the Codex paper's stop strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .tasks import Problem

FORMAT_VERSION = 1     # part of the cache key: bump when a prompt or extractor changes

GSM8K_SHOTS = (
    ("A baker makes 24 rolls in the morning and 18 in the afternoon. He sells 30 of them. How many rolls "
     "are left?",
     "He makes 24 + 18 = 42 rolls.\nAfter selling 30, 42 - 30 = 12 rolls are left.\n#### 12"),
    ("Mia reads 15 pages a day. How many pages does she read in 2 weeks?",
     "Two weeks have 2 * 7 = 14 days.\nShe reads 15 * 14 = 210 pages.\n#### 210"),
    ("A shirt costs $40 and is on sale for 25% off. What is the sale price in dollars?",
     "The discount is 40 * 25 / 100 = 10 dollars.\nThe sale price is 40 - 10 = 30 dollars.\n#### 30"),
    ("Tom has 3 boxes with 12 pencils each. He gives away 9 pencils. How many pencils does he have now?",
     "He has 3 * 12 = 36 pencils.\nAfter giving away 9, he has 36 - 9 = 27 pencils.\n#### 27"),
    ("A car travels 180 miles on 6 gallons of gas. How many miles can it travel on 10 gallons?",
     "It travels 180 / 6 = 30 miles per gallon.\nOn 10 gallons it travels 30 * 10 = 300 miles.\n#### 300"),
)
GSM8K_STOPS = ("\n\n", "Question:")
GSM8K_DONE = (re.compile(r"####[^\n]*\d[^\n]*\n"),)   # the answer line is written: stop
HUMANEVAL_STOPS = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
LETTERS = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Prompt:
    prefix: str          # shared by every problem of its group ("" for none)
    suffix: str


def gsm8k_prefix() -> str:
    return "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in GSM8K_SHOTS)


def gsm8k(p: Problem) -> Prompt:
    return Prompt(gsm8k_prefix(), f"Question: {p.question}\nAnswer:")


def mmlu_item(p: Problem, *, answer: bool) -> str:
    lines = [p.question.strip()] + [f"{k}. {c}" for k, c in zip(LETTERS, p.extra["choices"], strict=True)]
    return "\n".join(lines) + ("\nAnswer: " + p.answer + "\n\n" if answer else "\nAnswer:")


def mmlu_prefix(topic: str, shots: list[Problem]) -> str:
    head = f"The following are multiple choice questions (with answers) about {topic}.\n\n"
    return head + "".join(mmlu_item(s, answer=True) for s in shots)


def mmlu(p: Problem, shots: dict[str, list[Problem]]) -> Prompt:
    topic = p.extra["topic"]
    return Prompt(mmlu_prefix(topic, shots[topic]), mmlu_item(p, answer=False))


def mmlu_cloze(p: Problem) -> tuple[str, list[str]]:
    """(context, choices): the choices with their leading space, as they follow "Answer:"."""
    topic = p.extra["topic"].replace("_", " ")
    return (f"The following are questions about {topic}.\nQuestion: {p.question.strip()}\nAnswer:",
            [f" {c}" for c in p.extra["choices"]])


def humaneval(p: Problem) -> Prompt:
    return Prompt("", p.question)

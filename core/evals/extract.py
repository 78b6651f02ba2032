"""Answer extraction and scoring: pure functions, checked by hand in tests/core/test_evals_extract.py."""

from __future__ import annotations

import re

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    """The text up to the first stop string (all of it if none occurs)."""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def _number(token: str) -> str | None:
    raw = token.replace("$", "").replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return str(int(value)) if value == int(value) else repr(value)


def gsm8k_answer(completion: str) -> str | None:
    """The model's final number: the first number after '####' if the completion has one, else the last
    number it wrote (lm-eval's 'flexible' rule). Commas and '$' dropped; 18.00 reads as 18."""
    if "####" in completion:
        after = _NUMBER.search(completion.split("####", 1)[1])
        if after:
            return _number(after.group())
    found = _NUMBER.findall(completion)
    return _number(found[-1]) if found else None


def gsm8k_correct(completion: str, reference: str) -> bool:
    got = gsm8k_answer(completion)
    want = _number(reference)
    return got is not None and want is not None and float(got) == float(want)


def mmlu_choice(letter_logprobs: list[float]) -> str:
    """The letter whose token the model found likeliest (ties: the first)."""
    best = max(range(len(letter_logprobs)), key=lambda i: letter_logprobs[i])
    return "ABCD"[best]


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """The file the sandbox runs: the prompt, the model's body (cut at the stop strings), the tests, and
    the call that runs them."""
    return f"{prompt}{completion}\n\n{test}\n\ncheck({entry_point})\n"

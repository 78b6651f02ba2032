"""Eval results as a plain table (the CLI), Markdown (model cards, docs) and JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .run import ModelEval, TaskResult
from .tasks import SOURCES


def cell(r: TaskResult | None) -> str:
    if r is None:
        return "—"
    low, high = r.interval
    return f"{100 * r.accuracy:.1f}% [{100 * low:.1f}–{100 * high:.1f}]"


def seconds(r: TaskResult | None) -> str:
    if r is None:
        return ""
    return "cached" if r.cached else f"{r.seconds:.0f} s"


def _tasks(models: Sequence[ModelEval]) -> list[str]:
    return list(dict.fromkeys(t for m in models for t in m.results))


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}"


def rows(models: Sequence[ModelEval]) -> list[tuple[str, ...]]:
    """Header then one row per task (n, then each model's accuracy [95% interval] and time), then the
    capability score row. The float base comes first, so each quant stands beside it."""
    head = ["task", "n"]
    for m in models:
        head += [f"{m.name} ({m.role})", "time"]
    out = [tuple(head)]
    for t in _tasks(models):
        n = next(m.results[t].n for m in models if t in m.results)
        line = [t, str(n)]
        for m in models:
            line += [cell(m.results.get(t)), seconds(m.results.get(t))]
        out.append(tuple(line))
    cap = ["capability", ""]
    for m in models:
        cap += [_pct(m.capability), ""]
    out.append(tuple(cap))
    return out


def format_table(models: Sequence[ModelEval]) -> str:
    """The capability table as aligned plain text (the task names left, the figures right)."""
    from ..library.format import table

    lines = rows(models)
    return table(lines[0], lines[1:], right=set(range(1, len(lines[0]))))


def markdown(models: Sequence[ModelEval]) -> str:
    lines = rows(models)
    md = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    md += ["| " + " | ".join(r) + " |" for r in lines[1:]]
    notes = [f"- {t}: {SOURCES[t].about}" for t in _tasks(models)]
    return "\n".join(md) + ("\n\nAccuracy in %, [95% Wilson interval]; capability = mean accuracy over the "
                            "tasks run.\n" + "\n".join(notes) + "\n")


def to_json(models: Sequence[ModelEval], *, records: bool = False) -> dict[str, Any]:
    return {"models": [m.to_dict(records) for m in models]}

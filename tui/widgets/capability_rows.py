"""Capability rows for the wizard's Result step and its Compare view: per task, the accuracy with its
95% interval (and the float base's beside it), then the capability score. Reads the plain
`result["capability"]` dict the quantize pipeline records (core.quant.pipeline.capability_dict)."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def capability_rows(results: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(label, one cell per result) rows; none when no result holds capability figures."""
    caps = [r.get("capability") or {} for r in results]
    tasks = list(dict.fromkeys(t for c in caps for t in c.get("tasks", {})))
    if not tasks:
        return []
    rows = []
    for t in tasks:
        cells = []
        for c in caps:
            r = c.get("tasks", {}).get(t)
            if r is None:
                cells.append("–")
                continue
            cell = f"{_pct(r['accuracy'])} [{100 * r['low']:.0f}–{100 * r['high']:.0f}] n={r['n']}"
            if r.get("base_accuracy") is not None:
                cell += f" (base {_pct(r['base_accuracy'])})"
            cells.append(cell)
        rows.append((f"{t} accuracy", cells))
    rows.append(("Capability score", [
        "–" if not c else f"{_pct(c.get('capability'))} (base {_pct(c.get('base_capability'))})" for c in caps]))
    return rows

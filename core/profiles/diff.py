"""Differences between two profiles, key by key, with defaults shown where a key is not set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .profile import Profile
from .schema import SECTIONS

UNSET = object()


@dataclass(frozen=True)
class Change:
    key: str  # "section.key"
    a: Any  # the value set in A, or UNSET
    b: Any
    default: Any


def diff(a: Profile, b: Profile) -> list[Change]:
    """Keys whose value in effect differs, in schema order."""
    changes: list[Change] = []
    for section, fields in SECTIONS.items():
        for key, spec in fields.items():
            va = a.values.get(section, {}).get(key, UNSET)
            vb = b.values.get(section, {}).get(key, UNSET)
            ea = spec.default if va is UNSET else va
            eb = spec.default if vb is UNSET else vb
            if ea != eb:
                changes.append(Change(f"{section}.{key}", va, vb, spec.default))
    return changes


def show(value: Any, default: Any) -> str:
    if value is UNSET:
        return "(default: unset)" if default is None else f"(default: {_fmt(default)})"
    return _fmt(value)


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def diff_table(a: Profile, b: Profile) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the keys whose value in effect differs: key, value in `a`, value in `b` (no rows when
    the two are the same in effect). The CLI draws it (cli/output.py)."""
    rows = [[c.key, show(c.a, c.default), show(c.b, c.default)] for c in diff(a, b)]
    return ["key", a.name, b.name], rows

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


def format_diff(a: Profile, b: Profile) -> list[str]:
    changes = diff(a, b)
    if not changes:
        return [f"{a.name} and {b.name} are the same in effect"]
    width = max(len(c.key) for c in changes)
    left = max(len(show(c.a, c.default)) for c in changes)
    lines = [f"{'key'.ljust(width)}  {a.name.ljust(left)}  {b.name}"]
    for c in changes:
        lines.append(f"{c.key.ljust(width)}  {show(c.a, c.default).ljust(left)}  {show(c.b, c.default)}")
    return lines

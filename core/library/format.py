"""Plain-text formatting shared by the CLI and the Library tab: sizes, durations, parameter counts, tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def human_bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def human_duration(seconds: float | None, missing: str = "–") -> str:
    """<1s, 12s, 3m05s, 1h02m; `missing` for an unknown (None, NaN, infinite or negative) duration."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return missing
    if seconds < 0.5:
        return "<1s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def home_short(path: str | Path) -> str:
    """`path` with the home folder spelled `~` (unchanged outside it)."""
    home, text = str(Path.home()), str(path)
    return "~" + text[len(home):] if text == home or text.startswith(home + "/") else text


def human_params(n: int) -> str:
    if n <= 0:
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], *, right: set[int] = frozenset()) -> str:
    """Columns aligned with two spaces between them; `right` holds the indexes of right-aligned columns."""
    body = [list(map(str, r)) for r in rows]
    everything = ([list(header)] if header else []) + body
    if not everything:
        return ""
    widths = [max(len(r[i]) for r in everything) for i in range(len(everything[0]))]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return "\n".join(line(r) for r in everything)

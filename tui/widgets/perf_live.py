"""Live figures during chat: last TTFT, prefill / decode tok/s and peak memory, with sparklines over time.

Any engine event feeds it by duck typing (`read_stats`): an event with some of the attributes
`ttft` (seconds), `prefill_tps`, `decode_tps` (tokens/s) and `peak_memory` (bytes; a value under 10,000 is
read as GB, mlx-lm's `GenerationResponse` convention), or a `data` dict holding those keys (the bench
runner's `BenchProgress`), or a `stats` object holding them (the chat's `StatsEvent`, whose
`GenerationStats` names them `ttft_s` and `peak_memory_gb`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline, Static

FIELDS = ("ttft", "prefill_tps", "decode_tps", "peak_memory")
# Other names the same figure goes by (chat's GenerationStats): field -> aliases.
ALIASES = {"ttft": ("ttft_s",), "peak_memory": ("peak_memory_gb",)}
HISTORY = 120


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def read_stats(event: Any) -> dict[str, float]:
    """The live figures an event carries ({} when it carries none). Peak memory comes back in bytes."""
    stats: dict[str, float] = {}
    data = getattr(event, "data", None)
    holders = [event, getattr(event, "stats", None)]
    for name in FIELDS:
        value = None
        for key in (name, *ALIASES.get(name, ())):
            for holder in holders:
                if value is None and holder is not None:
                    value = _number(getattr(holder, key, None))
            if value is None and isinstance(data, dict):
                value = _number(data.get(key))
        if value is not None:
            stats[name] = value
    if "peak_memory" in stats and stats["peak_memory"] < 10_000:
        stats["peak_memory"] *= 1e9
    return stats


def format_stats(stats: dict[str, float]) -> str:
    def show(name: str, scale: float, pattern: str) -> str:
        return pattern.format(stats[name] * scale) if name in stats else "-"

    return "  ".join([
        f"TTFT [b]{show('ttft', 1000, '{:.0f} ms')}[/]",
        f"prefill [b]{show('prefill_tps', 1, '{:.1f} tok/s')}[/]",
        f"decode [b]{show('decode_tps', 1, '{:.1f} tok/s')}[/]",
        f"peak memory [b]{show('peak_memory', 1e-9, '{:.2f} GB')}[/]",
    ])


class PerfLive(Vertical):
    """Last figures and their history."""

    DEFAULT_CSS = """
    PerfLive { height: 100%; border: round $primary; padding: 0 1; }
    PerfLive Sparkline { height: 1fr; min-height: 1; max-height: 2; }
    PerfLive .perf-caption { color: $text-muted; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "Live"
        self.last: dict[str, float] = {}
        self.tps: deque[float] = deque(maxlen=HISTORY)
        self.memory: deque[float] = deque(maxlen=HISTORY)
        self.updates = 0

    def compose(self) -> ComposeResult:
        yield Static("Figures show while a chat answers or a benchmark runs.",
                     id="perf-figures")
        yield Label("decode tok/s", classes="perf-caption")
        yield Sparkline([], summary_function=max, id="perf-tps-spark")
        yield Label("peak memory (GB)", classes="perf-caption")
        yield Sparkline([], summary_function=max, id="perf-mem-spark")

    def update_stats(self, stats: dict[str, float]) -> None:
        if not stats:
            return
        self.updates += 1
        self.last.update(stats)
        if "decode_tps" in stats:
            self.tps.append(stats["decode_tps"])
            self.query_one("#perf-tps-spark", Sparkline).data = list(self.tps)
        if "peak_memory" in stats:
            self.memory.append(stats["peak_memory"] / 1e9)
            self.query_one("#perf-mem-spark", Sparkline).data = list(self.memory)
        self.query_one("#perf-figures", Static).update(format_stats(self.last))

"""The Performance tab."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from .placeholder import Placeholder


class PerformanceView(Vertical):
    """Not built yet: says what it will hold."""

    def compose(self) -> ComposeResult:
        yield Placeholder("TTFT, prefill/decode tok/s, memory and the bandwidth roofline.")

"""The Quantize tab."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from .placeholder import Placeholder


class QuantizeView(Vertical):
    """Not built yet: says what it will hold."""

    def compose(self) -> ComposeResult:
        yield Placeholder("The quantization wizard: recipe or budget, calibration, run, verify.")

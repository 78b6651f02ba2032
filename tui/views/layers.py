"""The Layers tab."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from .placeholder import Placeholder


class LayersView(Vertical):
    """Not built yet: says what it will hold."""

    def compose(self) -> ComposeResult:
        yield Placeholder("Live per-layer sensitivity and bit allocation.")

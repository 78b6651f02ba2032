"""The Library tab."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from .placeholder import Placeholder


class LibraryView(Vertical):
    """Not built yet: says what it will hold."""

    def compose(self) -> ComposeResult:
        yield Placeholder("Models on disk and on the Hub.")

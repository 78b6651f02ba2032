"""The Chat tab."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical

from .placeholder import Placeholder


class ChatView(Vertical):
    """Not built yet: says what it will hold."""

    def compose(self) -> ComposeResult:
        yield Placeholder("Streaming chat with drafter, reasoning effort and saved conversations.")

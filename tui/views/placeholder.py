"""A tab that is not built yet says what it will hold."""

from __future__ import annotations

from textual.widgets import Static


class Placeholder(Static):
    DEFAULT_CSS = """
    Placeholder { padding: 1 2; color: $text-muted; }
    """

"""Confirmation before a model (or a saved conversation) is deleted."""

from __future__ import annotations

from textual.binding import Binding

from .confirm import Confirm


class ConfirmDelete(Confirm):
    DEFAULT_CSS = "ConfirmDelete > Vertical { border: thick $error; }"
    BINDINGS = [
        Binding("y", "answer(True)", "Delete", id="library.delete.yes"),
        Binding("n,escape", "answer(False)", "Cancel", id="library.delete.no"),
    ]
    yes_label, no_label = "Delete (y)", "Cancel (n)"
    yes_variant, no_variant = "error", "default"

    def __init__(self, name: str, size: str, where: str) -> None:
        super().__init__(f"Delete [b]{name}[/b] ({size})?\n{where}\n\nThis cannot be undone.")
        self.model_name, self.model_size, self.where = name, size, where

"""Confirmation before a model is deleted from disk."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDelete(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete > Vertical { width: 64; max-width: 95%; height: auto; border: thick $error; padding: 1 2;
                               background: $surface; }
    ConfirmDelete #confirm-buttons { height: 3; margin-top: 1; align-horizontal: right; }
    ConfirmDelete Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Delete", id="library.delete.yes"),
        Binding("n,escape", "answer(False)", "Cancel", id="library.delete.no"),
    ]

    def __init__(self, name: str, size: str, where: str) -> None:
        super().__init__()
        self.model_name, self.model_size, self.where = name, size, where

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Delete [b]{self.model_name}[/b] ({self.model_size})?\n{self.where}\n\nThis cannot be undone.",
                         id="confirm-text")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel (n)", id="no")
                yield Button("Delete (y)", variant="error", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

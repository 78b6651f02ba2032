"""Asked before quitting while a long job (a quantization, a benchmark...) runs: it is offered for resume."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmQuit(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmQuit { align: center middle; }
    ConfirmQuit > Vertical { width: 64; max-width: 95%; height: auto; border: thick $warning; padding: 1 2;
                             background: $surface; }
    ConfirmQuit #quit-buttons { height: 3; margin-top: 1; align-horizontal: right; }
    ConfirmQuit Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Quit", id="app.quit.yes"),
        Binding("n,escape", "answer(False)", "Keep running", id="app.quit.no"),
    ]

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def compose(self) -> ComposeResult:
        resumable = self.kind == "quantize"
        after = ("It stops at its next step and is offered for resume the next time you open temper."
                 if resumable else "It stops, and what it measured so far is lost.")
        with Vertical():
            yield Static(f"A [b]{self.kind}[/b] job is running. Quit now?\n{after}", id="quit-text")
            with Horizontal(id="quit-buttons"):
                yield Button("Keep running (n)", variant="primary", id="no")
                yield Button("Quit (y)", variant="warning", id="yes")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

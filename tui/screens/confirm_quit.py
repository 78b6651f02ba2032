"""Asked before quitting while a long job (a quantization, a benchmark...) runs: it is offered for resume."""

from __future__ import annotations

from textual.binding import Binding

from .confirm import Confirm


class ConfirmQuit(Confirm):
    BINDINGS = [
        Binding("y", "answer(True)", "Quit", id="app.quit.yes"),
        Binding("n,escape", "answer(False)", "Keep running", id="app.quit.no"),
    ]
    yes_label, no_label = "Quit (y)", "Keep running (n)"

    def __init__(self, kind: str) -> None:
        after = ("It stops at its next step and is offered for resume the next time you open temper."
                 if kind == "quantize" else "It stops, and what it measured so far is lost.")
        super().__init__(f"A [b]{kind}[/b] job is running. Quit now?\n{after}")
        self.kind = kind

"""A yes/no question in a modal box: y answers yes, n or Esc no, and the safe answer has the focus."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    """Subclasses give the bindings (their own keymap ids), the border colour and the two button labels."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical { width: 64; max-width: 95%; height: auto; border: thick $warning; padding: 1 2;
                         background: $surface; }
    Confirm .confirm-buttons { height: 3; margin-top: 1; align-horizontal: right; }
    Confirm Button { margin-left: 2; }
    """
    yes_label = "Yes (y)"
    no_label = "No (n)"
    yes_variant = "warning"
    no_variant = "primary"

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.text, id="confirm-text")
            with Horizontal(classes="confirm-buttons"):
                yield Button(self.no_label, variant=self.no_variant, id="no")  # type: ignore[arg-type]
                yield Button(self.yes_label, variant=self.yes_variant, id="yes")  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

"""Small pieces around the wizard: the resume offer and the profile path prompt."""

from __future__ import annotations

from temper.core.jobs import JobRecord
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ResumeChoice(Message):
    def __init__(self, record: JobRecord, resume: bool) -> None:
        super().__init__()
        self.record = record
        self.resume = resume


def describe(record: JobRecord) -> str:
    req = record.request
    model = str(req.get("model", "?")).rstrip("/").rsplit("/", 1)[-1]
    out = str(req.get("output", "?")).rstrip("/").rsplit("/", 1)[-1]
    where = record.phase or "start"
    done, total = (record.progress.get(record.phase) or [None, None])[:2]
    if total:
        where += f" {done}/{total}"
    return f"{model} → {out}, stopped in {where}"


class ResumeOffer(Vertical):
    """Shown when a quantize job was interrupted (app closed, SSH dropped, process killed)."""

    DEFAULT_CSS = """
    ResumeOffer { height: auto; border: round $warning; padding: 0 1; margin: 0 1; }
    ResumeOffer Horizontal { height: auto; }
    ResumeOffer Static { width: 1fr; padding-top: 1; }
    ResumeOffer Button { margin-left: 1; min-width: 10; }
    """

    def __init__(self, record: JobRecord, **kwargs) -> None:
        super().__init__(**kwargs)
        self.record = record

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(f"Interrupted job: {describe(self.record)}", id="resume-text")
            yield Button("Resume", variant="warning", id="resume-yes")
            yield Button("Discard", id="resume-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(ResumeChoice(self.record, event.button.id == "resume-yes"))


class PathPrompt(ModalScreen[str | None]):
    """Ask for a file path; Enter accepts, Esc cancels."""

    DEFAULT_CSS = """
    PathPrompt { align: center middle; }
    PathPrompt > Vertical { width: 70; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="prompt.cancel")]

    def __init__(self, title: str, default: str) -> None:
        super().__init__()
        self.title_text = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text)
            yield Input(value=self.default, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

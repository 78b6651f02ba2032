"""Modal screens of the Chat tab: per-chat settings (sampling, effort, drafter, KV bits, system prompt),
and a one-line question (rename, export path)."""

from __future__ import annotations

from temper.core.chat.settings import ChatSettings
from temper.core.engine.reasoning import EFFORTS
from temper.core.errors import TemperError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

# (field id, label, getter, parser)
NUMBERS = [
    ("temperature", "Temperature (0 = greedy)", float),
    ("top_p", "Top-p (1 = off)", float),
    ("top_k", "Top-k (0 = off)", int),
    ("min_p", "Min-p (0 = off)", float),
    ("repetition_penalty", "Repetition penalty (1 = off)", float),
    ("max_tokens", "Max tokens", int),
    ("seed", "Seed (empty = random)", int),
]


class ChatSettingsScreen(ModalScreen[tuple[str, ChatSettings] | None]):
    DEFAULT_CSS = """
    ChatSettingsScreen { align: center middle; }
    ChatSettingsScreen > Vertical { width: 76; max-height: 90%; height: auto; border: round $accent;
                                    background: $surface; padding: 0 1; }
    ChatSettingsScreen Grid { grid-size: 2; grid-columns: 30 1fr; grid-rows: auto; height: auto; }
    ChatSettingsScreen Grid Label { padding: 1 0 0 0; }
    ChatSettingsScreen TextArea { height: 5; }
    ChatSettingsScreen #settings-error { color: $error; height: auto; }
    ChatSettingsScreen Horizontal { height: auto; align-horizontal: right; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="chat.settings.cancel"),
                Binding("ctrl+s", "save", "Save", id="chat.settings.save")]

    def __init__(self, system_prompt: str, settings: ChatSettings, *, no_thinking: str = "") -> None:
        """`no_thinking`: the model's name when it has no thinking mode (effort and budgets are then disabled)."""
        super().__init__()
        self.system_prompt = system_prompt
        self.settings = settings
        self.no_thinking = no_thinking

    def compose(self) -> ComposeResult:
        s, sp = self.settings, self.settings.sampling
        with Vertical():
            yield Static("[b]Chat settings[/b]  (ctrl+s saves, Esc cancels)")
            with VerticalScroll():
                yield Label("System prompt")
                yield TextArea(self.system_prompt, id="set-system")
                with Grid():
                    for name, label, _ in NUMBERS:
                        value = getattr(sp, name)
                        yield Label(label)
                        yield Input("" if value is None else str(value), id=f"set-{name}")
                    off = bool(self.no_thinking)
                    yield Label("Reasoning effort" + (" (no thinking mode)" if off else ""))
                    yield Select([("template default", "default")] + [(e, e) for e in EFFORTS],
                                 value=s.effort or "default", allow_blank=False, id="set-effort", disabled=off,
                                 tooltip=f"{self.no_thinking} has no thinking mode: effort does nothing" if off
                                 else None)
                    for effort in ("low", "medium", "high"):
                        budget = s.budgets.get(effort)
                        yield Label(f"Thinking budget: {effort} (empty = unlimited)")
                        yield Input("" if budget is None else str(budget), id=f"set-budget-{effort}",
                                    disabled=off)
                    yield Label("Drafter (folder, 'self' or empty)")
                    yield Input(s.drafter or "", id="set-drafter")
                    yield Label("Draft tokens")
                    yield Input(str(s.num_draft_tokens), id="set-draft-tokens")
                    yield Label("KV-cache bits")
                    yield Select([("model default (kv_config.json, else off)", -1), ("off", 0), ("8", 8), ("4", 4)],
                                 value=-1 if s.kv_bits is None else s.kv_bits, allow_blank=False, id="set-kv-bits")
                    yield Label("Context limit (empty = model's)")
                    yield Input("" if s.context_limit is None else str(s.context_limit), id="set-context")
            yield Static("", id="settings-error")
            with Horizontal():
                yield Button("Cancel", id="settings-cancel")
                yield Button("Save", variant="primary", id="settings-save")

    def _value(self, field_id: str, parse, label: str):
        text = self.query_one(f"#{field_id}", Input).value.strip()
        if not text:
            return None
        try:
            return parse(text)
        except ValueError:
            raise TemperError(f"{label}: {text!r} is not a number") from None

    def collect(self) -> tuple[str, ChatSettings]:
        s = ChatSettings.from_dict(self.settings.to_dict())
        for name, label, parse in NUMBERS:
            value = self._value(f"set-{name}", parse, label)
            if value is None and name != "seed":
                raise TemperError(f"{label} cannot be empty")
            setattr(s.sampling, name, value)
        effort = self.query_one("#set-effort", Select).value
        s.effort = None if effort == "default" else str(effort)
        for effort_name in ("low", "medium", "high"):
            s.budgets[effort_name] = self._value(f"set-budget-{effort_name}", int, "thinking budget")
        s.drafter = self.query_one("#set-drafter", Input).value.strip() or None
        s.num_draft_tokens = self._value("set-draft-tokens", int, "draft tokens") or 3
        kv_bits = int(self.query_one("#set-kv-bits", Select).value)
        s.kv_bits = None if kv_bits < 0 else kv_bits
        s.context_limit = self._value("set-context", int, "context limit")
        return self.query_one("#set-system", TextArea).text, s.validate()

    def action_save(self) -> None:
        try:
            self.dismiss(self.collect())
        except TemperError as exc:
            self.query_one("#settings-error", Static).update(str(exc))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "settings-save" else self.action_cancel()


class AskText(ModalScreen[str | None]):
    """One line of text: Enter answers, Esc cancels."""

    DEFAULT_CSS = """
    AskText { align: center middle; }
    AskText > Vertical { width: 60; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="chat.ask.cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(self.value, id="ask-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)

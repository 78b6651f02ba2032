"""The Result step's capability evals: which tasks, how many problems, a Run button and the job's progress.

The same choice as `temper quantize --tasks LIST --limit N` and `temper eval --tasks ... --limit N`: the
defaults come from the request (a profile's `eval_tasks` / `eval_limit`). The panel starts the job through
the quantization client (the float base beside the written model); the view hands it the engine events
and, on EvalsFinished, shows the capability rows.
"""

from __future__ import annotations

from typing import Any

from temper.core.engine.events import Cancelled, Failed, Finished, Progress
from temper.core.errors import QuantError, TemperError
from temper.core.evals.tasks import TASKS
from temper.core.library.format import human_duration
from temper.core.quant.request import QuantRequest
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static

from ..bridge import EngineEvent

DEFAULT_TASKS = ("humaneval", "gsm8k")
DEFAULT_LIMIT = 32      # a quick look on a CPU; clear the box for every problem


class EvalsFinished(Message):
    def __init__(self, capability: dict[str, Any]) -> None:
        super().__init__()
        self.capability = capability


def parse_limit(text: str) -> int | None:
    text = text.strip()
    if not text or text.lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise QuantError(f"eval limit: {text!r} is not a whole number (leave it empty for all problems)") from None
    if value < 1:
        raise QuantError("eval limit must be ≥ 1 (leave it empty for all problems)")
    return value


class EvalPanel(Vertical):
    DEFAULT_CSS = """
    EvalPanel { height: auto; }
    EvalPanel Horizontal { height: auto; }
    EvalPanel Label { padding: 0 1 0 0; }
    EvalPanel Checkbox { margin-right: 1; }
    EvalPanel #eval-limit { width: 8; margin-right: 2; }
    EvalPanel #eval-status { color: $text-muted; height: auto; width: 1fr; margin-left: 2; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job: Any = None
        self.base: str | None = None        # the float model the quant was made from
        self.output: str | None = None      # the quantized model

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("Evals:")
            for t in TASKS:
                yield Checkbox(t, t in DEFAULT_TASKS, compact=True, id=f"eval-{t}")
        with Horizontal():
            yield Label("limit")
            yield Input(str(DEFAULT_LIMIT), placeholder="all", compact=True, id="eval-limit")
            yield Button("Run evals", id="eval-run", compact=True)
            yield Static("", id="eval-status")

    def preset(self, request: QuantRequest, output: str | None) -> None:
        """The models to compare, and the request's own choice of tasks when it made one (a profile's
        eval_tasks / eval_limit)."""
        self.base, self.output = request.model, output
        if request.eval_tasks:
            chosen = set(request.eval_tasks.split(","))
            for t in TASKS:
                self.query_one(f"#eval-{t}", Checkbox).value = t in chosen
            self.query_one("#eval-limit", Input).value = "" if request.eval_limit is None else str(request.eval_limit)

    def choice(self) -> tuple[list[str], int | None]:
        tasks = [t for t in TASKS if self.query_one(f"#eval-{t}", Checkbox).value]
        if not tasks:
            raise QuantError("tick at least one eval task (humaneval, gsm8k, mmlu)")
        return tasks, parse_limit(self.query_one("#eval-limit", Input).value)

    def say(self, text: str) -> None:
        self.query_one("#eval-status", Static).update(text)

    def start(self, job: Any, tasks: list[str], limit: int | None) -> None:
        self.job = job
        self.query_one("#eval-run", Button).disabled = True
        self.say(f"Running {', '.join(tasks)} ({'all problems' if limit is None else f'first {limit}'}) "
                 "on the base and this model…")

    def handle(self, event: Any) -> bool:
        """Take an engine event of this panel's job; False for any other event."""
        if self.job is None or event.job != self.job.id:
            return False
        if isinstance(event, Progress):
            eta = event.data.get("eta_s")
            tail = f" · ETA {human_duration(eta)}" if eta is not None and event.total and event.done < event.total else ""
            self.say(f"{event.phase}: {event.done}/{event.total}{tail}")
            return True
        if isinstance(event, (Finished, Failed, Cancelled)):
            self.job = None
            self.query_one("#eval-run", Button).disabled = False
        if isinstance(event, Finished):
            self.say("Evals done: the rows below, and the model card.")
            self.post_message(EvalsFinished(event.result if isinstance(event.result, dict) else {}))
        elif isinstance(event, Failed):
            self.say(f"Evals failed: {event.message}")
        elif isinstance(event, Cancelled):
            self.say("Evals cancelled.")
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "eval-run":
            return
        event.stop()
        if self.job is not None:
            return
        try:
            tasks, limit = self.choice()
            if not self.base or not self.output:
                raise QuantError("no quantized model to evaluate yet")
            job = self.app.quant_client.run_evals(self.base, self.output, tasks, limit)
        except TemperError as exc:
            self.say(str(exc))
            return
        self.app.own_job(job.id, self)
        self.start(job, tasks, limit)

    def on_engine_event(self, message: EngineEvent) -> None:
        message.stop()
        self.handle(message.event)

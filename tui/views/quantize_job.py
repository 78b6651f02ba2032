"""The Quantize wizard's jobs: starting a run, its engine events, cancel, the result's actions, resume.

`QuantizeJob` is a part of `QuantizeView` (tui/views/quantize.py), which holds the wizard's state (the
request, the step, the running job) and its navigation between steps.
"""

from __future__ import annotations

from temper.core.engine import Job
from temper.core.engine.eta import work_done
from temper.core.engine.events import Cancelled, Failed, Finished, Progress
from temper.core.errors import TemperError
from temper.core.jobs import JobRecord
from temper.core.quant.recipes import recipe
from temper.core.quant.request import QuantRequest
from textual.containers import Vertical
from textual.widgets import Static

from ..bridge import EngineEvent
from ..quant_client import ModelChoice
from ..typed_app import TemperNode
from ..widgets.quant_dialogs import ResumeChoice, ResumeOffer
from ..widgets.quant_evals import EvalPanel, EvalsFinished
from ..widgets.quant_run import CancelRequested, ResultAction, ResultStep, RunStep
from ..widgets.quant_setup import ModelStep


class QuantizeJob(TemperNode):
    """A base of QuantizeView (before the Textual base class): the wizard's engine jobs and their events."""

    request: QuantRequest
    job: Job | None
    copy_job: Job | None
    result: dict | None
    model: ModelChoice | None   # and go(), error(), _focus_step(), _client(), _pick(), _show_model_facts(),
    #                             action_new(), action_previous(): QuantizeView's

    # -- running ----------------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.job = self._client().start(self.request)
        except TemperError as exc:
            self.error(str(exc))
            return
        self.app.own_job(self.job.id, self)
        self._enter_run()

    def _enter_run(self) -> None:
        name = self.request.model.rstrip("/").rsplit("/", 1)[-1]
        scored = recipe(self.request.recipe).needs_scores and self.request.sensitivity is None
        self.query_one(RunStep).reset(f"{name} → {self.request.output}", scored=scored)
        self.go(4)

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if self.copy_job is not None and event.job == self.copy_job.id:
            self._copy_event(event)
            return
        if self.query_one(EvalPanel).handle(event):
            return
        if self.job is None or event.job != self.job.id:
            return
        run = self.query_one(RunStep)
        if isinstance(event, Progress):
            run.progress(event.phase, event.done, event.total, event.message, event.data.get("eta_s"),
                         work_done(event))
        elif isinstance(event, Finished):
            self.job = None
            run.ended("done")
            self.result = event.result if isinstance(event.result, dict) else {}
            self.query_one(ResultStep).show(self.result)
            self.query_one(EvalPanel).preset(self.request, self.result.get("output"))
            self.go(5)
        elif isinstance(event, Failed):
            self.job = None
            run.ended("failed", event.message)
            self.error(event.message)
            self._focus_step()                # the Cancel button went away: focus Back, so Esc works
        elif isinstance(event, Cancelled):
            self.job = None
            run.ended("cancelled")
            self._focus_step()

    def _copy_event(self, event) -> None:
        facts = self.query_one(ModelStep)
        if isinstance(event, Progress):
            facts.show_facts(f"Making a float copy… {event.done}% {event.message}")
        elif isinstance(event, Finished):
            self.copy_job = None
            self.notify(f"Float copy ready: {event.result}", timeout=4)
            self._pick(str(event.result))
        elif isinstance(event, (Failed, Cancelled)):
            self.copy_job = None
            self.error(f"Could not make a float copy: {getattr(event, 'message', '') or 'cancelled'}")
            self._show_model_facts(facts.current)

    def on_cancel_requested(self, message: CancelRequested) -> None:
        message.stop()
        self._cancel()

    def _cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.query_one("#run-message", Static).update(
                "Cancelling… (the current step stops at its next check, which can take a while on CPU)")

    def on_result_action(self, message: ResultAction) -> None:
        message.stop()
        result = self.result or {}
        if message.action == "chat" and result.get("output"):
            self.app.open_model(result["output"], "chat")      # sets the active model, shows the Chat tab
        elif message.action == "compare":
            others = []
            for record in self._client().past_results(self.request.model):
                if record.result and record.result.get("output") != result.get("output"):
                    name = str(record.result.get("output", record.id)).rstrip("/").rsplit("/", 1)[-1]
                    others.append((name[-18:], record.result))
            if not others:
                self.error("Nothing to compare yet: earlier quantizations of this model appear here.")
            self.query_one(ResultStep).show(result, others[:3])
        elif message.action == "new":
            self.action_new()
        elif message.action == "back":
            self.action_previous()

    def on_evals_finished(self, message: EvalsFinished) -> None:
        message.stop()
        if self.result is not None:
            self.result["capability"] = message.capability
            self.query_one(ResultStep).show(self.result)

    # -- resume -----------------------------------------------------------------------------------------
    def offer_resume(self) -> None:
        box = self.query_one("#quant-offers", Vertical)
        box.remove_children()
        try:
            records = self._client().interrupted()
        except TemperError:
            records = []
        for record in records[:2]:
            box.mount(ResumeOffer(record))

    def on_resume_choice(self, message: ResumeChoice) -> None:
        message.stop()
        record: JobRecord = message.record
        client = self._client()
        for offer in self.query(ResumeOffer):
            if offer.record.id == record.id:
                offer.remove()
        if not message.resume:
            client.discard(record)
            return
        try:
            self.request = QuantRequest.from_dict(record.request)
            self.job = client.resume(record)
        except TemperError as exc:
            self.error(str(exc))
            return
        self.app.own_job(self.job.id, self)
        self._enter_run()

"""The Quantize tab: a six-step wizard over the same core functions as `temper quantize`.

Model → Goal → Calibration → Review → Run → Result. Enter confirms a step with its defaults, Esc goes
back (or cancels a run), ctrl+n / ctrl+b move without confirming. Settings save to and load from a
profile's [quantize] section. A job left unfinished by a closed app is offered for resume on start.
Starting a run, its engine events, the result's actions and resume are in tui/views/quantize_job.py.
"""

from __future__ import annotations

from temper.core.errors import QuantError, TemperError
from temper.core.profiles import Profile
from temper.core.quant.request import QuantRequest
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Static

from ..quant_client import ModelChoice, QuantClient, tab_is_active
from ..widgets.quant_dialogs import PathPrompt
from ..widgets.quant_review import ReviewStep, SaveProfileRequested
from ..widgets.quant_run import ResultStep, RunStep
from ..widgets.quant_setup import (
    CalibrationStep,
    GoalStep,
    ModelHighlighted,
    ModelsListed,
    ModelStep,
    StepDone,
    model_facts,
)
from .quantize_job import QuantizeJob

STEPS = [("model", "Model"), ("goal", "Goal"), ("calibration", "Calibration"), ("review", "Review"),
         ("run", "Run"), ("result", "Result")]


class QuantizeView(QuantizeJob, Vertical):
    DEFAULT_CSS = """
    QuantizeView #quant-stepper { height: 1; padding: 0 1; background: $boost; }
    QuantizeView #quant-error { height: auto; color: $error; padding: 0 1; }
    QuantizeView ContentSwitcher { height: 1fr; }
    QuantizeView #quant-offers { height: auto; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="quantize.back"),
        Binding("ctrl+n", "next", "Next", id="quantize.next"),
        Binding("ctrl+b", "previous", "Prev", id="quantize.previous", show=False),
        Binding("ctrl+s", "save_profile", "Save", tooltip="Save to profile", id="quantize.save_profile"),
        Binding("f", "float_copy", "Float copy", id="quantize.float_copy"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.request = QuantRequest()
        self.step = 0
        self.job = None
        self.model: ModelChoice | None = None
        self.result: dict | None = None
        self.copy_job = None            # the float copy being made for a quantized model (step 1)
        self.auto_output = ""           # the default output last offered (a typed one is kept)

    def compose(self) -> ComposeResult:
        yield Static("", id="quant-stepper")
        yield Vertical(id="quant-offers")
        yield Static("", id="quant-error")
        with ContentSwitcher(initial="step-model"):
            yield ModelStep(id="step-model")
            yield GoalStep(self._client().recipes(), id="step-goal")
            yield CalibrationStep(id="step-calibration")
            yield ReviewStep(id="step-review")
            yield RunStep(id="step-run")
            yield ResultStep(id="step-result")

    def _client(self) -> QuantClient:
        return self.app.quant_client

    def on_mount(self) -> None:
        profile = self.app.profile
        self._profile_section = profile.section("quantize")
        self.request = self._client().request_from_profile(profile)
        self.list_models()
        self.query_one(GoalStep).show(self.request)
        self.query_one(CalibrationStep).show(self.request)
        self.offer_resume()
        self.go(0)
        self.watch(self.app, "profile", self._profile_changed, init=False)
        self.watch(self.app, "model", self._model_changed, init=False)

    def list_models(self, pick: str | None = None) -> None:
        """Refill step 1's list (read in a worker: listing may scan the whole library). `pick` selects that
        path once listed (a float copy just made), else the app's active model."""
        active = self.app.model
        self.query_one(ModelStep).read_models(self._client(), active, pick or active, bool(pick))

    def on_models_listed(self, message: ModelsListed) -> None:
        message.stop()
        step = self.query_one(ModelStep)
        if message.generation != step.listing:       # an older list arriving late: a newer one is coming
            return
        if message.error:
            self.error(message.error)
        step.set_models(message.models, preselect=message.preselect)
        path = message.preselect
        if message.pick and path and (step.current is None or step.current.path != path):
            try:
                choice = self._client().model(path)       # one folder's headers, not a scan
            except TemperError as exc:
                self.error(str(exc))
            else:
                step.set_models([choice, *step.choices], preselect=path)
        self._show_model_facts(step.current)
        if message.pick:
            self._focus_step()

    def _model_changed(self, model: str | None) -> None:
        """The app's active model changed (Library → Quantize): offer it first, from step 1 (also after a
        run ended: only a running job keeps the wizard where it is)."""
        if model and self.job is None:
            self.list_models()
            self.go(0, focus=False)

    def _profile_changed(self, profile: Profile) -> None:
        """A profile was applied (ctrl+o): its [quantize] settings become the wizard's."""
        if self.job is not None:
            return
        section = profile.section("quantize")
        if section == self._profile_section:
            return                    # the same settings re-applied: keep what the user typed
        self._profile_section = section
        loaded = self._client().request_from_profile(profile)
        loaded.model, loaded.output, loaded.overwrite = self.request.model, "", False
        self.request = loaded
        self.query_one(GoalStep).show(self.request)
        self.query_one(CalibrationStep).show(self.request)
        if self.step == 3:
            self._prepare_review()

    # -- navigation -------------------------------------------------------------------------------------
    def go(self, step: int, focus: bool = True) -> None:
        self.step = step
        name = STEPS[step][0]
        if name == "review":
            self._prepare_review()
        switcher = self.query_one(ContentSwitcher)
        for child in switcher.children:     # hidden steps take no focus (tab switches focus the first focusable)
            child.disabled = child.id != f"step-{name}"
        switcher.current = f"step-{name}"
        parts = []
        for i, (_, label) in enumerate(STEPS):
            text = f"{i + 1} {label}"
            parts.append(f"[reverse b] {text} [/]" if i == step else (f"[dim]{text}[/]" if i > step else text))
        self.query_one("#quant-stepper", Static).update(" › ".join(parts))
        self.refresh_bindings()
        if focus:
            self._focus_step()

    def _focus_step(self) -> None:
        """Focus the step's main control, but only while this tab is the one on show (checked when the
        focus happens: focusing inside a hidden pane would pull it back to the front)."""
        def focus() -> None:
            if tab_is_active(self):
                self.query_one(f"#step-{STEPS[self.step][0]}").focus_first()

        self.call_after_refresh(focus)

    def on_show(self) -> None:
        self._focus_step()

    def error(self, message: str = "") -> None:
        self.query_one("#quant-error", Static).update(message)

    def action_next(self) -> None:
        name = STEPS[self.step][0]
        if name in ("run", "result"):
            return
        try:
            self.query_one(f"#step-{name}").apply(self.request)
            if name == "model":
                self.model = self._client().model(self.request.model)
                self.request.output = ""
                if self.model.quantized:
                    raise QuantError(f"{self.model.name} is already quantized ({self.model.quantization}): "
                                     "press f to make a float copy and quantize that")
            if name == "review":
                self.request.validate()
        except TemperError as exc:
            self.error(str(exc))
            return
        self.error()
        if name == "review":
            self.start()
        else:
            self.go(self.step + 1)

    def action_previous(self) -> None:
        """One step back; from a run that ended (failed, cancelled) or a result: back to Review."""
        if self.job is not None:
            return
        if 0 < self.step < 4:
            self.error()
            self.go(self.step - 1)
        elif self.step >= 4:
            self.error()
            self.request.output = ""        # a new default output name: the old one may exist now
            self.go(3)

    def action_new(self) -> None:
        if self.job is None:
            self.error()
            self.request.output = ""
            self.list_models()
            self.go(0)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "float_copy":
            current = self.query_one(ModelStep).current
            return self.step == 0 and self.copy_job is None and current is not None and current.quantized
        return True

    def action_float_copy(self) -> None:
        """Step 1 on a quantized model: pick its float copy, or make one (an engine job) and pick it."""
        current = self.query_one(ModelStep).current
        if self.step != 0 or current is None or not current.quantized or self.copy_job is not None:
            return
        client = self._client()
        existing = client.float_copy_of(current)
        if existing:
            self._pick(existing)
            return
        self.error()
        self.copy_job = client.make_float_copy(current)
        self.app.own_job(self.copy_job.id, self)
        self.query_one(ModelStep).show_facts(f"Making a float copy of {current.name}…")
        self.refresh_bindings()

    def _pick(self, path: str) -> None:
        self.list_models(pick=path)

    def action_back(self) -> None:
        if STEPS[self.step][0] == "run" and self.job is not None:
            self._cancel()
        else:
            self.action_previous()

    def on_step_done(self, message: StepDone) -> None:
        message.stop()
        self.action_next()

    def on_model_highlighted(self, message: ModelHighlighted) -> None:
        message.stop()
        self._show_model_facts(message.model)

    def _show_model_facts(self, model: ModelChoice | None) -> None:
        self.refresh_bindings()
        if model is None:
            return
        step = self.query_one(ModelStep)
        try:
            client = self._client()
            copy = client.float_copy_of(model) if model.quantized else None
            step.show_facts(model_facts(model, client.preflight(model, self.request), copy))
        except TemperError as exc:
            step.show_facts(str(exc))

    def _prepare_review(self) -> None:
        client = self._client()
        default = client.default_output(self.request)      # the same name `temper quantize` gives
        if not self.request.output or self.request.output == self.auto_output:
            self.request.output = default                    # a goal changed since: its name follows
        self.auto_output = default
        prediction = None
        if self.model is not None:
            try:
                prediction = client.predict(self.model, self.request)
            except TemperError as exc:
                self.error(str(exc))
        self.query_one(ReviewStep).show(self.request, self.model, prediction)

    # -- profiles ---------------------------------------------------------------------------------------
    def action_save_profile(self) -> None:
        """Write the wizard's settings into the [quantize] section of a profile (the active one's copy)."""
        try:
            name = STEPS[self.step][0]
            if name in ("goal", "calibration"):
                self.query_one(f"#step-{name}").apply(self.request)
        except TemperError as exc:
            self.error(str(exc))
            return
        current = self.app.profile
        default = current.name if current.source == "user" else "quantize"

        def save(profile_name: str | None) -> None:
            if not profile_name:
                return
            try:
                profile, path = self._client().save_profile(profile_name, self.request, current)
            except TemperError as exc:
                self.error(str(exc))
                return
            self.error()
            self.app.profile = profile
            self.notify(f"Saved the quantize settings to {path}", timeout=4)

        self.app.push_screen(PathPrompt("Save these quantize settings in the profile named:", default), save)

    def on_save_profile_requested(self, message: SaveProfileRequested) -> None:
        message.stop()
        self.action_save_profile()

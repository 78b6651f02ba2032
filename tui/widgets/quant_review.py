"""Wizard step 4: what will happen, predicted size/bpw/KL, and where the output goes."""

from __future__ import annotations

from pathlib import Path

from temper.core.errors import QuantError
from temper.core.quant.request import QuantRequest
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static

from ..quant_client import ModelChoice, Prediction, human_bytes
from .quant_setup import StepBase, StepDone


class SaveProfileRequested(Message):
    """The user asked to save the current settings as a profile."""


class ReviewStep(StepBase):
    DEFAULT_CSS = """
    ReviewStep #review-summary { height: auto; margin-bottom: 1; }
    ReviewStep Horizontal { height: 3; }
    ReviewStep Horizontal Label { padding: 1 1 0 0; width: 8; }
    ReviewStep #review-out { width: 1fr; }
    ReviewStep #review-warning { color: $warning; height: auto; }
    ReviewStep Button { margin-right: 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static("4 · Review", classes="step-title")
        yield Static("", id="review-summary")
        with Horizontal():
            yield Label("Output")
            yield Input(id="review-out")
        yield Checkbox("Overwrite the output folder if it exists", id="review-overwrite")
        yield Static("", id="review-warning")
        with Horizontal():
            yield Button("Start  ⏎", variant="primary", id="review-start")
            yield Button("Save profile", id="review-save")

    def focus_first(self) -> None:
        self.query_one("#review-start", Button).focus()

    def show(self, request: QuantRequest, model: ModelChoice | None, prediction: Prediction | None) -> None:
        lines = []
        if model is not None:
            lines.append(f"Model        {model.name}  ({model.params:,} params, {human_bytes(model.size_bytes)})")
        goal = request.recipe if request.recipe != "temper" else f"KL knapsack at {request.budget_label()}"
        lines.append(f"Goal         {goal}")
        chooses = request.recipe == "temper"      # the others fix their own widths: no grid to show
        if chooses:
            cands = request.candidates()
            lines.append(f"Candidates   {len(cands)}: widths {','.join(map(str, request.bits))} · groups "
                         f"{','.join(map(str, request.group_sizes))} · {','.join(request.modes)}"
                         f"{' · AWQ' if request.awq else ''}")
        elif request.awq:
            lines.append("Rounding     AWQ pre-scaling")
        if request.polish_steps:
            lines.append(f"Polish       {request.polish_steps} KL-distillation steps of scales and biases after writing")
        if request.protect:
            lines.append(f"Protected    {', '.join(request.protect)}")
        calib = "built-in mix" if request.calibration == "builtin" else request.calibration
        lines.append(f"Calibration  {calib}, {request.samples} × {request.seq_len} tokens; "
                     f"evaluation: {'built-in held-out' if request.evaluation == 'builtin' else request.evaluation}")
        if prediction is not None:
            kl = (f"{prediction.kl:.4f}" if prediction.kl is not None else
                  "measured after writing" if request.recipe.startswith(("uniform", "unsloth", "mixed"))
                  else "after the sensitivity pass")
            base = f" (from {human_bytes(model.size_bytes)})" if model else ""
            lines.append(f"Predicted    {prediction.bpw:.2f} bpw · {human_bytes(prediction.size_bytes)}{base}"
                         f" · KL {kl}")
        self.query_one("#review-summary", Static).update("\n".join(lines))
        out = self.query_one("#review-out", Input)
        out.value = request.output
        self.query_one("#review-overwrite", Checkbox).value = request.overwrite
        self._warn(request)

    def _warn(self, request: QuantRequest) -> None:
        exists = bool(request.output) and Path(request.output).expanduser().exists()
        text = "" if not exists else (
            "The output folder exists and WILL BE REPLACED." if request.overwrite
            else "The output folder exists: tick Overwrite or choose another folder.")
        self.query_one("#review-warning", Static).update(text)

    def apply(self, request: QuantRequest) -> None:
        out = self.query_one("#review-out", Input).value.strip()
        if not out:
            raise QuantError("choose an output folder")
        request.output = out
        request.overwrite = self.query_one("#review-overwrite", Checkbox).value
        path = Path(out).expanduser()
        if path.exists() and not request.overwrite:
            self._warn(request)
            raise QuantError(f"{out} already exists: tick Overwrite to replace it, or choose another folder")
        if path.exists() and not path.is_dir():
            raise QuantError(f"{out} is a file, not a folder")

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        req = QuantRequest(output=self.query_one("#review-out", Input).value.strip(), overwrite=event.value)
        self._warn(req)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "review-start":
            self.post_message(StepDone())
        elif event.button.id == "review-save":
            self.post_message(SaveProfileRequested())

"""Wizard steps 1-3: model, goal, calibration. Each has a sensible default so Enter moves on.

A step widget shows a request (`show`) and writes the user's choices back into it (`apply`, which
raises QuantError with a one-line reason on bad input). It posts `StepDone` when the user confirms.
"""

from __future__ import annotations

from pathlib import Path

from temper.core.errors import QuantError, TemperError
from temper.core.library.format import human_duration
from temper.core.quant.recipes import TEMPER_DEFAULT_BPW
from temper.core.quant.request import QuantRequest
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..quant_client import ModelChoice, QuantClient, human_bytes


class ModelsListed(Message):
    """Step 1's model list, read off the UI thread (it may scan the library); `pick`: select `preselect`
    even if the list lacks it (a float copy just made)."""

    def __init__(self, models: list[ModelChoice], error: str | None, preselect: str | None, pick: bool,
                 generation: int) -> None:
        super().__init__()
        self.models, self.error, self.preselect, self.pick, self.generation = (
            models, error, preselect, pick, generation)


class StepDone(Message):
    """The user confirmed the current step (Enter on its list or one of its fields)."""


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(" ", ",").split(",") if x]
    except ValueError as exc:
        raise QuantError(f"{what}: give whole numbers separated by commas, e.g. 2,3,4") from exc
    if not values:
        raise QuantError(f"{what}: give at least one value")
    return values


def _words(text: str) -> list[str]:
    return [x for x in text.replace(" ", ",").split(",") if x]


def _opt_float(text: str, what: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise QuantError(f"{what}: {text!r} is not a number") from exc


class StepBase(VerticalScroll, can_focus=False):
    DEFAULT_CSS = """
    StepBase { height: 1fr; padding: 0 1; }
    StepBase .step-title { text-style: bold; margin-bottom: 1; }
    StepBase OptionList { height: auto; max-height: 8; }
    StepBase .hint { color: $text-muted; }
    StepBase Input { background: $boost; }
    StepBase #model-path { margin-top: 1; }
    StepBase Grid { grid-size: 4; grid-columns: 13 1fr 13 1fr; grid-rows: 1; grid-gutter: 0 1;
                    height: auto; margin: 1 0; }
    StepBase Checkbox { border: none; padding: 0; height: 1; }
    StepBase #model-facts { margin-top: 1; }
    """

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(StepDone())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.selected(event.option_index)
        self.post_message(StepDone())

    def selected(self, index: int) -> None:
        pass

    def focus_first(self) -> None:
        self.query(OptionList).first().focus()


class ModelStep(StepBase):
    """Step 1: which model, its size, and whether the pass fits in memory."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.choices: list[ModelChoice] = []
        self.current: ModelChoice | None = None
        self.listing = 0                # generation of the list asked for last (a late older one is dropped)

    def compose(self) -> ComposeResult:
        yield Static("1 · Choose the model to quantize", classes="step-title")
        yield OptionList(id="model-list")
        yield Input(compact=True, placeholder="…or type a model folder path and press Enter", id="model-path")
        yield Static("", id="model-facts")

    def read_models(self, client: QuantClient, active: str | None, preselect: str | None, pick: bool) -> None:
        """Ask `client` for the models in a worker; `ModelsListed` comes back to the wizard."""
        self.listing += 1
        self.show_facts("Reading the library…")
        self._read_worker(client, active, preselect, pick, self.listing)

    @work(thread=True, exclusive=True, group="quant-models", exit_on_error=False)
    def _read_worker(self, client: QuantClient, active: str | None, preselect: str | None, pick: bool,
                     generation: int) -> None:
        try:
            models, error = client.models(active), None
        except TemperError as exc:
            models, error = [], str(exc)
        except Exception as exc:  # a bug must show, not vanish with the worker
            models, error = [], f"listing models failed: {type(exc).__name__}: {exc}"
        self.post_message(ModelsListed(models, error, preselect, pick, generation))

    def set_models(self, choices: list[ModelChoice], preselect: str | None = None) -> None:
        self.choices = choices
        ol = self.query_one("#model-list", OptionList)
        ol.clear_options()
        for c in choices:
            # one line down to 80 columns for a name like the demo's: the facts below and the footer say
            # what `f` does for a quantized one
            note = f" · {c.quantization}" if c.quantized else ""
            ol.add_option(Option(f"{c.name} · {c.arch} · {c.params / 1e6:,.1f}M params · "
                                 f"{human_bytes(c.size_bytes)}{note}", id=c.path))
        self.query_one("#model-path", Input).value = ""   # a choice made elsewhere wins over an old typed path
        if not choices:
            ol.add_option(Option("No unquantized models found: type a folder path below", disabled=True))
            return
        index = next((i for i, c in enumerate(choices) if c.path == preselect), 0)
        ol.highlighted = index
        self.current = choices[index]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if 0 <= event.option_index < len(self.choices):
            self.current = self.choices[event.option_index]
            self.post_message(ModelHighlighted(self.current))

    def selected(self, index: int) -> None:
        if 0 <= index < len(self.choices):
            self.current = self.choices[index]
            self.query_one("#model-path", Input).value = ""   # the latest choice wins

    def show_facts(self, text: str) -> None:
        self.query_one("#model-facts", Static).update(text)

    def apply(self, request: QuantRequest) -> None:
        typed = self.query_one("#model-path", Input).value.strip()
        if typed:
            request.model = typed
        elif self.current is not None:
            request.model = self.current.path
        else:
            raise QuantError("choose a model first (or type its folder path)")


class ModelHighlighted(Message):
    def __init__(self, model: ModelChoice) -> None:
        super().__init__()
        self.model = model


def model_facts(model: ModelChoice, preflight, float_copy: str | None = None) -> str:
    if model.quantized:
        where = (f"Its float copy {Path(float_copy).name} is in the list: press [b]f[/b] to pick it."
                 if float_copy else
                 "Press [b]f[/b] to make a float copy (bf16, beside it) and quantize that.")
        return (f"[b]{model.name}[/b]  {model.arch}, {model.params:,} parameters, "
                f"{human_bytes(model.size_bytes)} on disk\n"
                f"[b $warning]Already quantized ({model.quantization})[/]: quantizing it again compounds "
                f"the error. {where}")
    return (f"[b]{model.name}[/b]  {model.arch}, {model.params:,} parameters, "
            f"{human_bytes(model.size_bytes)} on disk\n"
            f"Machine: {human_bytes(preflight.free_bytes)} free. Pass {preflight.summary().split(':')[0]}"
            f" (needs ~{human_bytes(preflight.needed_bytes)}); "
            + (f"likely {human_duration(preflight.eta_s)}." if preflight.eta_s is not None
               else "time shown as it runs."))


class GoalStep(StepBase):
    """Step 2: a recipe or a budget, the candidate grid, protected tensors, AWQ."""

    def __init__(self, recipes, **kwargs) -> None:
        super().__init__(**kwargs)
        self.recipes = recipes
        self._shown_bpw: str | None = None    # the budget as last shown: left unchanged, a fixed recipe ignores it

    def compose(self) -> ComposeResult:
        yield Static("2 · Goal: a recipe, or a budget in real bits per weight (all bytes counted)",
                     classes="step-title")
        yield OptionList(*[Option(r.label, id=r.name) for r in self.recipes], id="recipe-list")
        with Grid():
            yield Label("Budget bpw")
            yield Input(compact=True, id="goal-bpw")
            yield Label("or size GB")
            yield Input(compact=True, placeholder="(unset)", id="goal-gb")
            yield Label("Widths")
            yield Input(compact=True, id="goal-bits")
            yield Label("Group sizes")
            yield Input(compact=True, id="goal-groups")
            yield Label("Modes")
            yield Input(compact=True, id="goal-modes")
            yield Label("Protect")
            yield Input(compact=True, placeholder="e.g. lm_head,embed_tokens", id="goal-protect")
        yield Checkbox("AWQ pre-scaling (folded into norms)", id="goal-awq")

    def show(self, request: QuantRequest) -> None:
        names = [r.name for r in self.recipes]
        ol = self.query_one("#recipe-list", OptionList)
        ol.highlighted = names.index(request.recipe) if request.recipe in names else 0
        shown = request.target_bpw
        if shown is None and request.size_gb is None:
            shown = next((r.target_bpw for r in self.recipes if r.name == request.recipe), None)
            shown = shown if shown is not None or request.recipe != "temper" else TEMPER_DEFAULT_BPW
        self.query_one("#goal-bpw", Input).value = f"{shown:g}" if shown else ""
        self._shown_bpw = self.query_one("#goal-bpw", Input).value
        self.query_one("#goal-gb", Input).value = f"{request.size_gb:g}" if request.size_gb else ""
        self.query_one("#goal-bits", Input).value = ",".join(map(str, request.bits))
        self.query_one("#goal-groups", Input).value = ",".join(map(str, request.group_sizes))
        self.query_one("#goal-modes", Input).value = ",".join(request.modes)
        self.query_one("#goal-protect", Input).value = ",".join(request.protect)
        self.query_one("#goal-awq", Checkbox).value = request.awq

    def apply(self, request: QuantRequest) -> None:
        ol = self.query_one("#recipe-list", OptionList)
        recipe = self.recipes[ol.highlighted or 0]
        request.recipe = recipe.name
        bpw = _opt_float(self.query_one("#goal-bpw", Input).value, "budget")
        if recipe.name != "temper" and bpw == recipe.target_bpw:
            bpw = None                  # the recipe's own budget rule (an oQ level keeps its hard cap)
        typed = self.query_one("#goal-bpw", Input).value.strip()
        fixed = recipe.name.startswith(("uniform", "unsloth", "mixed"))   # widths fixed by the recipe itself
        if fixed and typed == self._shown_bpw:
            bpw = None                  # a fixed recipe (uniform 8-bit...): the budget left as shown is no cap
        request.target_bpw = bpw
        request.size_gb = _opt_float(self.query_one("#goal-gb", Input).value, "size")
        if request.recipe == "temper" and request.target_bpw is None and request.size_gb is None:
            raise QuantError("give a budget: bits per weight or a size in GB")
        request.bits = _ints(self.query_one("#goal-bits", Input).value, "widths")
        request.group_sizes = _ints(self.query_one("#goal-groups", Input).value, "group sizes")
        request.modes = _words(self.query_one("#goal-modes", Input).value) or ["affine"]
        request.protect = _words(self.query_one("#goal-protect", Input).value)
        request.awq = self.query_one("#goal-awq", Checkbox).value
        request.candidates()


class CalibrationStep(StepBase):
    """Step 3: calibration text (built-in mix or a file), sample count and length, evaluation text."""

    SOURCES = [("builtin", "Built-in mix: prose, code, math, chat, tool calls, other languages"),
               ("file", "From a file (.txt or .jsonl) — type its path below")]

    def compose(self) -> ComposeResult:
        yield Static("3 · Calibration text", classes="step-title")
        yield OptionList(*[Option(label, id=key) for key, label in self.SOURCES], id="calib-list")
        with Grid():
            yield Label("File")
            yield Input(compact=True, placeholder="path/to/text.jsonl", id="calib-file")
            yield Label("Evaluation")
            yield Input(compact=True, id="calib-eval")
            yield Label("Samples")
            yield Input(compact=True, id="calib-samples")
            yield Label("Tokens each")
            yield Input(compact=True, id="calib-len")
        yield Static("Evaluation text is held out: it is never used for calibration, and the report "
                     "says which text measured the quality.", classes="hint")

    def show(self, request: QuantRequest) -> None:
        builtin = request.calibration == "builtin"
        self.query_one("#calib-list", OptionList).highlighted = 0 if builtin else 1
        self.query_one("#calib-file", Input).value = "" if builtin else request.calibration
        self.query_one("#calib-eval", Input).value = request.evaluation
        self.query_one("#calib-samples", Input).value = str(request.samples)
        self.query_one("#calib-len", Input).value = str(request.seq_len)

    def apply(self, request: QuantRequest) -> None:
        use_file = self.query_one("#calib-list", OptionList).highlighted == 1
        path = self.query_one("#calib-file", Input).value.strip()
        if use_file and not path:
            raise QuantError("type the calibration file's path (or choose the built-in mix)")
        request.calibration = path if use_file else "builtin"
        request.evaluation = self.query_one("#calib-eval", Input).value.strip() or "builtin"
        request.samples = _ints(self.query_one("#calib-samples", Input).value, "samples")[0]
        request.seq_len = _ints(self.query_one("#calib-len", Input).value, "tokens each")[0]
        if request.calibration != "builtin" and request.calibration == request.evaluation:
            raise QuantError("evaluation text must be kept apart from calibration text")

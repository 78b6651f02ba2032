"""Wizard steps 5 and 6: the run (progress per phase with ETA, cancel) and the result (measured quality)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temper.core.library.format import home_short, human_duration
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label, ProgressBar, Static

from ..quant_client import human_bytes
from .capability_rows import capability_rows
from .quant_evals import EvalPanel

PHASES = [("sensitivity", "Sensitivity"), ("allocate", "Allocation"), ("write", "Write"),
          ("verify", "Verify"), ("evaluate", "Evaluate")]


# Sub-phases the core reports, shown on the row of the phase they belong to ("load" is the write step's
# reading of the model, core/quant/write.py).
ALIASES = {"inventory": "sensitivity", "load": "write", "fisher": "sensitivity", "estimate": "sensitivity",
           "exact": "sensitivity", "quantize": "write", "awq": "write",
           "teacher": "write", "polish": "write"}


class CancelRequested(Message):
    pass


class ResultAction(Message):
    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action


class PhaseRow(Horizontal):
    """One phase: mark, name, bar, and a status such as "running · 182/211 · ETA 10s" or "done · 211/211 · 41s".

    The count is the row's real steps: a one-step event (the core's `total=1`, e.g. the write's final save
    after 211 quantized tensors, or the allocation) neither shows "1/1" nor replaces them. A finished row
    counts all its steps (the bridge may merge away the last tick when a one-step event follows it at
    once) and says how long it took, timed here from its first event."""

    DEFAULT_CSS = """
    PhaseRow { height: 1; }
    PhaseRow .phase-name { width: 14; }             /* "▸ " + the longest name + a gap before the bar */
    PhaseRow ProgressBar { width: 34; }
    PhaseRow ProgressBar Bar { width: 24; }
    PhaseRow .phase-status { width: 1fr; color: $text-muted; }
    """

    def __init__(self, phase: str, label: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(id=f"phase-{phase}")
        self.phase = phase
        self.label = label
        self.clock = clock
        self.state = "waiting"          # waiting | running | done | skipped | failed | cancelled
        self.steps: tuple[int, int | None] | None = None    # (182, 211): the last count of more than one step
        self.started: float | None = None
        self.seconds: float | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"  {self.label}", classes="phase-name")
        yield ProgressBar(total=1, show_eta=False, id=f"bar-{self.phase}")
        yield Label("waiting", classes="phase-status")

    def status(self) -> str:
        return str(self.query_one(".phase-status", Label).render())

    def reset(self) -> None:
        self.state, self.steps, self.started, self.seconds = "waiting", None, None, None
        self.set_state(" ", 0, None, "waiting")

    def report(self, done: int, total: int | None, eta_s: float | None = None,
               work: tuple[float, float] | None = None) -> None:
        """An event of this phase (or of one of its sub-phases)."""
        now = self.clock()
        if self.started is None:
            self.started = now
        if total != 1:
            self.steps = (done, total) if total or done else self.steps
        finished = bool(total) and done >= total
        if finished:
            self.finish()
            return
        self.state, self.seconds = "running", None
        eta = f" · ETA {human_duration(eta_s)}" if eta_s is not None and total and total > 1 else ""
        status = " · ".join(x for x in ("running", self._count()) if x) + eta
        if total == 1:                  # a one-step event: the bar keeps what the real steps filled
            self._show("▸", status)
            return
        filled, whole = work if work is not None else (done, total)
        self.set_state("▸", filled, whole, status)

    def finish(self) -> None:
        """Done: its steps and how long it took ("done · 211/211 · 41s")."""
        if self.state != "done" or self.seconds is None:
            self.seconds = self.clock() - self.started if self.started is not None else None
        self.state = "done"
        took = human_duration(self.seconds, missing="")
        self.set_state("✓", 1, 1, " · ".join(x for x in ("done", self._count(finished=True), took) if x))

    def _count(self, finished: bool = False) -> str:
        if self.steps is None:
            return ""
        done, total = self.steps
        return str(done) if not total else f"{total if finished else done}/{total}"

    def stop(self, mark: str, state: str) -> None:
        self.state = state
        self.set_state(mark, 0, None, state)

    def _show(self, mark: str, status: str) -> None:
        self.query_one(".phase-name", Label).update(f"{mark} {self.label}")
        self.query_one(".phase-status", Label).update(status)

    def set_state(self, mark: str, done: float, total: float | None, status: str) -> None:
        bar = self.query_one(ProgressBar)
        bar.update(total=max(total or 1, 1), progress=min(done, total or done) if total else 0)
        self._show(mark, status)


class RunStep(Vertical):
    DEFAULT_CSS = """
    RunStep { padding: 0 1; height: 1fr; }
    RunStep .step-title { text-style: bold; margin-bottom: 1; }
    RunStep #run-message { margin-top: 1; height: auto; color: $text-muted; }
    RunStep #run-buttons { height: auto; margin-top: 1; }
    RunStep #run-buttons Button { margin-right: 2; }
    RunStep #run-buttons .after { display: none; }
    RunStep.ended #run-buttons .after { display: block; }
    RunStep.ended #run-cancel { display: none; }
    """

    def compose(self) -> ComposeResult:
        yield Static("5 · Run", classes="step-title", id="run-title")
        for phase, label in PHASES:
            yield PhaseRow(phase, label)
        yield Static("", id="run-message")
        with Horizontal(id="run-buttons"):
            yield Button("Cancel  (Esc)", variant="error", id="run-cancel")
            yield Button("Back  (Esc)", variant="primary", id="run-back", classes="after")
            yield Button("New", id="run-new", classes="after")

    def focus_first(self) -> None:
        self.query_one("#run-back" if self.has_class("ended") else "#run-cancel", Button).focus()

    def reset(self, title: str, scored: bool = True) -> None:
        """`scored`: the recipe measures sensitivity; else the first row is the preparation it still does
        (reading the model and the calibration text), not a sensitivity pass that never runs."""
        self.query_one("#run-title", Static).update(f"5 · Run: {title}")
        self.current: str | None = None
        for row in self.query(PhaseRow):
            if row.phase == "sensitivity":
                row.label = PHASES[0][1] if scored else "Prepare"
            row.reset()
        self.query_one("#run-message", Static).update("")
        self.query_one("#run-cancel", Button).disabled = False
        self.remove_class("ended")

    def progress(self, phase: str, done: int, total: int | None, message: str = "",
                 eta_s: float | None = None, work: tuple[float, float] | None = None) -> None:
        """One phase's progress: the count in steps, the bar by the work units when given (core's
        `work_done`: steps of unlike cost are not equal parts of the bar)."""
        names = [p for p, _ in PHASES]
        if phase in ALIASES:
            message = (message if message.startswith(phase) else f"{phase}: {message}") if message else phase
            phase = ALIASES[phase]
        if phase not in names:
            if message:
                self.query_one("#run-message", Static).update(message)
            return
        index = names.index(phase)
        for earlier in names[:index]:   # a later phase started: an earlier one that ran is done,
            row = self.query_one(f"#phase-{earlier}", PhaseRow)     # one that never reported was skipped
            if row.state == "running":
                row.finish()
            elif row.state == "waiting":
                row.stop("–", "skipped")
        self.query_one(f"#phase-{phase}", PhaseRow).report(done, total, eta_s, work)
        if message:
            self.query_one("#run-message", Static).update(message)

    def ended(self, outcome: str, message: str = "") -> None:
        """outcome: done | failed | cancelled. Only a finished run ticks every phase; otherwise the phase
        that was running is marked ✗ and the ones never reached stay as they were."""
        for row in self.query(PhaseRow):
            if outcome == "done":
                if row.state != "skipped":
                    row.finish()
            elif row.state == "running":
                row.stop("✗", outcome)
        self.query_one("#run-cancel", Button).disabled = True
        text = {"done": "Finished.", "failed": f"Failed: {message}",
                "cancelled": "Cancelled."}[outcome]
        if outcome != "done":
            text += "\nEsc or Back: change the settings and run again · New: start over from step 1."
            self.add_class("ended")
        self.query_one("#run-message", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "run-cancel":
            self.post_message(CancelRequested())
        else:
            self.post_message(ResultAction(event.button.id.removeprefix("run-")))


QUALITY_ROWS = [
    ("kl_mean", "KL mean ± SE"), ("kl_median", "KL median"), ("kl_p95", "KL p95"), ("kl_p99", "KL p99"),
    ("kl_max", "KL max"), ("top1", "Top-1 agreement"), ("ppl_quant", "Perplexity"), ("ppl_base", "Perplexity (base)"),
]


def quality_cells(result: dict[str, Any]) -> dict[str, str]:
    q = result.get("quality") or {}
    cells: dict[str, str] = {}
    for key, _ in QUALITY_ROWS:
        value = q.get(key)
        if value is None:
            cells[key] = "–"
        elif key == "kl_mean" and q.get("kl_se") is not None:
            cells[key] = f"{value:.4f} ± {q['kl_se']:.4f}"
        elif key == "top1":
            cells[key] = f"{100 * value:.1f}%"
        elif key.startswith("ppl"):
            cells[key] = f"{value:.2f}"
        else:
            cells[key] = f"{value:.4f}"
    cells["bpw"] = f"{result['bpw']:.3f}" if result.get("bpw") is not None else "–"
    cells["size"] = human_bytes(result["size_bytes"]) if result.get("size_bytes") is not None else "–"
    cells["predicted_kl"] = f"{result['predicted_kl']:.4f}" if result.get("predicted_kl") is not None else "–"
    cells["verified"] = "yes" if result.get("verified") else "NO"
    return cells


class ResultStep(Vertical):
    DEFAULT_CSS = """
    ResultStep { padding: 0 1; height: 1fr; }
    ResultStep .step-title { text-style: bold; }
    ResultStep #result-note { color: $text-muted; height: auto; }
    ResultStep DataTable { height: 1fr; margin: 1 0; }
    ResultStep #result-buttons { height: 3; }
    ResultStep #result-buttons Button { margin-right: 2; }
    """

    ROWS = [("bpw", "Real bpw"), ("size", "Size"), ("predicted_kl", "Predicted KL"), *QUALITY_ROWS,
            ("verified", "Verified vs plan")]

    def compose(self) -> ComposeResult:
        yield Static("6 · Result", classes="step-title", id="result-title")
        yield Static("", id="result-note")
        yield DataTable(id="result-table", cursor_type="row", zebra_stripes=True)
        yield EvalPanel(id="result-evals")
        with Horizontal(id="result-buttons"):
            yield Button("Open in Chat", variant="primary", id="result-chat")
            yield Button("Compare", id="result-compare")
            yield Button("New", id="result-new")

    def focus_first(self) -> None:
        self.query_one("#result-chat", Button).focus()

    def show(self, result: dict[str, Any], others: list[tuple[str, dict[str, Any]]] = ()) -> None:
        out = Path(str(result.get("output", "")))
        where = home_short(out.parent)                  # the whole path wrapped mid-name at 80 columns
        room = max(20, (self.size.width or 80) - 8)     # the folder on one line: its start elided if need be
        if len(where) > room:
            where = "…" + where[-(room - 1):]
        self.query_one("#result-title", Static).update(f"6 · Result: {out.name}\n    in {where}")
        evaluation = result.get("evaluation", "built-in held-out text")
        self.query_one("#result-note", Static).update(
            f"Measured against the unquantized model on {evaluation} (not the calibration text).")
        table = self.query_one(DataTable)
        table.clear(columns=True)
        columns = [("this", result), *others]
        table.add_column("Metric", key="metric")
        for name, _ in columns:
            table.add_column(name, key=f"col-{name}")
        cells = [quality_cells(r) for _, r in columns]
        for key, label in self.ROWS:
            table.add_row(label, *[c[key] for c in cells], key=key)
        for label, row in capability_rows([r for _, r in columns]):
            table.add_row(label, *row, key=f"capability-{label}")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(ResultAction(event.button.id.removeprefix("result-")))

"""Progress of an engine job on stderr: a Rich bar per phase (done/total, ETA, the current item) on a
terminal; plain lines when piped (a line when a phase starts, then at most one every few seconds, and one
when it ends); nothing with --quiet/--json.

Every long phase reports through the engine's `Progress(job, phase, done, total, message)` events. The ETA
shown is the event's `eta_s` (core/engine/eta.py's rule, in the work units the core knows); progress that
comes without one (a download's callback, an evaluation alone) gets it from the same rule here.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, SpinnerColumn, TextColumn
from rich.progress import Progress as Bars

from ..core.engine.eta import EtaClock, work_done
from ..core.engine.events import Progress
from ..core.library.format import human_duration
from .output import stderr_console

PLAIN_EVERY_S = 5.0


def as_progress(event: Any) -> tuple[str, int, int | None, str, float | None, tuple[float, float] | None] | None:
    """(phase, done, total, current item, eta_s, work units) of a progress event, else None. A sensitivity
    pass's per-tensor LayerScored events are skipped: each comes with a Progress (core/engine/eta.EtaContext).
    The bar fills by the work units when the event has them (the count stays in steps)."""
    if isinstance(event, Progress):
        return (event.phase, int(event.done), event.total, event.message, (event.data or {}).get("eta_s"),
                work_done(event))
    return None


def eta_text(seconds: float | None) -> str:
    return human_duration(seconds, missing="")


class PlainLines:
    """Piped output: readable lines, few of them."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.phase = ""
        self.last = 0.0

    def update(self, phase: str, done: int, total: int | None, message: str, eta_s: float | None = None,
               work: tuple[float, float] | None = None) -> None:
        now = time.monotonic()
        new = phase != self.phase
        if new:
            self.phase, self.last = phase, 0.0
        finished = total is not None and done >= total
        said = total is None and bool(message)   # an announcement (e.g. which sensitivity pass, and why)
        if not (new or finished or said or now - self.last >= PLAIN_EVERY_S):
            return
        self.last = now
        count = f" {done}/{total}" if total and total > 1 else ""     # a one-step phase has no count to show
        eta = eta_text(eta_s) if eta_s is not None and total and not finished else ""
        parts = [f"[{phase}]{count}", f"eta {eta}" if eta else "", message or ("done" if finished else "")]
        self.console.print(" ".join(p for p in parts if p), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


class LiveBars:
    """A terminal: one bar per phase, with ETA and the item being worked on."""

    def __init__(self, console: Console) -> None:
        self.bars = Bars(SpinnerColumn(), TextColumn("{task.description:<12}"), BarColumn(bar_width=28),
                         TextColumn("{task.fields[count]}"), TextColumn("{task.fields[eta]}"),
                         TextColumn("{task.fields[item]}", style="dim"), console=console, transient=False)
        self.tasks: dict[str, Any] = {}
        self.steps: dict[str, int] = {}     # each phase's step count, for its "n/n" once a later phase starts
        self.current = ""
        self.bars.start()

    def update(self, phase: str, done: int, total: int | None, message: str, eta_s: float | None = None,
               work: tuple[float, float] | None = None) -> None:
        if phase != self.current and self.current in self.tasks:     # a later phase started: this one is done
            task, steps = self.tasks[self.current], self.steps.get(self.current)
            self.bars.update(task, completed=self.bars.tasks[task].total or 1, total=self.bars.tasks[task].total or 1,
                             count=f"{steps}/{steps}" if steps and steps > 1 else "done", eta="")
        self.current = phase
        if total:
            self.steps[phase] = total
        if phase not in self.tasks:
            self.tasks[phase] = self.bars.add_task(phase, total=total, item="", eta="", count="")
        if total is None and message:       # an announcement: kept as a line above the bars
            self.bars.console.print(f"[{phase}] {message}", markup=False, highlight=False, soft_wrap=True)
        item = message if len(message) <= 60 else "…" + message[-59:]
        eta = f"eta {eta_text(eta_s)}" if eta_s is not None and total and done < total else ""
        if total == 1:                      # one step (load, save): no "0/1" or "1/1", just whether it is done
            count = "done" if done else ""
        else:
            count = f"{done}/{total}" if total else (str(done) if done else "")
        filled, whole = work if work is not None and done < (total or 0) else (done, total)
        self.bars.update(self.tasks[phase], completed=filled, total=whole, item=item, eta=eta, count=count)

    def close(self) -> None:
        self.bars.stop()


class ProgressView:
    """`with ProgressView(quiet) as show: show(phase, done, total, message)`: bars on a terminal, plain
    lines when piped, nothing when quiet. For callbacks (download, import) and engine jobs alike."""

    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self.quiet = quiet
        self.shown: PlainLines | LiveBars | None = None
        self.clock = EtaClock()

    def __enter__(self) -> ProgressView:
        if not self.quiet:
            self.shown = LiveBars(self.console) if self.console.is_terminal else PlainLines(self.console)
        return self

    def __call__(self, phase: str, done: int, total: int | None = None, message: str = "",
                 eta_s: float | None = None, work: tuple[float, float] | None = None) -> None:
        if self.shown is not None:
            total = int(total) if total else None
            if eta_s is None:      # a callback's progress, or an event without one: the same rule here
                eta_s = self.clock.estimate(phase, float(done), float(total) if total else None)
            self.shown.update(phase, int(done), total, message, eta_s, work)

    def __exit__(self, *exc: Any) -> None:
        if self.shown is not None:
            self.shown.close()


def follow(job: Any, *, quiet: bool = False, console: Console | None = None) -> Any:
    """Show a job's progress until it ends; its result (or its error, raised). Ctrl-C is main's to handle
    (cli/main.interrupted: cancel the job, remove a half-written folder, one line, exit 130)."""
    with ProgressView(quiet, console) as show:
        for event in job.events():
            seen = as_progress(event)
            if seen is not None:
                show(*seen)
    return job.result()

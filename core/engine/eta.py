"""The one ETA rule for progress events: remaining work over the rate since the first step, in work units.

A `Progress(job, phase, done, total, message, data)` counts steps; steps of one phase often cost very
different amounts (a Fisher sequence is a forward and backward pass of the whole model, scoring one tensor
is a few element-wise passes over it; a GPTQ tensor costs rows × cols²). A producer that knows this puts
work units in `data`: `work` (done so far) and `work_total`, in any unit proportional to each step's cost
(`units(...)`); without them a step counts 1.

`EtaClock.estimate(key, done, total)`: remaining units divided by the rate measured from the end of the
FIRST step seen under that key: a first step pays for loading, kernel compilation, a reference pass, and
would extrapolate to everything, so no ETA is given until a second one is done. The key restarts when
`done` goes back or the total changes.

`EtaContext(ctx)` passes a job context through and gives every Progress an `eta_s` (a sensitivity pass's
per-tensor `LayerScored` also becomes a Progress): the quantize pipeline (core/quant/pipeline.py) and the
sensitivity pass alone use it, so the CLI and the app only display `eta_s`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import Event, Progress


def units(done: float, total: float) -> dict[str, float]:
    """The `data` entries that give a Progress its work units (cost-weighted done and total)."""
    return {"work": float(done), "work_total": float(total)}


@dataclass
class _Run:
    t0: float                   # the first event under a key
    d0: float
    total: float | None
    t1: float | None = None     # the end of the first step
    d1: float = 0.0
    last: float = 0.0


class EtaClock:
    """Per key: the first event and the end of the first step; remaining work / rate (module docstring)."""

    def __init__(self, now: Callable[[], float] | None = None) -> None:
        self._now = now or (lambda: time.monotonic())
        self._runs: dict[str, _Run] = {}

    def estimate(self, key: str, done: float, total: float | None) -> float | None:
        now = self._now()
        run = self._runs.get(key)
        if run is None or done < run.last or run.total != total:
            self._runs[key] = _Run(now, done, total, last=done)
            return None
        run.last = done
        if run.t1 is None:
            if done > run.d0:           # the first step: it may have paid for loading, compiling...
                run.t1, run.d1 = now, done
            return None
        # the rate from the end of the first step on, once as much work was done since as in it (before
        # that, a burst of quick steps right after it would say nearly nothing is left): else since the start
        t, d = (run.t1, run.d1) if done - run.d1 >= run.d1 - run.d0 else (run.t0, run.d0)
        if not total or done <= d or now <= t:
            return None
        return max(0.0, (now - t) / (done - d) * (total - done))

    def of(self, event: Progress) -> float | None:
        """The ETA of one Progress event (its work units when it carries them)."""
        data = event.data or {}
        step = data.get("step", "")
        if "work" in data and "work_total" in data:
            done, total = float(data["work"]), float(data["work_total"])
        else:
            done, total = float(event.done), (float(event.total) if event.total else None)
        return self.estimate(f"{event.phase}:{step}:{event.total}", done, total)


def work_done(event: Progress) -> tuple[float, float] | None:
    """(work done, work total) of an event that carries work units, else None: what a progress bar should
    fill by (steps of unlike cost, e.g. 16 Fisher sequences then 211 quick scorings, are not equal parts)."""
    data = event.data or {}
    if "work" in data and data.get("work_total"):
        return float(data["work"]), float(data["work_total"])
    return None


def as_progress(event: Event) -> Progress | None:
    """A Progress for a progress-like event (a tensor scored by the sensitivity pass's exact KL), else None.
    A tensor given its *estimate* is none: that is filed after the Fisher pass, which has its own count, and as
    progress its count (tensors) followed the pass's (steps), reading as the bar going back ("227/227" then
    "211/211")."""
    if isinstance(event, Progress):
        return event
    if hasattr(event, "path") and hasattr(event, "scores"):
        done, total = int(getattr(event, "done", 0)), int(getattr(event, "total", 0)) or None
        method = getattr(event, "method", "")
        if method == "estimate":
            return None
        return Progress(event.job, "sensitivity", done, total, f"{method} {event.path}".strip(),
                        {"step": f"scored:{method}", **(getattr(event, "work", None) or {})})
    return None


def with_eta(clock: EtaClock, event: Progress) -> Progress:
    """The event with `eta_s` added (one it already carries is kept)."""
    if "eta_s" in (event.data or {}):
        return event
    eta = clock.of(event)
    if eta is None:
        return event
    return dataclasses.replace(event, data={**(event.data or {}), "eta_s": eta})


class EtaContext:
    """A job context that adds `eta_s` to progress on its way out (see the module's docstring)."""

    def __init__(self, ctx: Any, clock: EtaClock | None = None) -> None:
        self._ctx = ctx
        self.clock = clock or EtaClock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    @property
    def job_id(self) -> int:
        return self._ctx.job_id

    def check(self) -> None:
        self._ctx.check()

    def emit(self, event: Event) -> None:
        progress = as_progress(event)
        if progress is not None and progress is not event:
            self._ctx.emit(event)            # a tensor scored: the live Layers view wants it as it is
        if progress is not None:
            progress = with_eta(self.clock, progress)
            self.noted(progress)
            event = progress
        self._ctx.emit(event)

    def noted(self, event: Progress) -> None:
        """Each progress event, with its ETA, before it goes out (the pipeline records it)."""

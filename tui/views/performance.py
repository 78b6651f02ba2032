"""The Performance tab: live figures during chat, benchmark suites, the memory-bandwidth roofline.

Engine events reach the view as `EngineEvent` messages, routed by the app: the events of the benchmark job
this tab started (it owns it) and of every chat answer (it follows "chat" jobs):
- any event carrying `ttft` / `prefill_tps` / `decode_tps` / `peak_memory` (attributes, or keys of a
  `data` dict) updates the live figures and sparklines — duck typing, see widgets/perf_live.py;
- the benchmark job this tab started reports `BenchProgress`, then `Finished` (a `BenchResult`, saved to
  <data dir>/bench/), `Failed` or `Cancelled`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from temper.core.bench.runner import BenchProgress, bench_job
from temper.core.engine.events import Cancelled, Failed, Finished
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Static

from ..bridge import EngineEvent
from ..typed_app import TemperNode
from ..widgets.perf_bench import PerfBench
from ..widgets.perf_live import PerfLive, read_stats
from ..widgets.perf_roofline import PerfRoofline


def blas_text() -> str:
    """Which BLAS MLX uses (temper.core.accel.blas); a probe that fails says so on the line."""
    from temper.core.accel.blas import blas_status

    try:
        status = blas_status()
    except Exception as exc:  # a broken probe must not break the tab: it shows as unknown, with why
        return f"BLAS: unknown ({type(exc).__name__}: {exc})"
    return f"BLAS: {status.line()}"


def load_history(limit: int = 20) -> list:
    """The most recent saved results of this machine's chip, oldest first; damaged files are skipped."""
    from temper.core.bench.results import BenchResult
    from temper.core.errors import TemperError
    from temper.core.paths import data_dir

    files = sorted((data_dir() / "bench").glob("*.json"), key=lambda f: f.stat().st_mtime)[-limit:]
    results = []
    for file in files:
        try:
            results.append(BenchResult.load(file))
        except TemperError:
            continue
    if not results:
        return []
    chip = results[-1].machine.get("chip")
    return [r for r in results if r.machine.get("chip") == chip]


class PerformanceView(TemperNode, Vertical):
    BINDINGS = [Binding("escape", "cancel_bench", "Stop benchmark", id="performance.cancel", show=False)]
    DEFAULT_CSS = """
    PerformanceView #perf-top { height: 1fr; }
    PerformanceView PerfLive { width: 1fr; }
    PerformanceView PerfRoofline { width: 2fr; }
    PerformanceView #perf-blas { height: 1; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job: Any = None
        self.result: Any = None
        self.saved_to: Any = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="perf-top"):
            yield PerfLive(id="perf-live")
            yield PerfRoofline(id="perf-roofline")
        yield PerfBench(model=self.app.model or "", id="perf-bench")
        yield Static(blas_text(), id="perf-blas")

    def on_mount(self) -> None:
        """Earlier saved runs (this machine's) go into the roofline plot, the latest into the table; the
        benchmark fields take the active profile's [bench] settings (and follow a profile applied later)."""
        self.query_one(PerfBench).show_profile(self.app.profile.section("bench"))
        self.watch(self.app, "profile", self._profile_changed, init=False)
        self.watch(self.app, "model", self._model_changed, init=False)
        self.app.follow_jobs("chat", self)             # live figures while a chat answer streams
        history = load_history()
        if history:
            roof = self.query_one(PerfRoofline)
            for result in history:
                roof.history.append(result)
            roof.show(history[-1], remember=False)
            self.query_one(PerfBench).show_result(history[-1])
            self.query_one(PerfBench).set_status(
                f"last saved run: {history[-1].model.get('name', '?')} ({history[-1].created}); "
                f"{len(history)} saved run(s) of this machine in the plot")

    def _model_changed(self, model: str | None) -> None:
        """A model opened elsewhere (Library, Open in Chat) is the one to benchmark: the latest choice wins."""
        if model and not self.query_one(PerfBench).running:
            self.query_one("#bench-model", Input).value = model

    def _profile_changed(self, profile) -> None:
        bench = self.query_one(PerfBench)
        if not bench.running:
            bench.show_profile(profile.section("bench"))

    # -- engine events ------------------------------------------------------------------------------------
    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        stats = read_stats(event)
        if stats:
            self.query_one(PerfLive).update_stats(stats)
        if self.job is None or event.job != self.job.id:
            return
        bench = self.query_one(PerfBench)
        if isinstance(event, BenchProgress):
            bench.progress(event.done, event.total, event.message)
        elif isinstance(event, Finished):
            self.job = None
            bench.set_running(False)
            self.show_result(event.result)
        elif isinstance(event, (Failed, Cancelled)):
            self.job = None
            bench.set_running(False)
            word = "cancelled" if isinstance(event, Cancelled) else f"[red]failed: {event.message}[/]"
            bench.set_status(f"benchmark {word}")

    def show_result(self, result: Any) -> None:
        self.result = result
        bench = self.query_one(PerfBench)
        bench.show_result(result)
        self.query_one(PerfRoofline).show(result)
        try:
            self.saved_to = self.save(result)
            bench.set_status(f"done · saved {self.saved_to} (compare: temper bench --compare A.json B.json)")
        except OSError as exc:
            bench.set_status(f"done · [red]could not save the result: {exc}[/]")

    @staticmethod
    def save(result: Any):
        from temper.core.paths import data_dir

        name = re.sub(r"[^\w.-]+", "_", str(result.model.get("name", "model")))
        return result.save(data_dir() / "bench" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")

    # -- benchmark runs -----------------------------------------------------------------------------------
    @on(PerfBench.Start)
    def start_bench(self, message: PerfBench.Start) -> None:
        bench = self.query_one(PerfBench)
        if self.job is not None:
            return
        self.job = self.app.engine.submit(bench_job(message.model, message.config), kind="bench")
        self.app.own_job(self.job.id, self)
        bench.set_running(True)
        bench.set_status(f"starting: {message.model} (the first run of each shape is a warm-up)")

    @on(PerfBench.Stop)
    def action_cancel_bench(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.query_one(PerfBench).set_status("cancelling…")

"""The Performance tab with a fake engine: live figures from duck-typed events, a benchmark run from the
tab (submit, progress, results, save), bad input, cancel, BLAS line."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from dataclasses import dataclass

import pytest
from temper.core.bench.metrics import RunTiming
from temper.core.bench.results import BatchRow, BenchResult, Row
from temper.core.bench.roofline import Roofline
from temper.core.bench.runner import BenchConfig, BenchProgress
from temper.core.engine.events import Cancelled, Event, Failed, Finished, Started
from temper.tui.app import TemperApp
from temper.tui.bridge import EngineEvent
from temper.tui.views.performance import PerformanceView
from temper.tui.widgets.perf_bench import PerfBench
from temper.tui.widgets.perf_live import PerfLive, read_stats
from temper.tui.widgets.perf_roofline import PerfRoofline, plot_points
from textual.widgets import Button, DataTable, Input, Sparkline, Static


class FakeJob:
    def __init__(self, job_id: int, fn, kind: str) -> None:
        self.id, self.fn, self.kind = job_id, fn, kind
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeEngine:
    def __init__(self) -> None:
        self.jobs: list[FakeJob] = []
        self.ids = itertools.count(70)

    def submit(self, fn, *, kind: str = "job") -> FakeJob:
        job = FakeJob(next(self.ids), fn, kind)
        self.jobs.append(job)
        return job

    def add_listener(self, listener):
        return lambda: None


@dataclass(frozen=True)
class ChatStats(Event):
    """What the chat might emit: only the attribute names matter."""

    ttft: float
    decode_tps: float
    prefill_tps: float
    peak_memory: float


def sync(fn):
    """Run an async Pilot test without an async pytest plugin."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def result() -> BenchResult:
    runs = [RunTiming(16, 4, 0.0, 0.1, 0.4, peak_memory=2_000_000_000),
            RunTiming(16, 4, 1.0, 1.1, 1.5, peak_memory=2_100_000_000)]
    roof = Roofline(1_000_000_000, 0, 100.0, 80.0, runs[0].decode_tps, "Test chip", "src")
    return BenchResult(model={"name": "tiny model"}, machine={"chip": "Test chip"}, config={"n": 2},
                       rows=[Row(16, 4, runs, roof)],
                       batch=[BatchRow(2, 16, 4, [0.1, 0.12], 8, 0.5, 20.0, 80.0, 3_000_000_000, 1.8)],
                       bandwidth={"chip": "Test chip", "table_gbs": 100.0, "measured_gbs": 80.0})


async def _open(pilot) -> PerformanceView:
    await pilot.press("f5")
    await pilot.pause()
    return pilot.app.query_one(PerformanceView)


def test_read_stats_duck_typing() -> None:
    assert read_stats(ChatStats(1, 0.25, 40.0, 900.0, 1.5)) == {
        "ttft": 0.25, "decode_tps": 40.0, "prefill_tps": 900.0, "peak_memory": 1.5e9}  # GB -> bytes
    assert read_stats(Finished(1, None)) == {}
    assert read_stats(BenchProgress(1, "run", data={"decode_tps": 12.0, "ttft": float("nan")})) == {
        "decode_tps": 12.0}


@sync
async def test_live_figures_from_any_stats_event() -> None:
    app = TemperApp(engine=FakeEngine())
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        app.post_message(EngineEvent(Started(1, "chat")))          # the tab follows chat answers
        for i in range(3):
            app.post_message(EngineEvent(ChatStats(1, 0.2, 30.0 + i, 500.0, 4_000_000_000 + i)))
        app.post_message(EngineEvent(Started(2, "float-copy")))    # ...and no other job it does not own
        app.post_message(EngineEvent(ChatStats(2, 0.2, 99.0, 500.0, 1)))
        await pilot.pause()
        live = view.query_one(PerfLive)
        assert live.updates == 3 and list(live.tps) == [30.0, 31.0, 32.0]
        assert view.query_one("#perf-tps-spark", Sparkline).data == [30.0, 31.0, 32.0]
        assert len(view.query_one("#perf-mem-spark", Sparkline).data) == 3
        text = str(view.query_one("#perf-figures", Static).render())
        assert "32.0 tok/s" in text and "200 ms" in text and "4.00 GB" in text


@sync
async def test_run_a_benchmark_from_the_tab(tmp_path) -> None:
    engine = FakeEngine()
    app = TemperApp(engine=engine)
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        view.query_one("#bench-model", Input).value = str(tmp_path)
        view.query_one("#bench-pp", Input).value = "16, 32"
        view.query_one("#bench-tg", Input).value = "4"
        view.query_one("#bench-n", Input).value = "2"
        view.query_one("#bench-batch", Input).value = "1,2"
        await pilot.click("#bench-run")
        await pilot.pause()
        assert len(engine.jobs) == 1 and engine.jobs[0].kind == "bench"
        job = engine.jobs[0]
        assert view.query_one("#bench-run", Button).disabled
        app.post_message(EngineEvent(BenchProgress(job.id, "run", 3, 9, "pp16+tg4 run 1/2",
                                                   {"decode_tps": 9.5}, label="pp16+tg4")))
        app.post_message(EngineEvent(BenchProgress(999, "run", 1, 2, "someone else's job")))
        await pilot.pause()
        assert "pp16+tg4 run 1/2" in str(view.query_one("#bench-status", Static).render())
        assert view.query_one(PerfLive).last["decode_tps"] == 9.5
        app.post_message(EngineEvent(Finished(job.id, result())))
        await pilot.pause()
        table = view.query_one(DataTable)
        assert table.row_count == 2
        assert table.get_row_at(0)[0] == "pp16+tg4" and table.get_row_at(1)[-1] == "1.80x"
        assert "%" in str(view.query_one("#roof-text", Static).render())
        assert not view.query_one("#bench-run", Button).disabled
        saved = json.loads(view.saved_to.read_text())
        assert saved["model"]["name"] == "tiny model"
        assert view.saved_to.parent.name == "bench"


@sync
async def test_bad_input_is_a_message_not_a_job() -> None:
    engine = FakeEngine()
    app = TemperApp(engine=engine)
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        view.query_one("#bench-model", Input).value = "/some/model"
        view.query_one("#bench-tg", Input).value = "1"
        await pilot.click("#bench-run")
        await pilot.pause()
        assert engine.jobs == []
        assert "at least 2" in str(view.query_one("#bench-status", Static).render())
        view.query_one("#bench-tg", Input).value = "8"
        view.query_one("#bench-pp", Input).value = "12,abc"
        view.query_one("#bench-pp", Input).focus()
        await pilot.pause()
        await pilot.press("enter")  # Enter in any field runs too
        await pilot.pause()
        assert engine.jobs == [] and "whole numbers" in str(view.query_one("#bench-status", Static).render())
        view.query_one("#bench-pp", Input).value = "12"
        view.query_one("#bench-kv", Input).value = "3"
        await pilot.click("#bench-run")
        await pilot.pause()
        assert engine.jobs == [] and "kv bits must be 4 or 8, or 0 for float" in \
            str(view.query_one("#bench-status", Static).render())
        view.query_one("#bench-kv", Input).value = "0"             # 0: the float cache, not "unset"
        assert view.query_one(PerfBench).read_config()[1].kv_bits == 0


@pytest.mark.parametrize("end", ["cancel", "fail"])
@sync
async def test_cancel_and_failure(end: str) -> None:
    engine = FakeEngine()
    app = TemperApp(engine=engine)
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        view.query_one("#bench-model", Input).value = "/m"
        await pilot.click("#bench-run")
        await pilot.pause()
        job = engine.jobs[0]
        if end == "cancel":
            await pilot.click("#bench-cancel")
            await pilot.pause()
            assert job.cancelled
            app.post_message(EngineEvent(Cancelled(job.id)))
            expected = "cancelled"
        else:
            app.post_message(EngineEvent(Failed(job.id, "/m: no such folder", "ModelLoadError")))
            expected = "no such folder"
        await pilot.pause()
        assert expected in str(view.query_one("#bench-status", Static).render())
        assert not view.query_one("#bench-run", Button).disabled and view.job is None


@sync
async def test_blas_line_and_roofline_plot() -> None:
    app = TemperApp(engine=FakeEngine())
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        assert str(view.query_one("#perf-blas", Static).render()).startswith("BLAS: ")
        view.query_one(PerfRoofline).show(result())
        await pilot.pause()
        assert plot_points(view.query_one(PerfRoofline).history) == [
            (1.0, pytest.approx(result().rows[0].roofline.decode_tps), "tiny model pp16+tg4")]


def test_config_defaults_are_valid() -> None:
    BenchConfig().validate()
    assert PerfBench().model == ""


@sync
async def test_real_engine_benchmark_from_the_tab(engine, tiny_llama) -> None:
    """The whole path on a real engine and model: inputs -> job -> events through the bridge -> table."""
    app = TemperApp(engine=engine)
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        view.query_one("#bench-model", Input).value = str(tiny_llama)
        view.query_one("#bench-pp", Input).value = "16"
        view.query_one("#bench-tg", Input).value = "4"
        view.query_one("#bench-n", Input).value = "2"
        await pilot.click("#bench-run")
        for _ in range(600):
            await pilot.pause(0.1)
            if view.job is None and view.result is not None:
                break
        assert view.result is not None, str(view.query_one("#bench-status", Static).render())
        assert view.query_one(DataTable).row_count == 1
        assert view.query_one(PerfLive).updates >= 2  # the runs' BenchProgress carried live figures
        assert len(view.result.rows[0].runs) == 2


@sync
async def test_saved_runs_come_back_on_start(tmp_path) -> None:
    from temper.core.paths import data_dir

    folder = data_dir() / "bench"
    result().save(folder / "a.json")
    other = result()
    other.machine = {"chip": "another chip"}
    other.save(folder / "b-other-machine.json")
    (folder / "broken.json").write_text("{")
    latest = result()
    latest.model = {"name": "latest model"}
    latest.save(folder / "c.json")
    app = TemperApp(engine=FakeEngine())
    async with app.run_test(size=(150, 45)) as pilot:
        view = await _open(pilot)
        roof = view.query_one(PerfRoofline)
        assert [r.model["name"] for r in roof.history] == ["tiny model", "latest model"]
        assert view.query_one(DataTable).row_count == 2
        assert "latest model" in str(view.query_one("#bench-status", Static).render())


def test_chat_stats_events_feed_the_live_figures() -> None:
    """The chat's StatsEvent carries a GenerationStats (ttft_s, peak_memory_gb): read through it."""
    from temper.core.engine.generate import GenerationStats, StatsEvent
    from temper.tui.widgets.perf_live import read_stats

    stats = GenerationStats(ttft_s=0.25, prefill_tps=300.0, decode_tps=42.0, peak_memory_gb=1.5)
    read = read_stats(StatsEvent(1, stats, final=True))
    assert read == {"ttft": 0.25, "prefill_tps": 300.0, "decode_tps": 42.0, "peak_memory": 1.5e9}


def test_blas_line_is_readable() -> None:
    from temper.tui.views.performance import blas_text

    text = blas_text()
    assert text.startswith("BLAS: ") and "BlasStatus(" not in text


@sync
async def test_the_active_profile_fills_the_benchmark_fields() -> None:
    from temper.core.profiles import load

    app = TemperApp(engine=FakeEngine(), profile="bench-quick")
    async with app.run_test(size=(150, 45)) as pilot:
        await _open(pilot)
        value = lambda sel: pilot.app.query_one(sel).value  # noqa: E731
        assert (value("#bench-pp"), value("#bench-tg"), value("#bench-n"), value("#bench-batch")) == \
            ("128,512", "64", "1", "")
        custom = load("bench-quick").copy("mine")
        custom.set("bench", "prompt_lengths", [32])
        custom.set("bench", "batch_sizes", [1, 2])
        custom.set("bench", "kv_bits", 0)
        pilot.app.profile = custom                       # ctrl+o applies a profile: the fields follow
        await pilot.pause()
        assert (value("#bench-pp"), value("#bench-batch"), value("#bench-kv")) == ("32", "1,2", "0")


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_benchmark_fields_and_table_fit_small_terminals(size) -> None:
    @sync
    async def check() -> None:
        app = TemperApp(engine=FakeEngine())
        async with app.run_test(size=size) as pilot:
            await _open(pilot)
            await pilot.pause()
            screen = pilot.app.screen.region
            for sel in ("#bench-pp", "#bench-tg", "#bench-n", "#bench-batch", "#bench-kv", "#bench-run"):
                widget = pilot.app.query_one(sel)
                assert widget.region.area and screen.contains_region(widget.region), sel
            for sel in ("#bench-pp", "#bench-tg", "#bench-n"):      # unfocused, the whole value shows
                field = pilot.app.query_one(sel)
                assert field.content_region.width > len(field.value), (sel, field.content_region)
            assert pilot.app.query_one("#bench-table").region.height >= 3

    check()


@sync
async def test_the_benchmark_model_follows_the_active_model(tmp_path) -> None:
    """Open in Chat (or the Library) changes the active model: F5 then benchmarks that one, not the one the
    app started with; a running benchmark keeps its field."""
    engine = FakeEngine()
    app = TemperApp(engine=engine, model=str(tmp_path / "first"))
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _open(pilot)
        field = view.query_one("#bench-model", Input)
        assert field.value == str(tmp_path / "first")
        app.model = str(tmp_path / "quantized")
        await pilot.pause()
        assert field.value == str(tmp_path / "quantized")
        await pilot.click("#bench-run")
        await pilot.pause()
        app.model = str(tmp_path / "other")
        await pilot.pause()
        assert field.value == str(tmp_path / "quantized")          # the running benchmark's model stays


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
def test_the_live_panel_keeps_its_border_and_both_sparklines(size) -> None:
    """Before: at 100x30 the Live box was taller than its row: its bottom border was cut off (and at 80x24
    the memory sparkline too)."""
    @sync
    async def check() -> None:
        app = TemperApp(engine=FakeEngine())
        async with app.run_test(size=size) as pilot:
            await _open(pilot)
            await pilot.pause()
            row = pilot.app.query_one("#perf-top").region
            live = pilot.app.query_one(PerfLive)
            assert row.contains_region(live.region) and live.outer_size.height <= row.height, (live.region, row)
            assert live.virtual_size.height <= live.content_region.height       # nothing scrolled out of sight
            for spark in live.query(Sparkline):
                assert spark.region.height >= 1 and live.content_region.contains_region(spark.region)

    check()

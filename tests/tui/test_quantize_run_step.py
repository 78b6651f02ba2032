"""The Quantize wizard's Run and Result steps driven with keys, against a fake client (tests/tui/fake_quant.py):
resume offers, cancel, failures, quitting during a run, the result's actions and evals.

The fake's jobs run on the real engine, so events go engine → bridge → app → view as in use."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from temper.core import jobs
from textual.widgets import Checkbox, Input, Static, TabbedContent
from wizard_pilot import make_app, open_compare, phase_text, run, start_run, step, wait_for_step, wait_text


def _interrupted_record(tmp_path: Path) -> str:
    """A job record left 'running' by a process that is gone (as after a kill or a dropped SSH link)."""
    request = {"model": str(tmp_path / "tiny-llama"), "output": str(tmp_path / "resumed")}
    code = (f"from temper.core import jobs; r = jobs.create('quantize', {request!r}); "
            "r.step('sensitivity', 7, 29); print(r.id)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_interrupted_job_is_offered_and_resumed(engine, tmp_path: Path) -> None:
    job_id = _interrupted_record(tmp_path)
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        text = str(pilot.app.query_one("#resume-text", Static).render())
        assert "tiny-llama → resumed, stopped in sensitivity 7/29" in text
        pilot.app.query_one("#resume-yes").press()
        await wait_for_step(pilot, "step-result")
        assert not pilot.app.query("#resume-text")

    run(app, script)
    record = jobs.load(job_id)
    assert record.status == "done" and record.result["output"] == str(tmp_path / "resumed")


def test_interrupted_job_can_be_discarded(engine, tmp_path: Path) -> None:
    job_id = _interrupted_record(tmp_path)
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        pilot.app.query_one("#resume-no").press()
        await pilot.pause()
        assert not pilot.app.query("#resume-text")

    run(app, script)
    assert jobs.load(job_id).status == "cancelled" and client.started == []


def test_cancel_stops_the_run(engine, tmp_path: Path) -> None:
    gate = threading.Event()
    app, client = make_app(engine, tmp_path, gate=gate)

    async def script(pilot) -> None:
        await start_run(pilot)
        for _ in range(400):
            if "14/29" in str(pilot.app.query_one("#phase-sensitivity .phase-status").render()):
                break
            await pilot.pause(0.05)
        assert "ETA 1m15s" in str(pilot.app.query_one("#phase-sensitivity .phase-status").render())
        await pilot.press("escape")
        await pilot.pause(0.05)
        gate.set()
        for _ in range(400):
            if "Cancelled" in str(pilot.app.query_one("#run-message").render()):
                break
            await pilot.pause(0.05)
        assert "Cancelled" in str(pilot.app.query_one("#run-message").render())

    try:
        run(app, script)
    finally:
        gate.set()


def test_result_opens_in_chat_and_compares(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)
    earlier = jobs.create("quantize", {"model": str(tmp_path / "tiny-llama")})
    earlier.finish("done", result={"output": str(tmp_path / "older-3bpw"), "bpw": 3.1, "size_bytes": 999,
                                   "quality": {"kl_mean": 0.3, "top1": 0.8}, "verified": True})

    async def script(pilot) -> None:
        table = await open_compare(pilot)
        assert table.get_row("bpw") == ["Real bpw", "4.480", "3.100"]
        pilot.app.query_one("#result-chat").press()
        await pilot.pause()
        assert pilot.app.model == str(tmp_path / "out-4.5bpw")
        assert pilot.app.query_one(TabbedContent).active == "chat"
        await pilot.pause()
        assert pilot.app.focused is not None and pilot.app.focused.id == "chat-input"   # typing goes to the box
        await pilot.press("f6", "escape")                  # chat settings and back: the box keeps the keyboard
        await pilot.pause()
        assert pilot.app.focused is not None and pilot.app.focused.id == "chat-input"

    run(app, script)


def test_a_failed_run_offers_back_and_new_and_never_ticks_the_failed_phase(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path, fail_in="write")

    async def script(pilot) -> None:
        await start_run(pilot)
        await wait_text(pilot, "#run-message", "Failed: write broke")
        assert phase_text(pilot.app, "sensitivity").startswith("✓") and phase_text(pilot.app, "allocate").startswith("✓")
        assert phase_text(pilot.app, "write").startswith("✗") and "failed" in phase_text(pilot.app, "write")
        assert phase_text(pilot.app, "verify").endswith("waiting") and "✓" not in phase_text(pilot.app, "verify")
        assert pilot.app.query_one("#run-back").display and not pilot.app.query_one("#run-cancel").display
        await pilot.pause(0.1)
        assert pilot.app.focused is not None and pilot.app.focused.id == "run-back"   # so Esc reaches the wizard
        await pilot.press("escape")                      # back to Review, settings kept
        assert await step(pilot) == "step-review"
        await pilot.press("enter")                       # run again: this time it works
        await wait_for_step(pilot, "step-result")
        pilot.app.query_one("#result-new").press()
        await pilot.pause()
        assert await step(pilot) == "step-model"

    run(app, script)
    assert len(client.started) == 2


def test_after_a_failure_new_and_the_library_leave_the_run_step(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path, fail_in="allocate")

    async def script(pilot) -> None:
        await pilot.press("enter", "enter", "enter", "enter")
        await wait_text(pilot, "#run-message", "Failed: allocate broke")
        await pilot.pause(0.4)
        pilot.app.query_one("#run-new").press()
        await pilot.pause()
        assert await step(pilot) == "step-model"
        client.fail_in = "write"
        await pilot.press("enter", "enter", "enter", "enter")
        await wait_text(pilot, "#run-message", "Failed: write broke")
        pilot.app.open_model(str(tmp_path / "tiny-llama"), "quantize")   # Library → q on the same model
        await pilot.pause()
        assert await step(pilot) == "step-model"

    run(app, script)


def test_ctrl_q_during_a_run_asks_first(engine, tmp_path: Path) -> None:
    from temper.tui.screens.confirm_quit import ConfirmQuit

    gate = threading.Event()
    app, client = make_app(engine, tmp_path, gate=gate)

    async def script(pilot) -> None:
        await start_run(pilot)
        await wait_text(pilot, "#phase-sensitivity .phase-status", "running")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ConfirmQuit) and pilot.app.is_running
        assert "offered for resume" in str(pilot.app.screen.query_one("#confirm-text").render())
        await pilot.press("n")                            # keep running
        await pilot.pause()
        assert not isinstance(pilot.app.screen, ConfirmQuit) and pilot.app.is_running
        await pilot.press("ctrl+q", "y")
        await pilot.pause()
        assert not pilot.app.is_running

    try:
        run(app, script)
    finally:
        gate.set()


def _with_run_step(check) -> None:
    """Run `await check(pilot, run_step)` on a bare app holding one reset RunStep (100×30)."""
    import asyncio as aio

    from temper.tui.widgets.quant_run import RunStep
    from textual.app import App

    class One(App):
        def compose(self):
            yield RunStep()

    async def main() -> None:
        async with One().run_test(size=(100, 30)) as pilot:
            run_step = pilot.app.query_one(RunStep)
            run_step.reset("x")
            await check(pilot, run_step)

    aio.run(main())


def test_sub_phase_progress_is_not_named_twice() -> None:
    async def check(pilot, run_step) -> None:
        run_step.progress("fisher", 1, 8, "fisher 1/8")
        await pilot.pause()
        assert str(pilot.app.query_one("#run-message").render()) == "fisher 1/8"
        run_step.progress("exact", 2, 8, "model.layers.0.mlp")
        await pilot.pause()
        assert str(pilot.app.query_one("#run-message").render()) == "exact: model.layers.0.mlp"

    _with_run_step(check)


def test_the_bar_fills_by_work_units_and_the_count_stays_in_steps() -> None:
    """4 of 16 Fisher sequences done is most of a sensitivity pass's work although 4/227 of its steps (the
    211 scorings after them are quick): the bar says the work, the status the steps."""
    from temper.tui.widgets.quant_run import PhaseRow
    from textual.widgets import ProgressBar

    async def check(pilot, run_step) -> None:
        run_step.progress("sensitivity", 4, 227, "fisher: sequence 4/16", 90.0, (4 * 60.0, 16 * 60.0 + 211))
        await pilot.pause()
        row = pilot.app.query_one("#phase-sensitivity", PhaseRow)
        bar = row.query_one(ProgressBar)
        assert 0.2 < bar.percentage < 0.25, bar.percentage
        assert "4/227" in str(row.query_one(".phase-status").render())
        run_step.progress("sensitivity", 227, 227, "done", None, (1171.0, 1171.0))
        await pilot.pause()
        assert bar.percentage == 1.0

    _with_run_step(check)


def test_result_step_runs_the_chosen_eval_tasks_and_shows_their_rows(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        for expected in ("step-goal", "step-calibration", "step-review"):
            await pilot.press("enter")
            await wait_for_step(pilot, expected)
        await pilot.press("enter")
        await wait_for_step(pilot, "step-result")
        app = pilot.app
        assert [t for t in ("humaneval", "gsm8k", "mmlu") if app.query_one(f"#eval-{t}", Checkbox).value] == \
            ["humaneval", "gsm8k"]
        for t in ("humaneval", "gsm8k", "mmlu"):
            app.query_one(f"#eval-{t}", Checkbox).value = False
        app.query_one("#eval-run").press()
        await wait_text(pilot, "#eval-status", "tick at least one eval task")
        app.query_one("#eval-gsm8k", Checkbox).value = True
        app.query_one("#eval-mmlu", Checkbox).value = True
        app.query_one("#eval-limit", Input).value = "five"
        app.query_one("#eval-run").press()
        await wait_text(pilot, "#eval-status", "not a whole number")
        assert client.evals == []
        app.query_one("#eval-limit", Input).value = "5"
        app.query_one("#eval-run").press()
        await wait_text(pilot, "#eval-status", "Evals done")
        assert client.evals == [(str(tmp_path / "tiny-llama"), str(tmp_path / "out-4.5bpw"), ["gsm8k", "mmlu"], 5)]
        table = app.query_one("#result-table")
        for _ in range(200):                                 # EvalsFinished reaches the view just after
            if "capability-gsm8k accuracy" in [str(k.value) for k in table.rows]:
                break
            await pilot.pause(0.05)
        assert table.get_row("capability-gsm8k accuracy") == ["gsm8k accuracy", "25.0% [10–50] n=5 (base 50.0%)"]
        assert table.get_row("capability-Capability score")[1] == "25.0% (base 50.0%)"
        assert "capability-humaneval accuracy" not in [str(k.value) for k in table.rows]

    run(app, script)


def test_every_phase_name_keeps_a_gap_before_its_bar(engine, tmp_path: Path) -> None:
    """Before: "▸ Sensitivity━━━": the longest name ran into its bar."""
    gate = threading.Event()
    app, client = make_app(engine, tmp_path, gate=gate)

    async def script(pilot) -> None:
        await start_run(pilot)
        for label in pilot.app.query(".phase-name"):
            text = str(label.render()).rstrip()
            assert label.content_size.width > len(text), (text, label.content_size)

    try:
        run(app, script, size=(80, 24))
    finally:
        gate.set()


def test_a_recipe_without_scores_shows_prepare_not_a_sensitivity_pass(engine, tmp_path: Path) -> None:
    """Before: uniform-8 showed "✓ Sensitivity done" though no sensitivity pass ran."""
    from textual.widgets import OptionList

    gate = threading.Event()
    app, client = make_app(engine, tmp_path, gate=gate)

    async def script(pilot) -> None:
        await pilot.press("enter")
        goals = pilot.app.query_one("#recipe-list", OptionList)
        goals.highlighted = next(i for i in range(goals.option_count)
                                 if "uniform 8-bit" in str(goals.get_option_at_index(i).prompt))
        goals.focus()
        await pilot.press("enter", "enter", "enter")
        await wait_for_step(pilot, "step-run")
        assert "Prepare" in phase_text(pilot.app, "sensitivity")
        assert "Sensitivity" not in phase_text(pilot.app, "sensitivity")
        gate.set()

    try:
        run(app, script)
    finally:
        gate.set()
    (req,) = client.started
    assert req.recipe == "uniform-8"


def test_one_step_events_never_show_a_count_of_one_and_the_write_row_keeps_its_tensors() -> None:
    """Before: the Write row ended "done · 1/1" (its last event is the one-step save, after 211/211
    tensors), Allocation "done · 1/1", and the write's model load put the Sensitivity row back to
    "running · 0/1". The events are the real pipeline's (core/quant/job.py, core/quant/write.py); the
    bridge may merge a phase's last tick into the one-step event that follows it (a reused table)."""
    import re

    from temper.tui.widgets.quant_run import PhaseRow

    n = 7
    events = [("inventory", 0, 1, "model"), ("sensitivity", 0, None, "reading calibration text"),
              *[("sensitivity", i, 5, f"scoring t{i}") for i in range(1, 5)],    # 5/5 merged away (bridge)
              ("sensitivity", 1, 1, "measured fast scores"), ("allocate", 0, 1, "temper"),
              ("allocate", 1, 1, "4.500 bpw"), ("load", 0, 1, ""),
              *[("quantize", i, n, f"t{i}") for i in range(n + 1)], ("write", 0, 1, ""), ("write", 1, 1, ""),
              ("verify", 0, n, "out")]

    async def check(pilot, run_step) -> None:
        def statuses() -> dict[str, str]:
            return {row.phase: str(row.query_one(".phase-status").render()) for row in pilot.app.query(PhaseRow)}

        for phase, done, total, message in events:
            run_step.progress(phase, done, total, message)
            await pilot.pause()
            for name, text in statuses().items():
                assert not re.search(r"\b[01]/1\b", text), (phase, done, total, name, text)
            if phase in ("load", "quantize", "write"):
                assert statuses()["sensitivity"].startswith("done"), statuses()
        rows = statuses()
        assert rows["sensitivity"].startswith("done · 5/5 · ") and rows["verify"].startswith("running · 0/7")
        assert re.fullmatch(rf"done · {n}/{n} · (<1s|\d+s)", rows["write"]), rows["write"]
        assert re.fullmatch(r"done · (<1s|\d+s)", rows["allocate"]), rows["allocate"]
        run_step.ended("done")
        await pilot.pause()
        assert re.fullmatch(rf"done · {n}/{n} · (<1s|\d+s)", statuses()["write"]), statuses()

    _with_run_step(check)

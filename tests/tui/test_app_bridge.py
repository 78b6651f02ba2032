"""Engine events reach the widget that owns their job and the followers of its kind, never everyone; floods of
progress merge; the final event always arrives; events after the app has exited are dropped without errors."""

from __future__ import annotations

import pytest
from shell_app import new_app
from temper.core.engine.events import Finished, Progress, Started
from temper.tui.bridge import EngineEvent
from textual.widgets import Static

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"



class RecordingView(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("recording", **kwargs)
        self.events: list = []

    def on_engine_event(self, message: EngineEvent) -> None:
        self.events.append(message.event)


def flood(n: int):
    def job(ctx):
        for i in range(n):
            ctx.emit(Progress(ctx.job_id, "scan", i, n))
        return "done"

    return job


def test_only_newer_progress_of_the_same_job_and_phase_replaces() -> None:
    old = EngineEvent(Progress(1, "scan", 1))
    assert old.can_replace(EngineEvent(Progress(1, "scan", 2)))
    assert not old.can_replace(EngineEvent(Progress(2, "scan", 2)))
    assert not old.can_replace(EngineEvent(Progress(1, "load", 2)))
    assert not old.can_replace(EngineEvent(Finished(1, None)))
    assert not EngineEvent(Started(1, "x")).can_replace(EngineEvent(Started(1, "x")))


async def test_flood_of_progress_arrives_in_order_with_the_final_event(engine) -> None:
    n = 5000
    app = new_app(engine, tabs=[("library", "Library", RecordingView), ("chat", "Chat", RecordingView)])
    async with app.run_test(size=(80, 24)) as pilot:
        job = engine.submit(flood(n), kind="flood")
        app.own_job(job.id, app.query_one("#library-view"))      # the owner, and a follower of its kind
        app.follow_jobs("flood", app.query_one("#chat-view"))
        job.result(timeout=30)
        for _ in range(500):  # up to 10 s on a loaded machine; usually one or two rounds
            await pilot.pause(0.02)
            view = app.query_one("#chat-view", RecordingView)
            if view.events and isinstance(view.events[-1], Finished) and view.events[-1].job == job.id:
                break
        for view_id in ("#library-view", "#chat-view"):
            events = [e for e in app.query_one(view_id, RecordingView).events if e.job == job.id]
            assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
            done = [e.done for e in events if isinstance(e, Progress)]
            assert done == sorted(done) and done[-1] == n - 1  # newest progress never lost
            assert len(done) <= n
        assert app.bridge.posted >= n + 2


async def test_two_concurrent_jobs_reach_only_their_owners(engine) -> None:
    """Before: the app handed every event to every view, so each tab saw the other's job (the Quantize tab
    filtered by id, the Performance tab's live figures did not)."""
    import threading

    tabs = [("library", "Library", RecordingView), ("chat", "Chat", RecordingView),
            ("layers", "Layers", RecordingView)]
    app = new_app(engine, tabs=tabs)
    gate = threading.Event()

    def gated(tag: str):
        def job(ctx):
            for i in range(3):
                ctx.emit(Progress(ctx.job_id, tag, i, 3))
            gate.wait(10)
            return tag
        return job

    async with app.run_test(size=(80, 24)) as pilot:
        first, second, third = (app.query_one(f"#{tab}-view", RecordingView) for tab, _, _ in tabs)
        a = engine.submit(gated("a"), kind="download")
        app.own_job(a.id, first)
        b = engine.submit(gated("b"), kind="quantize")      # in flight at once: queued behind a
        app.own_job(b.id, second)
        app.follow_jobs("quantize", third)                  # a follower sees b's events only
        # and two jobs whose events interleave, as two event sources would
        app.own_job(9001, first)
        app.own_job(9002, second)
        for event in (Started(9001, "x"), Started(9002, "y"), Progress(9002, "p", 1), Progress(9001, "p", 1),
                      Finished(9002, None), Finished(9001, None)):
            app.post_message(EngineEvent(event))
        gate.set()
        a.result(timeout=30)
        b.result(timeout=30)
        for _ in range(500):
            await pilot.pause(0.02)
            if any(isinstance(e, Finished) and e.job == b.id for e in second.events):
                break
        assert {e.job for e in first.events} == {a.id, 9001}
        assert {e.job for e in second.events} == {b.id, 9002}
        assert {e.job for e in third.events} == {b.id}
        for view, job in ((first, a), (second, b), (third, b)):
            mine = [e for e in view.events if e.job == job.id]
            assert isinstance(mine[0], Started) and isinstance(mine[-1], Finished) and mine[-1].result in "ab"
        assert [type(e).__name__ for e in first.events if e.job == 9001] == ["Started", "Progress", "Finished"]


async def test_events_after_exit_are_dropped(engine) -> None:
    app = new_app(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bridge = app.bridge
    before = bridge.dropped
    assert engine.run(flood(10)) == "done"  # no exception on the engine thread, no hang
    assert bridge.dropped == before  # the listener was removed on unmount
    bridge._on_event(Progress(1, "late"))  # a listener call racing the exit
    assert bridge.dropped == before + 1


def test_domain_events_merge_only_when_they_opt_in() -> None:
    from dataclasses import dataclass

    from temper.core.engine.events import Event

    @dataclass(frozen=True)
    class Token(Event):
        text: str

    @dataclass(frozen=True)
    class Rate(Event):
        coalesce = True
        tok_s: float

    assert not EngineEvent(Token(1, "a")).can_replace(EngineEvent(Token(1, "b")))
    assert EngineEvent(Rate(1, 10.0)).can_replace(EngineEvent(Rate(1, 11.0)))
    assert not EngineEvent(Rate(1, 10.0)).can_replace(EngineEvent(Rate(2, 11.0)))


async def test_quitting_cancels_a_running_job(engine) -> None:
    import threading
    import time

    from temper.core.engine.events import Cancelled

    started = threading.Event()

    def long_job(ctx):
        started.set()
        for _ in range(2000):  # 20 s unless cancelled
            ctx.check()
            time.sleep(0.01)

    app = new_app(engine)
    async with app.run_test(size=(80, 24)):
        job = engine.submit(long_job, kind="long")
        assert started.wait(10)
    # leaving run_test unmounted the app: the job was cancelled and has stopped
    assert engine.current is None
    assert isinstance(list(job.events(timeout=5))[-1], Cancelled)

from __future__ import annotations

import threading
import time

import pytest
from temper.core.engine import Cancelled, Engine, Failed, Finished, Progress, Started
from temper.core.errors import JobCancelled, TemperError


def test_jobs_run_on_one_thread_in_order(engine: Engine) -> None:
    seen = []
    jobs = [engine.submit(lambda ctx, i=i: seen.append((i, threading.current_thread().name)) or i)
            for i in range(5)]
    assert [j.result(10) for j in jobs] == list(range(5))
    assert [i for i, _ in seen] == list(range(5))
    assert {name for _, name in seen} == {engine.thread.name}


def test_events_flow_and_end_with_finished(engine: Engine) -> None:
    def work(ctx):
        for i in range(3):
            ctx.emit(Progress(ctx.job_id, "step", i + 1, 3))
        return "ok"

    job = engine.submit(work, kind="demo")
    events = list(job.events(timeout=10))
    assert isinstance(events[0], Started) and events[0].kind == "demo"
    assert [e.done for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert isinstance(events[-1], Finished) and events[-1].result == "ok"


def test_cancel_stops_a_running_loop_within_one_step(engine: Engine) -> None:
    steps = []
    started = threading.Event()

    def loop(ctx):
        started.set()
        while True:
            ctx.check()
            steps.append(1)
            time.sleep(0.01)

    job = engine.submit(loop)
    assert started.wait(10)
    time.sleep(0.05)
    job.cancel()
    n = len(steps)
    events = list(job.events(timeout=10))
    assert isinstance(events[-1], Cancelled)
    assert len(steps) <= n + 1
    with pytest.raises(JobCancelled):
        job.result(1)


def test_cancel_before_start_never_runs(engine: Engine) -> None:
    gate = threading.Event()
    blocker = engine.submit(lambda ctx: gate.wait(10))
    ran = []
    queued = engine.submit(lambda ctx: ran.append(1))
    queued.cancel()
    gate.set()
    blocker.result(10)
    assert isinstance(list(queued.events(timeout=10))[-1], Cancelled)
    assert ran == []


def test_errors_become_one_line_failed_events(engine: Engine) -> None:
    def bad(ctx):
        raise TemperError("line one\nline two")

    job = engine.submit(bad)
    last = list(job.events(timeout=10))[-1]
    assert isinstance(last, Failed) and last.message == "line one line two"


def test_a_broken_listener_does_not_kill_the_engine() -> None:
    eng = Engine(name="listener-test")
    try:
        eng.add_listener(lambda e: 1 / 0)
        assert eng.run(lambda ctx: 42, timeout=10) == 42
        assert eng.run(lambda ctx: 43, timeout=10) == 43
    finally:
        eng.shutdown()

"""A scripted chat client and Pilot helpers for the Chat tab's tests: no MLX, no model."""

from __future__ import annotations

import asyncio
import functools

from temper.core.engine import Engine
from temper.core.engine.events import Finished
from temper.core.engine.generate import ChatResult, GenerationStats, StatsEvent, TokenEvent
from temper.tui.app import TemperApp
from temper.tui.views.chat import ChatView
from temper.tui.widgets.chat_message import ChatMessage
from textual.widgets import Input


def sync(test):
    """Run an async Pilot test with asyncio.run (no pytest-asyncio in the dev extras)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


class FakeJob:
    def __init__(self, client, request, on_event):
        self.client, self.request, self.on_event = client, request, on_event
        self.cancelled = False
        self.text, self.thinking, self.n = "", "", 0

    def cancel(self):
        self.cancelled = True
        self.client.finish("stopped")


class FakeClient:
    """Records requests; the test pushes tokens and the end of each answer."""

    def __init__(self):
        self.jobs: list[FakeJob] = []

    def start(self, request, on_event):
        self.jobs.append(FakeJob(self, request, on_event))
        return self.jobs[-1]

    @property
    def job(self) -> FakeJob:
        return self.jobs[-1]

    def token(self, text, thinking=False):
        job = self.job
        job.n += 1
        if thinking:
            job.thinking += text
        else:
            job.text += text
        job.on_event(TokenEvent(1, text, job.n, False, thinking))

    def stats(self, **kw):
        self.job.on_event(StatsEvent(1, GenerationStats(tokens=self.job.n, **kw)))

    def finish(self, status="ok", notes=()):
        job = self.job
        stats = GenerationStats(tokens=job.n, ttft_s=0.05, decode_tps=42.0, elapsed_s=1.5, prompt_tokens=10,
                                prefill_tokens=10, context_used=10 + job.n, context_limit=2048,
                                finish={"ok": "stop"}.get(status, status), notes=list(notes))
        job.on_event(Finished(1, ChatResult(job.text, job.thinking, status, stats)))


def make_app(model="models/tiny", client=None):
    app = TemperApp(engine=Engine(name="chat-view-test"))
    app.model = model
    app.chat_client = client or FakeClient()
    return app


async def open_chat(pilot):
    await pilot.press("f4")
    await pilot.pause()
    return pilot.app.query_one(ChatView)


async def send(pilot, text):
    box = pilot.app.query_one("#chat-input", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    await pilot.pause()


def answers(view):
    return [m for m in view.query(ChatMessage) if m.role == "assistant"]

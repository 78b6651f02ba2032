"""Helpers for the chat tests: run a chat request on the engine and collect its events."""

from __future__ import annotations

from temper.core.engine.generate import ChatRequest, StatsEvent, TokenEvent, chat_job
from temper.core.engine.sampling import SamplingSettings

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What does the engine thread own?"},
]


def greedy(max_tokens: int = 24) -> SamplingSettings:
    return SamplingSettings(temperature=0.0, max_tokens=max_tokens)


def ask(engine, model, messages=MESSAGES, **kw):
    """Run one request; return (result, token events, final stats event)."""
    kw.setdefault("sampling", greedy())
    job = engine.submit(chat_job(ChatRequest(model=str(model), messages=list(messages), **kw)), kind="chat")
    events = list(job.events(timeout=120))
    result = job.result(1)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    final = [e for e in events if isinstance(e, StatsEvent) and e.final]
    assert len(final) == 1
    return result, tokens, final[0].stats


def forget_session(engine) -> None:
    engine.run(lambda ctx: ctx.state.pop("chat_session", None))

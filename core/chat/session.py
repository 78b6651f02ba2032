"""What the CLI and the Chat tab share: turning a stored conversation into a generation request, and a
small client that runs requests on the engine and hands events to a callback (a fake one in UI tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from ..engine.events import Event, is_terminal
from ..engine.generate import ChatRequest, chat_job
from .settings import ChatSettings
from .store import Message


def history(system_prompt: str, messages: list[Message]) -> list[dict[str, str]]:
    """The chat-template messages: the system prompt, then every kept turn (empty or failed answers dropped)."""
    out = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    for msg in messages:
        if msg.role == "system":        # a record of a prompt change: the prompt in effect is the one above
            continue
        if msg.role == "assistant" and (msg.status == "error" or not msg.content.strip()):
            continue
        out.append({"role": msg.role, "content": msg.content})
    return out


def make_request(model: str, system_prompt: str, messages: list[Message], settings: ChatSettings) -> ChatRequest:
    s = settings.validate()
    return ChatRequest(model=model, messages=history(system_prompt, messages), sampling=s.sampling,
                       effort=s.effort, budgets=s.budgets, drafter=s.drafter,
                       num_draft_tokens=s.num_draft_tokens, kv_bits=s.kv_bits, context_limit=s.context_limit)


class Handle(Protocol):
    def cancel(self) -> None: ...


class ChatClient(Protocol):
    """Starts a generation; `on_event` gets every event of it, ending with a terminal one (any thread)."""

    def start(self, request: ChatRequest, on_event: Callable[[Event], None]) -> Handle: ...


class EngineChatClient:
    """The real client: one engine job per answer; a small thread forwards its events as they come."""

    def __init__(self, engine):
        self.engine = engine

    def start(self, request: ChatRequest, on_event: Callable[[Event], None]):
        job = self.engine.submit(chat_job(request), kind="chat")

        def forward() -> None:
            for event in job.events():
                on_event(event)
                if is_terminal(event):
                    return

        threading.Thread(target=forward, name=f"chat-events-{job.id}", daemon=True).start()
        return job

"""Engine events -> Textual messages.

The engine calls listeners on its own thread. The bridge posts an `EngineEvent` to the app with
`post_message`, which is thread-safe and never blocks the engine thread (unlike `call_from_thread`,
which waits for the UI). After the app has exited, events are dropped (counted in `dropped`), and
`close()` removes the listener. A terminal event (Finished, Failed, Cancelled) is never merged or
dropped while the app runs; high-rate `Progress` events of one job and phase merge (`can_replace`)
when the UI falls behind, so the newest one is always what is shown. A domain event class can opt in to
the same merging with a class attribute `coalesce = True` (for "latest value wins" events such as a tok/s
gauge; never for tokens or per-layer results, which must all arrive).
"""

from __future__ import annotations

import threading

from temper.core.engine import Engine, Event
from temper.core.engine.events import Progress, Started, is_terminal
from textual.app import App
from textual.message import Message
from textual.widget import Widget


class EngineEvent(Message, bubble=False):
    """One engine event, delivered on the UI thread. The app's JobRouter hands a copy to the widgets it
    belongs to."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    @property
    def terminal(self) -> bool:
        return is_terminal(self.event)

    def can_replace(self, message: Message) -> bool:
        """True when `message` (queued after this one) supersedes it: a newer Progress of the same job
        and phase. Nothing else is ever merged: tokens, domain events and terminal events all arrive."""
        if not isinstance(message, EngineEvent):
            return False
        mine, theirs = self.event, message.event
        if type(mine) is not type(theirs) or mine.job != theirs.job or is_terminal(mine):
            return False
        if type(mine) is Progress or getattr(type(mine), "coalesce", False) is True:
            return getattr(mine, "phase", None) == getattr(theirs, "phase", None)
        return False


class JobRouter:
    """Which widget gets which engine event (the app's `on_engine_event` calls `route`): the widget that
    owns the job (it submitted it), then the widgets following that kind of job (the Layers tab watches
    quantize jobs, the Performance tab's live figures chat answers). A job nobody owns or follows reaches
    no widget: events are never broadcast. The kind comes from the job's Started event."""

    def __init__(self) -> None:
        self.owners: dict[int, Widget] = {}
        self.kinds: dict[int, str] = {}
        self.followers: dict[str, list[Widget]] = {}

    def own(self, job_id: int, owner: Widget) -> None:
        self.owners[job_id] = owner

    def follow(self, kind: str, follower: Widget) -> None:
        followers = self.followers.setdefault(kind, [])
        if follower not in followers:
            followers.append(follower)

    def route(self, event: Event) -> None:
        if isinstance(event, Started):
            self.kinds[event.job] = event.kind
        owner = self.owners.get(event.job)
        targets = [owner] if owner is not None else []
        targets += [w for w in self.followers.get(self.kinds.get(event.job, ""), []) if w is not owner]
        for widget in targets:
            if widget.is_attached:
                widget.post_message(EngineEvent(event))
        if is_terminal(event):
            self.owners.pop(event.job, None)
            self.kinds.pop(event.job, None)


class EngineBridge:
    def __init__(self, app: App, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self.posted = 0
        self.dropped = 0
        self._closed = threading.Event()
        self._remove = engine.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        if self._closed.is_set():
            self.dropped += 1
            return
        try:
            ok = self.app.post_message(EngineEvent(event))
        except RuntimeError:  # the app's event loop is closed: it has exited
            ok = False
        if ok:
            self.posted += 1
        else:
            self.dropped += 1

    def close(self) -> None:
        self._closed.set()
        self._remove()

"""Engine events -> Textual messages. The engine calls listeners on its own thread; we hop to the app's."""

from __future__ import annotations

from temper.core.engine import Engine, Event
from textual.app import App
from textual.message import Message


class EngineEvent(Message, bubble=False):
    """One engine event, delivered on the UI thread to the app, which hands a copy to each tab's view."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EngineBridge:
    def __init__(self, app: App, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self._remove = engine.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        try:
            self.app.call_from_thread(self.app.post_message, EngineEvent(event))
        except RuntimeError:  # app not running (shutting down)
            pass

    def close(self) -> None:
        self._remove()

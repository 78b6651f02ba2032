"""Widgets and screens of temper reach the app as a `TemperApp`, typed, never duck-typed.

A view written as `class LibraryView(TemperNode, Vertical)` sees `self.app` as the real TemperApp, so a
type checker (and a reader) knows `self.app.profile`, `self.app.quant_client`, `self.app.own_job(...)`
exist. At run time the property checks it: a view mounted in some other App fails at once with a clear
error instead of quietly skipping what it cannot find.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from textual.widget import Widget

    from .app import TemperApp


class TemperNode:
    """Mixin for widgets and screens of the temper app (put it before the Textual base class)."""

    @property
    def app(self) -> TemperApp:
        from .app import TemperApp

        app = super().app  # type: ignore[misc]  # Textual's MessagePump.app (the active app)
        if not isinstance(app, TemperApp):
            raise TypeError(f"{type(self).__name__} runs inside temper's TemperApp, not {type(app).__name__}")
        return cast("TemperApp", app)

    def default_focus(self) -> Widget | None:
        """The widget a tab's view gives the focus when its tab is shown; None: the app picks (tab_switching.py)."""
        return None

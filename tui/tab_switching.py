"""Switching tabs: by id, next/previous, and where the keyboard focus lands in the tab just shown.

`TabSwitching` is a base of `TemperApp` (tui/app.py), whose `tabs` lists (tab id, label, view class).
"""

from __future__ import annotations

from textual.widgets import Input, TabbedContent, TextArea

from .typed_app import TemperNode


class TabSwitching:
    """A base of TemperApp (before textual's App): the tab actions its key bindings name."""

    tabs: list[tuple[str, str, type]]

    @property
    def tab_ids(self) -> list[str]:
        return [tab for tab, _, _ in self.tabs]

    @property
    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def action_show_tab(self, tab: str) -> None:
        # Blur first: a focused widget left inside the hidden pane would pull its tab back to the front.
        self.screen.set_focus(None)
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.active = tab
        self.call_after_refresh(self._focus_tab, tab)

    def _focus_tab(self, tab: str) -> None:
        """Put the keyboard focus inside the tab just shown (or on the tab strip if it has nothing).

        A view may name its widget with `default_focus()`; otherwise the first focusable widget that is
        not a text field takes it, so that `[` / `]` and single-letter keys keep working after a switch
        (`/` or a click reaches the text fields)."""
        pane = self.query_one("#tabs", TabbedContent).get_pane(tab)
        view = next(iter(pane.query(f"#{tab}-view")), None)
        chosen = view.default_focus() if isinstance(view, TemperNode) else None
        if chosen is None:
            focusable = [w for w in pane.query("*") if w.focusable]
            plain = [w for w in focusable if not isinstance(w, (Input, TextArea))]
            chosen = (plain or focusable or [None])[0]
        if chosen is not None:
            chosen.focus()
        else:
            self.query_one("#tabs", TabbedContent).query_one("Tabs").focus()

    def _step_tab(self, step: int) -> None:
        ids = self.tab_ids
        self.action_show_tab(ids[(ids.index(self.active_tab) + step) % len(ids)])

    def action_next_tab(self) -> None:
        self._step_tab(1)

    def action_prev_tab(self) -> None:
        self._step_tab(-1)

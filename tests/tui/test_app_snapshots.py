"""The app in each shipped theme at 100x30 (SVG snapshots). Update with: pytest --snapshot-update.

The tabs hold a fixed demo view (not the real tab views, which their own tests snapshot), so these
pictures change only when the shell or a theme changes.
"""

from __future__ import annotations

import pytest
from temper.core import settings as store
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Static

THEMES = ["temper-dark", "temper-light", "temper-high-contrast", "temper-ansi"]


class DemoView(Vertical):
    DEFAULT_CSS = """
    DemoView { padding: 1 2; }
    DemoView Horizontal { height: auto; margin-top: 1; }
    DemoView Button { margin-right: 2; }
    DemoView DataTable { height: 6; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("[b]Models[/b]  [$text-muted]3 found[/]  [$success]ok[/]  [$warning]warn[/]  [$error]error[/]")
        yield Input("gemma-4", placeholder="filter")
        with Horizontal():
            yield Button("Open in Chat", variant="primary")
            yield Button("Quantize")
            yield Button("Delete", variant="error")
        yield DataTable()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "arch", "params", "bpw")
        table.add_row("tiny-llama", "llama", "0.3M", "16.00")
        table.add_row("gemma-4-e2b-oq4", "gemma4_text", "5.1B", "4.52")


def _app(engine, theme: str):
    from temper.tui.app import TemperApp

    settings = store.Settings()
    settings.set("theme", theme)
    tabs = [("library", "Library", DemoView), ("quantize", "Quantize", DemoView), ("chat", "Chat", DemoView)]
    return TemperApp(engine=engine, settings=settings, user_host="user@host", environ={}, tabs=tabs)


@pytest.mark.parametrize("theme", THEMES)
def test_app_in_each_theme(snap_compare, engine, theme: str) -> None:
    app = _app(engine, theme)
    app.animation_level = "none"

    async def before(pilot) -> None:
        await pilot.pause()
        app.query_one(DataTable).focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=before)


def test_settings_screen_at_80x24(snap_compare, engine) -> None:
    """Everything on the settings screen fits a small SSH terminal."""
    app = _app(engine, "temper-dark")
    app.animation_level = "none"

    async def before(pilot) -> None:
        # On a loaded machine the first pause can come before the tabs have mounted: settle first.
        for _ in range(5):
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(app, terminal_size=(80, 24), press=["comma"], run_before=before)

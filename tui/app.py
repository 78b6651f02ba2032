"""The app shell: header, tabs, footer. Each tab's content lives in tui/views/."""

from __future__ import annotations

import argparse
import getpass
import socket

from temper.core.engine import Engine, get_engine
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, TabbedContent, TabPane

from .bridge import EngineBridge
from .views.chat import ChatView
from .views.layers import LayersView
from .views.library import LibraryView
from .views.performance import PerformanceView
from .views.quantize import QuantizeView

# (tab id, label, view class): each view lives in tui/views/<id>.py.
TABS = [
    ("library", "Library", LibraryView),
    ("quantize", "Quantize", QuantizeView),
    ("layers", "Layers", LayersView),
    ("chat", "Chat", ChatView),
    ("performance", "Performance", PerformanceView),
]


class TemperApp(App[None]):
    TITLE = "temper"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        *[
            Binding(f"f{i}", f"show_tab('{tab}')", label, id=f"app.tab.{tab}")
            for i, (tab, label, _) in enumerate(TABS, start=1)
        ],
    ]

    def __init__(self, engine: Engine | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.engine = engine or get_engine()
        self.bridge: EngineBridge | None = None
        self.sub_title = f"{getpass.getuser()}@{socket.gethostname()}"

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            for tab, label, view in TABS:
                with TabPane(label, id=tab):
                    yield view(id=f"{tab}-view")
        yield Footer()

    def on_mount(self) -> None:
        self.bridge = EngineBridge(self, self.engine)

    def on_unmount(self) -> None:
        if self.bridge is not None:
            self.bridge.close()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab


def run(args: argparse.Namespace | None = None) -> int:
    TemperApp().run()
    return 0

"""The app shell: header, tabs, footer. Each tab's content lives in tui/views/."""

from __future__ import annotations

import argparse
import getpass
import socket

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, TabbedContent, TabPane

from temper.core.engine import Engine, get_engine

from .bridge import EngineBridge
from .views.placeholder import Placeholder

TABS = [
    ("library", "Library", "Models on disk and on the Hub."),
    ("quantize", "Quantize", "The quantization wizard: recipe or budget, calibration, run, verify."),
    ("layers", "Layers", "Live per-layer sensitivity and bit allocation."),
    ("chat", "Chat", "Streaming chat with drafter, reasoning effort and saved conversations."),
    ("performance", "Performance", "TTFT, prefill/decode tok/s, memory and the bandwidth roofline."),
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
            for tab, label, blurb in TABS:
                with TabPane(label, id=tab):
                    yield Placeholder(blurb)
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

"""The app shell: header, tabs, footer, key bindings, themes, settings and the active profile/model.

Each tab's content lives in tui/views/<tab>.py; screens (help, settings, profiles) in tui/screens/.
Switching tabs (and where the focus lands) is in tui/tab_switching.py.
The app routes messages (tui/messages.py) and engine events (tui/bridge.py): each event goes to the
widget that owns its job (`own_job`) and to the widgets following that kind of job (`follow_jobs`), never
to everyone. Views reach the app typed (tui/typed_app.py) and its services through typed attributes:
`quant_client` (the QuantClient protocol), `chat_client`, `chat_store`, `library` (one cached scan).
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from temper.core import settings as settings_store
from temper.core.chat.session import ChatClient, EngineChatClient
from temper.core.chat.store import ChatStore
from temper.core.engine import Engine, get_engine
from temper.core.errors import ProfileError
from temper.core.library.service import LibraryService
from temper.core.profiles import Profile, load_or_default
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, TabbedContent, TabPane

from .bridge import EngineBridge, EngineEvent, JobRouter
from .engine_quant_client import EngineQuantClient
from .messages import OpenModel
from .palette import shell_commands
from .quant_client import QuantClient
from .tab_switching import TabSwitching
from .themes import DEFAULT_THEME, register_themes
from .views.chat import ChatView
from .views.layers import LayersView
from .views.library import LibraryView
from .views.performance import PerformanceView
from .views.quantize import QuantizeView

# (tab id, label, view class): each view lives in tui/views/<id>.py and is mounted with id "<tab>-view".
TABS = [
    ("library", "Library", LibraryView),
    ("quantize", "Quantize", QuantizeView),
    ("layers", "Layers", LayersView),
    ("chat", "Chat", ChatView),
    ("performance", "Performance", PerformanceView),
]


def default_user_host() -> str:
    """`user@host` for the header; TEMPER_USER_HOST overrides it (snapshot tests, screenshots)."""
    if value := os.environ.get("TEMPER_USER_HOST"):
        return value
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: still start
        user = "user"
    return f"{user}@{socket.gethostname().split('.')[0]}"


class TemperApp(TabSwitching, App[None]):
    TITLE = "temper"
    CSS = """
    TabbedContent { height: 1fr; }
    TabPane { padding: 0; }
    """
    # Every binding has an id: users remap keys in settings.toml [keymap], e.g. "app.quit" = "ctrl+x".
    # Keys that work while typing in a text box (priority): F1-F5 and ctrl+pageup/pagedown switch tabs,
    # F10 opens Help. `[` `]` `?` `,` work only outside text boxes (there they are typed), so the footer
    # shows the keys that always work. alt+N does not arrive through tmux: not advertised.
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("ctrl+p", "command_palette", "Palette", id="app.palette", priority=True, show=False),
        Binding("f10", "help", "Help", id="app.help", priority=True),
        Binding("question_mark", "help", "Help", id="app.help.short", show=False),
        # in Help, the palette and each tab's hints; off the footer, so a tab's own keys, Quit and Help fit
        # in 80 columns (the footer cannot wrap)
        Binding("comma", "settings", "Settings", id="app.settings", show=False),
        Binding("ctrl+o", "profiles", "Profiles", id="app.profiles", show=False),
        Binding("ctrl+t", "change_theme", "Theme", id="app.theme", show=False),
        Binding("ctrl+pageup", "prev_tab", "Prev tab", id="app.tab.prev", priority=True, show=False),
        Binding("ctrl+pagedown", "next_tab", "Next tab", id="app.tab.next", priority=True, show=False),
        Binding("left_square_bracket", "prev_tab", "Prev tab", id="app.tab.prev.short", show=False),
        Binding("right_square_bracket", "next_tab", "Next tab", id="app.tab.next.short", show=False),
        *[
            Binding(f"f{i},alt+{i}", f"show_tab('{tab}')", label, id=f"app.tab.{tab}", show=False,
                    priority=True)
            for i, (tab, label, _) in enumerate(TABS, start=1)
        ],
    ]

    model: reactive[str | None] = reactive(None)
    """The active model (a folder path), set by OpenModel messages or --model."""
    profile: reactive[Profile] = reactive(Profile.default, always_update=True)
    """The active profile; views watch it."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        profile: str | Profile | None = None,
        model: str | None = None,
        settings: settings_store.Settings | None = None,
        user_host: str | None = None,
        environ: Mapping[str, str] | None = None,
        tabs: list[tuple[str, str, type]] | None = None,
        library: LibraryService | None = None,
        quant_client: QuantClient | None = None,
        chat_client: ChatClient | None = None,
        chat_store: ChatStore | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._engine = engine
        self.library = library if library is not None else LibraryService()
        self._quant_client = quant_client
        self._chat_client = chat_client
        self._chat_store = chat_store
        self.jobs = JobRouter()                          # engine events -> the widgets they belong to
        self.bridge: EngineBridge | None = None
        self.tabs = tabs if tabs is not None else TABS
        self.user_host = user_host or default_user_host()
        self._notes: list[tuple[str, str]] = []  # (message, severity) shown once mounted
        self._persist_theme = False
        if settings is None:
            settings, error = settings_store.load()
            if error:
                self._notes.append((error, "error"))
        self.settings = settings
        self.theme_names, theme_errors = register_themes(self)
        self._notes.extend((f"theme skipped: {e}", "warning") for e in theme_errors)
        wanted = settings.theme
        if wanted not in self.available_themes:
            fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
            self._notes.append((f"unknown theme {wanted!r}: using {fallback}", "warning"))
            wanted = fallback
        self.theme = wanted
        self._environ = dict(environ if environ is not None else os.environ)
        self.animation_level = settings.animation_level(self._environ)
        self.set_reactive(TemperApp.profile, self._load_profile(profile or settings.default_profile))
        self.set_reactive(TemperApp.model, model)
        self._update_subtitle()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = get_engine()
        return self._engine

    # -- services the views use (typed; tests pass fakes to the constructor or set them before mounting) --
    @property
    def quant_client(self) -> QuantClient:
        """The Quantize and Layers tabs' one door into the quantization core."""
        if self._quant_client is None:
            self._quant_client = EngineQuantClient(self.engine, self.library)
        return self._quant_client

    @quant_client.setter
    def quant_client(self, client: QuantClient) -> None:
        self._quant_client = client

    @property
    def chat_client(self) -> ChatClient:
        if self._chat_client is None:
            self._chat_client = EngineChatClient(self.engine)
        return self._chat_client

    @chat_client.setter
    def chat_client(self, client: ChatClient) -> None:
        self._chat_client = client

    @property
    def chat_store(self) -> ChatStore:
        if self._chat_store is None:
            self._chat_store = ChatStore()
        return self._chat_store

    # -- layout -----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(id="tabs"):
            for tab, label, view in self.tabs:
                with TabPane(label, id=tab):
                    yield view(id=f"{tab}-view")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.bridge = EngineBridge(self, self.engine)
        self._apply_keymap(self.settings.keymap)
        for message, severity in self._notes:
            self.notify(message, severity=severity, timeout=10)
        self._notes.clear()
        self._persist_theme = True

    def on_unmount(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
        self._stop_jobs()

    async def action_quit(self) -> None:
        """Quit; while a long job runs (not a chat answer), ask first: ctrl+q twice, or y, quits."""
        from .screens.confirm_quit import ConfirmQuit

        job = getattr(self._engine, "current", None) if self._engine is not None else None
        if job is None or job.kind == "chat" or isinstance(self.screen, ConfirmQuit):
            self.exit()
            return
        self.push_screen(ConfirmQuit(job.kind), lambda quit_now: self.exit() if quit_now else None)

    def _stop_jobs(self, wait: float = 3.0) -> None:
        """Quitting cancels running jobs and gives them a moment to stop cleanly (jobs check for cancel
        once per step; atomic writes then remove their temporary files)."""
        engine = self._engine
        if engine is None or getattr(engine, "current", None) is None:
            return
        engine.cancel_all(resumable=True)        # a closed app is not a user's cancel: offer resume next time
        deadline = time.monotonic() + wait
        while getattr(engine, "current", None) is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- header -----------------------------------------------------------------------------------------
    def _update_subtitle(self) -> None:
        parts = [self.user_host]
        if self.model:
            parts.append(Path(self.model).name or self.model)
        if self.profile.source != "default":
            parts.append(f"profile {self.profile.name}")
        self.sub_title = " · ".join(parts)

    def watch_model(self) -> None:
        self._update_subtitle()

    def watch_profile(self) -> None:
        self._update_subtitle()

    # -- profiles, settings, keymap, theme --------------------------------------------------------------
    def _load_profile(self, profile: str | Profile | None) -> Profile:
        if isinstance(profile, Profile):
            return profile
        loaded, error = load_or_default(profile)
        if error:
            self._notes.append((error, "error"))
        return loaded

    def apply_profile(self, name: str) -> bool:
        """Make the named profile active. A broken profile is reported and the current one kept."""
        from temper.core.profiles import load

        try:
            self.profile = load(name)
        except ProfileError as exc:
            self.notify(str(exc), title="Profile not applied", severity="error", timeout=10)
            return False
        self.notify(f"profile {self.profile.name} is active", timeout=3)
        return True

    def binding_ids(self) -> set[str]:
        """Every binding id a keymap may name: the app's, the main screen's widgets' and our screens'."""
        from .screens.help import binding_rows

        return {row[2] for row in binding_rows(self) if row[2] != "-"}

    def _apply_keymap(self, keymap: Mapping[str, str]) -> None:
        """Apply the user's [keymap]. Ids not found are reported but still applied: a view may bind
        them on a screen of its own that is not open yet."""
        unknown = sorted(set(keymap) - self.binding_ids())
        if unknown:
            self.notify(
                f"keymap: no binding with id {', '.join(unknown)} on the main screen (? lists them)",
                severity="warning",
                timeout=10,
            )
        for clash in self._keymap_clashes(keymap):
            self.notify(clash, severity="warning", timeout=10)
        self.set_keymap(dict(keymap))

    def _keymap_clashes(self, keymap: Mapping[str, str]) -> list[str]:
        from .keymap_check import keymap_clashes

        return keymap_clashes(self, keymap)

    def apply_settings(self, settings: settings_store.Settings) -> None:
        self.settings = settings
        self._persist_theme = False
        if settings.theme in self.available_themes:
            self.theme = settings.theme
        self._persist_theme = True
        self.animation_level = settings.animation_level(self._environ)
        self._apply_keymap(settings.keymap)

    def watch_theme(self, theme: str) -> None:
        """The theme chosen in the app persists in settings.toml (unless that file is broken)."""
        if not self._persist_theme or theme == self.settings.theme:
            return
        self.settings.set("theme", theme)
        try:
            settings_store.save(self.settings)
        except ProfileError as exc:
            self.notify(f"theme not saved: {exc}", severity="warning", timeout=8)

    # -- routing ----------------------------------------------------------------------------------------
    def on_open_model(self, message: OpenModel) -> None:
        self.open_model(message.path, message.target)

    def open_model(self, path: str, target: str) -> None:
        self.model = path
        if target in {tab for tab, _, _ in self.tabs}:
            self.action_show_tab(target)
        else:
            self.notify(f"no tab named {target!r}", severity="warning")

    def own_job(self, job_id: int, owner: Widget) -> None:
        """`owner` started job `job_id`: its events go to it. Call right after submitting, on the UI thread."""
        self.jobs.own(job_id, owner)

    def follow_jobs(self, kind: str, follower: Widget) -> None:
        """`follower` sees the events of every job of `kind`, whoever started it."""
        self.jobs.follow(kind, follower)

    def on_engine_event(self, message: EngineEvent) -> None:
        self.jobs.route(message.event)

    # -- actions (tab switching: tui/tab_switching.py) ---------------------------------------------
    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_settings(self) -> None:
        from .screens.settings import SettingsScreen

        if not isinstance(self.screen, SettingsScreen):
            self.push_screen(SettingsScreen())

    def action_profiles(self) -> None:
        from .screens.profiles import ProfileScreen

        if not isinstance(self.screen, ProfileScreen):
            self.push_screen(ProfileScreen())

    def action_save_profile(self) -> None:
        from .screens.profiles import SaveProfileScreen

        self.push_screen(SaveProfileScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from shell_commands(self)
        yield from super().get_system_commands(screen)


def run(args: argparse.Namespace | None = None) -> int:
    profile = getattr(args, "profile", None)
    model = getattr(args, "model", None)
    TemperApp(profile=profile, model=model).run()
    return 0

"""The settings screen: models folders, output folder, default profile, theme, animations, refresh rate.

Values are checked by temper.core.settings before anything is saved; a bad value keeps the screen open
with a message. Saving writes settings.toml atomically, keeping the user's comments.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit
from temper.core import settings as store
from temper.core.errors import ProfileError
from temper.core.profiles import list_profiles
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from ..keymap_check import keymap_clashes
from ..typed_app import TemperNode


class SettingsScreen(TemperNode, ModalScreen[bool]):
    DEFAULT_CSS = """
    SettingsScreen { align: center middle; }
    SettingsScreen > Vertical {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    SettingsScreen .row { height: auto; margin-top: 1; }
    SettingsScreen .row > Label { width: 18; padding-right: 1; text-align: right; color: $text-muted; }
    SettingsScreen .row > Input, SettingsScreen .row > Select, SettingsScreen .row > TextArea { width: 1fr; }
    SettingsScreen #models_folders { height: 3; }
    SettingsScreen .row Input, SettingsScreen .row TextArea, SettingsScreen .row SelectCurrent {
        background: $panel;
    }
    SettingsScreen .row Input:focus, SettingsScreen .row TextArea:focus,
    SettingsScreen .row Select:focus SelectCurrent { background: $primary 25%; }
    SettingsScreen #settings-note { color: $text-muted; height: auto; margin-top: 1; }
    SettingsScreen #settings-keymap { color: $warning; height: auto; }
    SettingsScreen #settings-keymap.hidden { display: none; }
    SettingsScreen #settings-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    SettingsScreen Button { margin-left: 1; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="settings.cancel"),
        Binding("ctrl+s", "save", "Save", id="settings.save"),
    ]

    def compose(self) -> ComposeResult:
        s = self.app.settings
        themes = list(self.app.theme_names) + sorted(set(self.app.available_themes) - set(self.app.theme_names))
        profiles = [(ref.name, ref.name) for ref in list_profiles()]
        default_profile = s.default_profile if s.default_profile in dict(profiles) else Select.NULL
        with Vertical():
            yield Static("[b]Settings[/b] · ctrl+s saves · Esc cancels", id="settings-title")
            with Horizontal(classes="row"):
                yield Label("Models folders")
                yield TextArea("\n".join(s.models_folders), id="models_folders", compact=True)
            with Horizontal(classes="row"):
                yield Label("Output folder")
                yield Input(s.output_folder, placeholder="temper's own data folder", id="output_folder", compact=True)
            with Horizontal(classes="row"):
                yield Label("Default profile")
                yield Select(profiles, value=default_profile, prompt="(none)", id="default_profile", compact=True)
            with Horizontal(classes="row"):
                yield Label("Theme")
                yield Select([(t, t) for t in themes], value=self.app.theme, allow_blank=False, id="theme", compact=True)
            with Horizontal(classes="row"):
                yield Label("Animations")
                yield Select(
                    [("auto (off over SSH)", "auto"), ("none", "none"), ("basic", "basic"), ("full", "full")],
                    value=s.animations, allow_blank=False, id="animations", compact=True,
                )
            with Horizontal(classes="row"):
                yield Label("Refresh rate /s")
                yield Input(f"{s.refresh_rate:g}", type="number", id="refresh_rate", compact=True)
            yield Static("Models folders: one per line. The keymap is edited in settings.toml.", id="settings-note")
            clashes = keymap_clashes(self.app, self.app.settings.keymap)
            yield Static("\n".join(clashes), id="settings-keymap", markup=False, classes="" if clashes else "hidden")
            with Horizontal(id="settings-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#models_folders").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def values(self) -> dict:
        """What the form holds, as settings values (raises ProfileError for a bad number)."""
        folders = [line.strip() for line in self.query_one("#models_folders", TextArea).text.splitlines()]
        rate_text = self.query_one("#refresh_rate", Input).value.strip()
        try:
            rate = float(rate_text)
        except ValueError:
            raise ProfileError(f"refresh_rate: expected a number, got {rate_text!r}") from None
        known = set(self.app.settings.models_folders)      # one already listed may be an unplugged drive
        missing = [f for f in folders if f and f not in known and not Path(f).expanduser().is_dir()]
        if missing:
            raise ProfileError(f"models_folders: {missing[0]} is not a folder (create it first, or remove the line)")
        profile = self.query_one("#default_profile", Select).value
        return {
            "models_folders": [f for f in folders if f],
            "output_folder": self.query_one("#output_folder", Input).value.strip(),
            "default_profile": "" if profile is Select.NULL else str(profile),
            "theme": str(self.query_one("#theme", Select).value),
            "animations": str(self.query_one("#animations", Select).value),
            "refresh_rate": rate,
        }

    def action_save(self) -> None:
        current = self.app.settings
        trial = store.Settings(dict(current.values), tomlkit.parse(current.doc.as_string()), current.path, current.broken)
        try:
            for key, value in self.values().items():
                if value != getattr(current, key):
                    trial.set(key, value)
        except ProfileError as exc:
            self.notify(str(exc), title="Not saved", severity="error")
            return
        try:
            path = store.save(trial)
        except ProfileError as exc:
            self.notify(str(exc), title="Applied, not saved", severity="warning", timeout=10)
        else:
            self.notify(f"saved {path}", timeout=3)
        self.app.apply_settings(trial)
        self.dismiss(True)

"""The shell's commands in the command palette (ctrl+p): tabs, themes, profiles, settings, help."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from temper.core.profiles import list_profiles
from textual.app import SystemCommand

if TYPE_CHECKING:
    from .app import TemperApp


def shell_commands(app: TemperApp) -> Iterator[SystemCommand]:
    for tab, label, _ in app.tabs:
        yield SystemCommand(f"Go to {label}", f"Show the {label} tab", partial(app.action_show_tab, tab))
    yield SystemCommand("Help", "Every key binding with its id (remap them in settings.toml)", app.action_help)
    yield SystemCommand("Settings", "Models folders, output folder, default profile, theme...", app.action_settings)
    yield SystemCommand("Profiles", "Pick, compare and save profiles", app.action_profiles)
    yield SystemCommand("Save profile as...", "Save the active profile under a new name", app.action_save_profile)
    for ref in list_profiles():
        yield SystemCommand(
            f"Profile: {ref.name}", f"Use the {ref.source} profile {ref.name}", partial(app.apply_profile, ref.name)
        )
    for name in app.theme_names:
        yield SystemCommand(f"Theme: {name}", "Switch to this theme (remembered)", partial(setattr, app, "theme", name))

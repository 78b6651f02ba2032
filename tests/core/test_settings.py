"""settings.toml: strict validation, comments kept, broken files never overwritten, SSH animation default."""

from __future__ import annotations

import pytest
from temper.core import settings as store
from temper.core.errors import ProfileError

TEXT = """\
# my settings
theme = "temper-light"  # easier on the eyes
models_folders = ["~/models", "/Volumes/ext/models"]
refresh_rate = 2

[keymap]
"app.quit" = "ctrl+x"
"""


def test_defaults_when_missing() -> None:
    settings, error = store.load()
    assert error is None
    assert settings.theme == "temper-dark" and settings.models_folders == [] and settings.refresh_rate == 4.0


def test_load_and_save_keep_comments() -> None:
    path = store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(TEXT)
    settings, error = store.load()
    assert error is None
    assert settings.theme == "temper-light" and settings.refresh_rate == 2.0
    assert settings.keymap == {"app.quit": "ctrl+x"}
    store.save(settings)
    assert path.read_text() == TEXT
    settings.set("theme", "temper-ansi")
    settings.set("keymap", {"app.quit": "ctrl+x", "app.help": "f12"})
    store.save(settings)
    text = path.read_text()
    assert 'theme = "temper-ansi"  # easier on the eyes' in text and text.startswith("# my settings\n")
    again, _ = store.load()
    assert again.keymap == {"app.quit": "ctrl+x", "app.help": "f12"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("them = 'x'\n", ":1: them: unknown key"),
        ("refresh_rate = 'fast'\n", ":1: refresh_rate: expected a number, got a string"),
        ("refresh_rate = 1000\n", ":1: refresh_rate: must be at most 60"),
        ("animations = 'some'\n", ":1: animations: must be one of auto, none, basic, full"),
        ("models_folders = '/x'\n", ":1: models_folders: expected an array"),
        ("\n[keymap]\n'app.quit' = 3\n", ":2: keymap: app.quit: expected a string, got an integer"),
        ("theme = \n", ":1: syntax:"),
    ],
)
def test_broken_settings_give_defaults_and_stay_as_they_are(text: str, expected: str) -> None:
    path = store.settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(text)
    settings, error = store.load()
    assert error is not None and f"{path}{expected}" in error, error
    assert settings.broken and settings.theme == "temper-dark"
    settings.set("theme", "temper-light")
    with pytest.raises(ProfileError, match="will not overwrite it"):
        store.save(settings)
    assert path.read_text() == text


def test_set_rejects_bad_values() -> None:
    settings, _ = store.load()
    with pytest.raises(ProfileError, match="refresh_rate: must be at least 0.5"):
        settings.set("refresh_rate", 0)
    with pytest.raises(ProfileError, match="unknown setting"):
        settings.set("colour", "red")


def test_animation_level_is_none_over_ssh_by_default() -> None:
    settings, _ = store.load()
    assert settings.animation_level({"SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22"}) == "none"
    assert settings.animation_level({}) == "full"
    settings.set("animations", "basic")
    assert settings.animation_level({"SSH_CONNECTION": "x"}) == "basic"

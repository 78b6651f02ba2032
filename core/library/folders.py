"""The folders the user added to the Library: `models_folders` in settings.toml (one list, shared
with the Settings screen; comments in the file survive, and a broken file is never overwritten)."""

from __future__ import annotations

from pathlib import Path

from .. import settings as settings_store
from ..errors import ProfileError, TemperError


def config_file() -> Path:
    return settings_store.settings_path()


def _load() -> settings_store.Settings:
    settings, error = settings_store.load()
    if error:
        raise ProfileError(error)
    return settings


def folders() -> list[Path]:
    """The configured folders, as written (expanded), in order. A broken settings file gives none."""
    settings, _ = settings_store.load()
    return [Path(f).expanduser() for f in settings.models_folders]


def add_folder(folder: str | Path) -> Path:
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise TemperError(f"{folder}: no such folder")
    settings = _load()
    current = settings.models_folders
    if str(path) not in [str(Path(f).expanduser().resolve()) for f in current]:
        settings.set("models_folders", [*current, str(path)])
        settings_store.save(settings)
    return path


def remove_folder(folder: str | Path) -> bool:
    path = Path(folder).expanduser().resolve()
    settings = _load()
    current = settings.models_folders
    keep = [f for f in current if Path(f).expanduser().resolve() != path]
    if len(keep) == len(current):
        return False
    settings.set("models_folders", keep)
    settings_store.save(settings)
    return True

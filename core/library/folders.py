"""The folders the user added to the Library, kept in config_dir()/library.toml (comments survive)."""

from __future__ import annotations

from pathlib import Path

import tomlkit

from .. import atomic
from ..errors import ProfileError, TemperError
from ..paths import config_dir

_HEADER = "temper Library: folders scanned for models (each a model folder or a folder of them)."


def config_file() -> Path:
    return config_dir() / "library.toml"


def _read() -> tomlkit.TOMLDocument:
    file = config_file()
    if not file.is_file():
        doc = tomlkit.document()
        doc.add(tomlkit.comment(_HEADER))
        doc["folders"] = tomlkit.array()
        return doc
    try:
        doc = tomlkit.parse(file.read_text())
    except Exception as exc:
        raise ProfileError(f"{file} is not valid TOML: {exc}") from exc
    folders = doc.get("folders", [])
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise ProfileError(f"{file}: 'folders' must be a list of paths")
    return doc


def folders() -> list[Path]:
    """The configured folders, as written (expanded), in order."""
    return [Path(f).expanduser() for f in _read().get("folders", [])]


def add_folder(folder: str | Path) -> Path:
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise TemperError(f"{folder}: no such folder")
    doc = _read()
    current = doc.setdefault("folders", tomlkit.array())
    if str(path) not in [str(Path(f).expanduser().resolve()) for f in current]:
        current.append(str(path))
        if len(current) > 1:
            current.multiline(True)
        atomic.write_text(config_file(), tomlkit.dumps(doc))
    return path


def remove_folder(folder: str | Path) -> bool:
    path = Path(folder).expanduser().resolve()
    doc = _read()
    current = doc.get("folders", [])
    keep = [f for f in current if Path(f).expanduser().resolve() != path]
    if len(keep) == len(current):
        return False
    doc["folders"] = tomlkit.array(keep)
    atomic.write_text(config_file(), tomlkit.dumps(doc))
    return True

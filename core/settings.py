"""The user's settings: config_dir()/settings.toml, validated strictly, saved with tomlkit (comments kept).

A broken settings file never stops the app and is never overwritten: `load()` returns the defaults and
the error to show, and `save()` refuses to replace a file that does not load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from . import atomic
from .errors import ProfileError
from .paths import config_dir
from .tomlcheck import Field, check_field, find_line, normalise, parse, raise_issues, read_text, validate

ANIMATIONS = ("auto", "none", "basic", "full")

SCHEMA = {
    "models_folders": Field("list[str]", [], "extra folders the Library scans for models"),
    "output_folder": Field("str", "", "where quantized and imported models go (empty = temper's own)"),
    "default_profile": Field("str", "", "profile applied at start (empty = none)"),
    "theme": Field("str", "temper-dark", "colour theme"),
    "animations": Field("str", "auto", "auto = none over SSH, full otherwise", choices=ANIMATIONS),
    "refresh_rate": Field("float", 4.0, "live view updates per second", min=0.5, max=60),
    "keymap": Field("table[str]", {}, 'key remaps: "binding.id" = "keys"'),
}


def settings_path() -> Path:
    return config_dir() / "settings.toml"


@dataclass
class Settings:
    values: dict[str, Any] = field(default_factory=dict)
    doc: tomlkit.TOMLDocument = field(default_factory=tomlkit.document)
    path: Path | None = None
    broken: bool = False  # the file on disk did not load: these are defaults, and saving is refused

    def __getattr__(self, name: str) -> Any:
        if name in SCHEMA:
            value = self.values.get(name, SCHEMA[name].default)
            return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
        raise AttributeError(name)

    def set(self, key: str, value: Any) -> None:
        spec = SCHEMA.get(key)
        if spec is None:
            raise ProfileError(f"{key}: unknown setting (known: {', '.join(SCHEMA)})")
        problem = check_field(spec, value)
        if problem:
            raise ProfileError(f"{key}: {problem}")
        value = normalise(spec, value)
        if key == "keymap":
            table = tomlkit.table()
            for k, v in value.items():
                table[k] = v
            self.doc[key] = table
        else:
            self.doc[key] = value
        self.values[key] = value

    def animation_level(self, environ: dict[str, str] | None = None) -> str:
        """Textual's animation level: "auto" means none over SSH (SSH_CONNECTION set), full otherwise."""
        environ = os.environ if environ is None else environ
        if self.animations != "auto":
            return self.animations
        return "none" if environ.get("SSH_CONNECTION") else "full"


def loads(text: str, file: str = "settings.toml") -> Settings:
    data = parse(text, file)
    values, issues = validate(data, SCHEMA)
    raise_issues([type(i)(i.path, i.message, find_line(text, i.path)) for i in issues], file)
    return Settings(values, tomlkit.parse(text))


def load(path: Path | None = None) -> tuple[Settings, str | None]:
    """(settings, error): never raises; a missing file is the defaults with no error."""
    path = path or settings_path()
    if not path.exists():
        return Settings(path=path), None
    try:
        settings = loads(read_text(path), str(path))
    except ProfileError as exc:
        return Settings(path=path, broken=True), f"{exc} (using default settings; the file is left as it is)"
    settings.path = path
    return settings, None


def save(settings: Settings) -> Path:
    path = settings.path or settings_path()
    if settings.broken or path.exists() and _does_not_load(path):
        raise ProfileError(f"{path} does not load: fix it by hand; temper will not overwrite it")
    atomic.write_text(path, settings.doc.as_string())
    settings.path = path
    return path


def _does_not_load(path: Path) -> bool:
    try:
        loads(read_text(path), str(path))
    except ProfileError:
        return True
    return False

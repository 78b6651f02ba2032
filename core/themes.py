"""Theme files (TOML) read and validated as plain data; the UI turns them into Textual themes.

Shipped themes are package data (`temper.themes`); the user's own live in config_dir()/themes and
override shipped ones of the same name. A file that does not validate is reported and skipped.

    name = "my-theme"
    dark = true              # optional, default true
    ansi = false             # true: colours are the terminal's own 16 (ansi_*), for any SSH terminal
    [colors]
    primary = "#0178D4"      # required; also secondary, accent, warning, error, success,
                             # foreground, background, surface, panel, boost
    [variables]              # optional Textual design variables, e.g. "border" = "ansi_blue"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError
from .paths import config_dir
from .tomlcheck import Field, Issue, find_line, parse, raise_issues, read_text, validate

COLOR_KEYS = ("primary", "secondary", "accent", "warning", "error", "success",
              "foreground", "background", "surface", "panel", "boost")
ANSI_NAMES = {"default"} | {
    f"{bright}{c}" for c in ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
    for bright in ("", "bright_")
}
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

SCHEMA = {
    "name": Field("str", None, "theme name (lowercase letters, digits, '-')"),
    "dark": Field("bool", True),
    "ansi": Field("bool", False),
    "luminosity_spread": Field("float", 0.15, min=0, max=1),
    "text_alpha": Field("float", 0.95, min=0, max=1),
    "colors": {key: Field("str") for key in COLOR_KEYS},
    "variables": Field("table[str]", {}),
}


def is_color(value: str) -> bool:
    if _HEX.match(value):
        return True
    return value.startswith("ansi_") and value[5:] in ANSI_NAMES


@dataclass(frozen=True)
class ThemeSpec:
    name: str
    values: dict[str, Any]
    path: Path
    source: str  # "shipped" or "user"

    @property
    def colors(self) -> dict[str, str]:
        return dict(self.values.get("colors", {}))


def loads(text: str, file: str) -> dict[str, Any]:
    data = parse(text, file)
    values, issues = validate(data, SCHEMA)
    if not issues:
        if "name" not in values:
            issues.append(Issue(("name",), "missing: every theme needs a name"))
        elif not _NAME.match(values["name"]):
            issues.append(Issue(("name",), f"{values['name']!r} is not a theme name (a-z, 0-9, '-')"))
        if "primary" not in values.get("colors", {}):
            issues.append(Issue(("colors", "primary"), "missing: every theme needs a primary colour"))
        for key, value in values.get("colors", {}).items():
            if not is_color(value):
                issues.append(Issue(("colors", key), f"{value!r} is not a colour (#rrggbb or ansi_<name>)"))
    raise_issues([Issue(i.path, i.message, find_line(text, i.path)) for i in issues], file)
    return values


def load_file(path: Path, source: str = "user") -> ThemeSpec:
    values = loads(read_text(path), str(path))
    return ThemeSpec(values["name"], values, Path(path), source)


def shipped_dir() -> Path:
    return Path(str(resources.files("temper.themes")))


def user_dir() -> Path:
    return config_dir() / "themes"


def load_all() -> tuple[list[ThemeSpec], list[str]]:
    """All valid themes (user ones override shipped ones by name) and one error line per bad file."""
    found: dict[str, ThemeSpec] = {}
    errors: list[str] = []
    for source, folder in (("shipped", shipped_dir()), ("user", user_dir())):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                spec = load_file(path, source)
            except ProfileError as exc:
                errors.append(str(exc))
            else:
                found[spec.name] = spec
    return list(found.values()), errors

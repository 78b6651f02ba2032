"""Theme files (validated in temper.core.themes) -> Textual `Theme` objects registered on the app."""

from __future__ import annotations

from temper.core.themes import COLOR_KEYS, ThemeSpec, load_all
from textual.app import App
from textual.color import Color
from textual.css.constants import VALID_STYLE_FLAGS
from textual.theme import Theme

DEFAULT_THEME = "temper-dark"


def to_theme(spec: ThemeSpec) -> Theme:
    """Build a Textual theme; raises ValueError if Textual cannot make a colour system from it."""
    colors = spec.colors
    for key, value in spec.values.get("variables", {}).items():
        # A bad variable would only fail later, when CSS using it is parsed: check each one now.
        if key.endswith("text-style"):
            bad = [word for word in value.split() if word not in VALID_STYLE_FLAGS]
            if bad or not value.split():
                raise ValueError(f"{spec.path}: variables.{key}: {value!r} is not a text style")
            continue
        try:
            Color.parse(value)
        except Exception:
            raise ValueError(f"{spec.path}: variables.{key}: {value!r} is not a colour") from None
    theme = Theme(
        name=spec.name,
        dark=spec.values.get("dark", True),
        ansi=spec.values.get("ansi", False),
        luminosity_spread=spec.values.get("luminosity_spread", 0.15),
        text_alpha=spec.values.get("text_alpha", 0.95),
        variables=dict(spec.values.get("variables", {})),
        **{key: colors.get(key) for key in COLOR_KEYS},
    )
    try:
        theme.to_color_system().generate()
    except Exception as exc:  # Textual's own colour parsing is the last word
        raise ValueError(f"{spec.path}: theme {spec.name!r} does not build: {exc}") from None
    return theme


def register_themes(app: App) -> tuple[list[str], list[str]]:
    """Register every valid theme file. Returns (names registered, error lines for bad files)."""
    specs, errors = load_all()
    names = []
    for spec in specs:
        try:
            app.register_theme(to_theme(spec))
        except ValueError as exc:
            errors.append(str(exc))
        else:
            names.append(spec.name)
    return names, errors

"""Theme files: the shipped four validate; bad files are reported with file:line and skipped."""

from __future__ import annotations

import pytest
from temper.core import themes
from temper.core.errors import ProfileError


def test_shipped_themes_load() -> None:
    specs, errors = themes.load_all()
    assert errors == []
    names = {spec.name for spec in specs}
    assert {"temper-dark", "temper-light", "temper-high-contrast", "temper-ansi"} <= names


def test_ansi_theme_uses_only_the_16_terminal_colours() -> None:
    spec = next(s for s in themes.load_all()[0] if s.name == "temper-ansi")
    assert spec.values["ansi"] is True
    used = list(spec.colors.values()) + [
        v for v in spec.values["variables"].values() if v not in ("none", "reverse", "bold")
    ]
    assert used and all(v.startswith("ansi_") and v[5:] in themes.ANSI_NAMES for v in used), used


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "x"\n[colors]\nprimary = "blue-ish"\n', ":3: colors.primary: 'blue-ish' is not a colour"),
        ('name = "x"\n[colors]\nsecondary = "#fff"\n', ":2: colors.primary: missing"),
        ('[colors]\nprimary = "#fff"\n', ":1: name: missing"),
        ('name = "Bad Name"\n[colors]\nprimary = "#fff"\n', ":1: name: 'Bad Name' is not a theme name"),
        ('name = "x"\ndark = "yes"\n[colors]\nprimary = "#fff"\n', ":2: dark: expected true or false"),
        ('name = "x"\n[colors]\nprimary = "#fff"\nglow = "#000"\n', ":4: colors.glow: unknown key"),
    ],
)
def test_bad_theme_files(tmp_path, text: str, expected: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        themes.load_file(path)
    assert f"{path}{expected}" in str(info.value)


def test_user_themes_override_and_bad_ones_are_reported() -> None:
    folder = themes.user_dir()
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text('name = "temper-dark"\n[colors]\nprimary = "#ff0000"\n')
    (folder / "broken.toml").write_text('name = "broken"\n[colors]\nprimary = 3\n')
    specs, errors = themes.load_all()
    dark = next(s for s in specs if s.name == "temper-dark")
    assert dark.source == "user" and dark.colors["primary"] == "#ff0000"
    assert len(errors) == 1 and "broken.toml:3: colors.primary: expected a string" in errors[0]

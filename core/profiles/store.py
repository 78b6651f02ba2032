"""Where profiles live: shipped examples (package data `temper.profiles`) and the user's own
(config_dir()/profiles). A user profile with the same name as a shipped one wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .. import atomic
from ..errors import ProfileError
from ..paths import config_dir
from .load import load_file
from .profile import Profile

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ProfileRef:
    name: str
    path: Path
    source: str  # "shipped" or "user"


def user_dir() -> Path:
    return config_dir() / "profiles"


def shipped_dir() -> Path:
    return Path(str(resources.files("temper.profiles")))


def list_profiles() -> list[ProfileRef]:
    found: dict[str, ProfileRef] = {}
    for source, folder in (("shipped", shipped_dir()), ("user", user_dir())):
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = ProfileRef(path.stem, path, source)
    return sorted(found.values(), key=lambda ref: ref.name)


def resolve(name_or_path: str | Path) -> ProfileRef:
    """A profile name (user first, then shipped) or a path to a TOML file."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".toml") or "/" in text or path.is_file():
        if not path.is_file():
            raise ProfileError(f"{path}: no such profile file")
        return ProfileRef(path.stem, path, "file")
    for ref in list_profiles():
        if ref.name == text:
            return ref
    names = ", ".join(ref.name for ref in list_profiles()) or "none"
    raise ProfileError(f"no profile named {text!r} (have: {names})")


def load(name_or_path: str | Path) -> Profile:
    ref = resolve(name_or_path)
    return load_file(ref.path, ref.name, ref.source)


def load_or_default(name_or_path: str | Path | None) -> tuple[Profile, str | None]:
    """Never raises: a missing or broken profile gives the defaults and the error to show."""
    if not name_or_path:
        return Profile.default(), None
    try:
        return load(name_or_path), None
    except ProfileError as exc:
        return Profile.default(), f"{exc} (using defaults)"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ProfileError(f"bad profile name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def save(profile: Profile, name: str | None = None, *, overwrite: bool = True) -> Path:
    """Write a profile to the user folder (atomically). Never replaces a file that does not load:
    a broken profile on disk is the user's work and stays as it is."""
    name = check_name(name or profile.name)
    path = user_dir() / f"{name}.toml"
    if path.exists():
        if not overwrite:
            raise ProfileError(f"{path}: a profile with that name exists")
        try:
            load_file(path, name)
        except ProfileError as exc:
            raise ProfileError(f"not saving over a profile that does not load: {exc}") from None
    atomic.write_text(path, profile.text())
    profile.name, profile.path, profile.source = name, path, "user"
    return path

"""Reading profiles: tomllib for values, tomlkit for the document; strict validation; migrations."""

from __future__ import annotations

from pathlib import Path

import tomlkit

from ..errors import ProfileError
from ..tomlcheck import Issue, find_line, parse, raise_issues, read_text, validate
from .migrate import migrate_data, migrate_doc, old_name, version_of
from .profile import Profile
from .schema import CURRENT_VERSION, SCHEMA


def problems(text: str, file: str) -> list[str]:
    """Every problem in a profile's text, one `file:line: key: message` line each (empty if valid)."""
    try:
        _, _, issues = _validated(text, file)
    except ProfileError as exc:  # syntax error or a newer version: nothing more can be checked
        return [str(exc)]
    return [issue.format(file) for issue in issues]


def _locate(issues: list[Issue], text: str, version: int | None) -> list[Issue]:
    located = []
    for issue in issues:
        line = None
        if version == 0 and len(issue.path) == 2:  # a migrated key: its line is under its old name
            line = find_line(text, (issue.path[0], old_name(*issue.path)), exact=True)
        located.append(Issue(issue.path, issue.message, line or find_line(text, issue.path)))
    return located


def _validated(text: str, file: str) -> tuple[dict, int | None, list[Issue]]:
    data = parse(text, file)
    version = version_of(data)
    if version is not None and version > CURRENT_VERSION:
        line = find_line(text, ("version",)) or 1
        raise ProfileError(
            f"{file}:{line}: version: {version} is newer than this temper understands ({CURRENT_VERSION}); "
            "upgrade temper"
        )
    values, issues = validate(migrate_data(data), SCHEMA)
    return values, version, _locate(issues, text, version)


def loads(text: str, name: str = "profile", file: str | None = None) -> Profile:
    """Parse and validate profile text. Raises ProfileError (`file:line: key: message`) on any problem."""
    file = file or name
    values, version, issues = _validated(text, file)
    raise_issues(issues, file)
    try:
        doc = tomlkit.parse(text)
    except Exception as exc:  # tomllib accepted it; tomlkit should too, but never crash on a disagreement
        raise ProfileError(f"{file}:1: syntax: {exc}") from None
    migrated_from = None
    if migrate_doc(doc):
        migrated_from = version
    values["version"] = CURRENT_VERSION
    return Profile(name, values, doc, None, "file", migrated_from)


def load_file(path: Path, name: str | None = None, source: str = "file") -> Profile:
    path = Path(path)
    profile = loads(read_text(path), name or path.stem, str(path))
    profile.path = path
    profile.source = source
    return profile

"""Strict validation of TOML config files against a small declarative schema, with `file:line` errors.

Profiles, settings and theme files all go through here. A schema is a dict: key -> `Field`, or
key -> dict (a table). Unknown keys and wrong types are errors; each error names the file, the line
(found by scanning the text for the key inside its table) and the dotted key.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# A field's type: "int", "float", "str", "bool", "list[int]", "list[float]", "list[str]", "table[str]"
# (a table of string values, any keys).
_ITEM = {"list[int]": "int", "list[float]": "float", "list[str]": "str"}


@dataclass(frozen=True)
class Field:
    type: str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None


Schema = Mapping[str, "Field | Schema"]


@dataclass(frozen=True)
class Issue:
    """One validation problem: where it is and what is wrong."""

    path: tuple[str, ...]
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        key = ".".join(self.path) or "(document)"
        line = self.line if self.line is not None else 1
        return f"{file}:{line}: {key}: {self.message}"


def kind_of(value: Any) -> str:
    """What a TOML/JSON value is, in words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (_dt.date, _dt.time)):
        return "a date/time"
    return type(value).__name__


_EXPECT = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _check_scalar(field_type: str, value: Any) -> str | None:
    if field_type == "bool":
        ok = isinstance(value, bool)
    elif field_type == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif field_type == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and value != value:  # NaN
            return "must be a number, got nan"
    else:
        ok = isinstance(value, str)
    return None if ok else f"expected {_EXPECT[field_type]}, got {kind_of(value)}"


def _check_bounds(field: Field, value: Any) -> str | None:
    if field.choices and value not in field.choices:
        return f"must be one of {', '.join(map(str, field.choices))}, got {value!r}"
    if field.min is not None and value < field.min:
        return f"must be at least {field.min:g}, got {value!r}"
    if field.max is not None and value > field.max:
        return f"must be at most {field.max:g}, got {value!r}"
    return None


def check_field(field: Field, value: Any) -> str | None:
    """None if `value` fits `field`, else what is wrong (one line)."""
    if field.type == "table[str]":
        if not isinstance(value, dict):
            return f"expected a table, got {kind_of(value)}"
        for key, item in value.items():
            if not isinstance(item, str):
                return f"{key}: expected a string, got {kind_of(item)}"
        return None
    if field.type in _ITEM:
        if not isinstance(value, list):
            return f"expected an array, got {kind_of(value)}"
        for index, item in enumerate(value):
            problem = _check_scalar(_ITEM[field.type], item) or _check_bounds(field, item)
            if problem:
                return f"item {index + 1}: {problem}"
        return None
    return _check_scalar(field.type, value) or _check_bounds(field, value)


def normalise(field: Field, value: Any) -> Any:
    """The stored form of a valid value (ints become floats for float fields)."""
    if field.type == "float":
        return float(value)
    if field.type == "list[float]":
        return [float(v) for v in value]
    if field.type == "table[str]":
        return dict(value)
    if field.type in _ITEM:
        return list(value)
    return value


def validate(data: Mapping[str, Any], schema: Schema, prefix: tuple[str, ...] = ()) -> tuple[dict, list[Issue]]:
    """Check `data` against `schema`: returns (clean values, issues). Clean values hold only valid keys."""
    clean: dict[str, Any] = {}
    issues: list[Issue] = []
    for key, value in data.items():
        path = (*prefix, key)
        spec = schema.get(key)
        if spec is None:
            known = ", ".join(k for k in schema) or "none"
            issues.append(Issue(path, f"unknown key (known here: {known})"))
        elif isinstance(spec, Field):
            problem = check_field(spec, value)
            if problem:
                issues.append(Issue(path, problem))
            else:
                clean[key] = normalise(spec, value)
        elif not isinstance(value, dict):
            issues.append(Issue(path, f"expected a table [{'.'.join(path)}], got {kind_of(value)}"))
        elif isinstance(spec, type):        # a settings model (core/strict.py): it validates the table
            sub, sub_issues = validate_model(value, spec, path)
            clean[key] = sub
            issues.extend(sub_issues)
        else:
            sub, sub_issues = validate(value, spec, path)
            clean[key] = sub
            issues.extend(sub_issues)
    return clean, issues


def validate_model(data: Mapping[str, Any], model: Any, prefix: tuple[str, ...] = ()) -> tuple[dict, list[Issue]]:
    """A table checked by a settings model: (the values it holds, normalised; issues)."""
    from .errors import TemperError

    try:
        checked = model.model_validate(dict(data))
    except TemperError as exc:
        issues, bad = [], set()
        for loc, text in getattr(exc, "problems", [((), str(exc))]):
            if text == "unknown key":
                text += f" (known here: {', '.join(model.model_fields)})"
            issues.append(Issue((*prefix, *loc[:1]), text))
            bad.update(loc[:1])
        return {k: v for k, v in data.items() if k not in bad and k in model.model_fields}, issues
    try:
        checked.check()
    except TemperError as exc:
        return checked.given(), [Issue(prefix, str(exc))]
    return checked.given(), []


# -- finding lines ---------------------------------------------------------------------------------------
_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*""")


def _parse_key(text: str) -> tuple[str, ...] | None:
    parts: list[str] = []
    pos = 0
    while True:
        match = _PART.match(text, pos)
        if not match:
            return None
        token = match.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
        pos = match.end()
        if pos == len(text):
            return tuple(parts)
        if text[pos] != ".":
            return None
        pos += 1


_HEADER = re.compile(r"^\s*\[\[?(.+?)\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"""^\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\s-])+?)\s*=""")


def find_line(text: str, path: tuple[str, ...], exact: bool = False) -> int | None:
    """The 1-based line that defines `path` (or, unless `exact`, its nearest enclosing key or table)."""
    best: tuple[int, int] | None = None  # (matched length, line)
    table: tuple[str, ...] = ()
    in_multiline = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header and "=" not in line.split("]")[0]:
            parsed = _parse_key(header.group(1))
            if parsed is not None:
                table = parsed
                full = table
            else:
                continue
        else:
            assign = _ASSIGN.match(line)
            if not assign:
                continue
            parsed = _parse_key(assign.group(1))
            if parsed is None:
                continue
            full = table + parsed
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_multiline = quote
        if full == path:
            return number
        if path[: len(full)] == full and (best is None or len(full) > best[0]):
            best = (len(full), number)
    return best[1] if best and not exact else None


def parse(text: str, file: str) -> dict[str, Any]:
    """tomllib.loads with a `file:line: syntax: ...` ProfileError instead of TOMLDecodeError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = match.group(1) if match else "1"
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message) or "invalid TOML"
        raise ProfileError(f"{file}:{line}: syntax: {message}") from None
    except (ValueError, RecursionError) as exc:  # pathological documents (deep nesting)
        raise ProfileError(f"{file}:1: syntax: {exc}") from None


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{path}:1: syntax: not UTF-8 text") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def raise_issues(issues: list[Issue], file: str) -> None:
    if not issues:
        return
    first = issues[0].format(file)
    more = f" (and {len(issues) - 1} more problem{'s' if len(issues) > 2 else ''})" if len(issues) > 1 else ""
    raise ProfileError(first + more)

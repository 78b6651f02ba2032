"""Command-line flags made from a settings model (core/strict.py): one flag per field, with the field's own
help, default and choices, so the CLI cannot drift from the profile, the app and the core.

`add_flags(parser, Model, fields)` adds them (default SUPPRESS: a flag left out is not set, and the model's
default applies); `given(args, Model)` reads back the fields the user set. Lists are comma-separated; a bool
field is a switch with a `--no-` form.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from typing import Any

from ..core.errors import TemperError


def _scalar(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(tp) is typing.Literal:
        choices = typing.get_args(tp)
        return type(choices[0]), choices
    return tp, ()


def _parse(kind: Any, choices: tuple[Any, ...], flag: str) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a number' if kind in (int, float) else 'text'}, "
                                             f"not {text!r}") from None
        if choices and value not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(map(str, choices))}, not {text!r}")
        return value
    return parse


def _list(kind: Any, flag: str) -> Any:
    item = _parse(kind, (), flag)          # the model checks each item (one line, naming the item)

    def parse(text: str) -> list[Any]:
        return [item(x.strip()) for x in text.split(",") if x.strip()]
    return parse


def flag_of(model: type, name: str) -> str:
    extra = model.model_fields[name].json_schema_extra or {}
    return str(extra.get("flag") or "--" + name.replace("_", "-"))


def add_flags(parser: Any, model: type, fields: Iterable[str], aliases: dict[str, list[str]] | None = None) -> None:
    """One flag per field (aliases: extra spellings of a field's flag, e.g. {"sensitivity_mode": ["--mode"]})."""
    for name in fields:
        f = model.model_fields[name]
        extra = f.json_schema_extra or {}
        flags = [flag_of(model, name), *(aliases or {}).get(name, [])] + ([extra["short"]] if "short" in extra else [])
        default = f.get_default(call_default_factory=True)
        tp = f.annotation
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        text = f"{f.description or name}" + (f" (default: {shown})" if shown not in (None, "", []) and
                                             tp is not bool else "")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": text}
        if tp is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
            continue
        if typing.get_origin(tp) is list:
            kind, choices = _scalar(typing.get_args(tp)[0])
            if kind is str and not choices and "nargs" in extra:
                parser.add_argument(*flags, nargs="+", metavar=extra.get("metavar"), **kw)
                continue
            parser.add_argument(*flags, type=_list(kind, flags[0]), metavar="A,B,...", **kw)
            continue
        kind, choices = _scalar(tp)
        parser.add_argument(*flags, type=_parse(kind, choices, flags[0]), choices=choices or None,
                            metavar=None if choices else name.upper(), **kw)


def given(args: argparse.Namespace, model: type, fields: Iterable[str]) -> dict[str, Any]:
    """The fields set on the command line."""
    return {name: getattr(args, name) for name in fields if hasattr(args, name)}


def build(model: type, values: dict[str, Any]) -> Any:
    """The model from values; its one-line error says which flag is wrong."""
    try:
        return model(**values)
    except TemperError as exc:
        for loc, _ in getattr(exc, "problems", []):
            if loc and loc[0] in model.model_fields:
                raise type(exc)(f"{flag_of(model, loc[0])}: {str(exc).removeprefix(loc[0] + ': ')}") from None
        raise

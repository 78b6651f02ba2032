"""Typed settings: the base of every settings model (quantize, sampling, chat, bench), and one-line messages.

A settings model is a pydantic model that is, at once, a profile section, a request, a job record and the
source of the CLI flags and the app's field defaults: one set of defaults, one validation. It is strict
(TOML/JSON types only: no "3" for 3, no true for 1), refuses unknown keys and NaN/inf, and validates on
assignment, so a form that sets a field gets the same answer as a profile that holds it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import TemperError
from .tomlcheck import kind_of

_KIND = {"int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
         "float_parsing": "a number", "string_type": "a string", "bool_type": "true or false",
         "bool_parsing": "true or false", "list_type": "an array", "dict_type": "a table",
         "model_type": "a table"}


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def message(error: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """(key path, one-line message) for one pydantic error, worded as temper's config checks are."""
    loc = [str(p) for p in error.get("loc", ())]
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    item = ""
    while loc and loc[-1].isdigit():          # list items: "item 2: ..."
        item = f"item {int(loc.pop()) + 1}: "
    if kind in _KIND:
        text = f"expected {_KIND[kind]}, got {kind_of(value)}"
    elif kind == "finite_number":
        text = f"must be a number, got {value}"
    elif kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        text = f"must be {'at least' if kind.endswith('equal') else 'more than'} {_num(bound)}, got {value!r}"
    elif kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        text = f"must be {'at most' if kind.endswith('equal') else 'less than'} {_num(bound)}, got {value!r}"
    elif kind == "literal_error":
        choices = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        text = f"must be one of {choices}, got {value!r}"
    elif kind == "extra_forbidden":
        text = "unknown key"
    elif kind == "missing":
        text = "required"
    elif kind == "string_too_short":
        text = "must not be empty"
    elif kind in ("too_short", "too_long"):
        text = f"needs at least {ctx.get('min_length')} item(s)" if kind == "too_short" else \
            f"holds at most {ctx.get('max_length')} item(s)"
    else:                                     # our own validators: their message as written
        text = str(ctx.get("error", error.get("msg", kind))).removeprefix("Value error, ")
    return tuple(loc), item + text


def problems(exc: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    return [message(e) for e in exc.errors(include_url=False)]


def one_line(exc: ValidationError, what: str = "") -> str:
    found = problems(exc)
    loc, text = found[0]
    key = ".".join(loc)
    head = f"{what}: " if what and not key else ""
    more = f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
    return f"{head}{key + ': ' if key else ''}{text}{more}"


class StrictModel(BaseModel):
    """Base of the settings models. Errors come out as `error_type` with one line, never a traceback."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True,
                              validate_default=False)
    error_type: ClassVar[type[TemperError]] = TemperError
    what: ClassVar[str] = "settings"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self._error(exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise self._error(exc) from None

    @classmethod
    def _error(cls, exc: ValidationError) -> TemperError:
        """One line for the user; `.problems` keeps every (key path, message) for file:line reports."""
        error = cls.error_type(one_line(exc, cls.what))
        error.problems = problems(exc)  # type: ignore[attr-defined]
        return error

    @classmethod
    def parse(cls, data: Any) -> Any:
        """Build from plain data (a profile section, a job record), with a one-line error."""
        if not isinstance(data, dict):
            raise cls.error_type(f"{cls.what}: expected a table, got {kind_of(data)}")
        return cls(**data).check()

    def check(self) -> Any:
        """Rules between fields (subclasses add theirs); returns self."""
        return self

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {name: f.get_default(call_default_factory=True) for name, f in cls.model_fields.items()}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls.parse(data)

    def given(self) -> dict[str, Any]:
        """Only the values set explicitly (what a profile section holds)."""
        return self.model_dump(mode="json", include=set(self.model_fields_set))


def field_specs(model: type[StrictModel]) -> dict[str, Any]:
    """The model's fields as tomlcheck `Field`s (type, default, help, choices, bounds): for diff, help text
    and pickers. Validation itself always goes through the model."""
    import types
    import typing

    from .tomlcheck import Field

    def bounds(metadata: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
        flat = [x for m in metadata for x in (getattr(m, "metadata", None) or [m])]
        for m in flat:
            lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
            lo = getattr(m, "gt", None) if getattr(m, "gt", None) is not None else lo
            hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
        return lo, hi

    def scalar(tp: Any) -> tuple[str, tuple[Any, ...]]:
        if typing.get_origin(tp) is typing.Literal:
            choices = typing.get_args(tp)
            return {bool: "bool", int: "int", float: "float"}.get(type(choices[0]), "str"), choices
        return {bool: "bool", int: "int", float: "float"}.get(tp, "str"), ()

    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        tp = f.annotation
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        lo = hi = None
        if typing.get_origin(tp) is list:
            inner = typing.get_args(tp)[0]
            if typing.get_origin(inner) is typing.Annotated:
                inner, *meta = typing.get_args(inner)
                lo, hi = bounds(meta, lo, hi)
            kind, choices = scalar(inner)
            kind = f"list[{kind}]"
        else:
            kind, choices = scalar(tp)
        lo, hi = bounds(f.metadata, lo, hi)
        out[name] = Field(kind, f.get_default(call_default_factory=True), f.description or "", choices, lo, hi)
    return out

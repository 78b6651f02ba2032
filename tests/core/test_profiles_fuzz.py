"""Fuzzing the profile loader: any text either loads or raises ProfileError with `file:line:`."""

from __future__ import annotations

import re

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temper.core.errors import ProfileError
from temper.core.profiles import SECTIONS, loads

ERROR = re.compile(r"^fuzz\.toml:\d+: \S")

FIELD_KEYS = sorted({k for fields in SECTIONS.values() for k in fields})
keys = st.one_of(
    st.sampled_from(["version", "description", *SECTIONS]),
    st.sampled_from(FIELD_KEYS),
    st.text("abcxyz_-. \"'[]=#é", min_size=1, max_size=6),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=8),
    st.dates(),
    st.times(),
)
# Flat strategies (no st.recursive): generation stays fast enough for >= 1,000 examples in seconds.
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.lists(st.lists(scalars, max_size=2), max_size=2),
    st.dictionaries(keys, scalars, max_size=3),
)
section = st.dictionaries(st.one_of(st.sampled_from(FIELD_KEYS), keys), values, max_size=5)
documents = st.dictionaries(keys, st.one_of(values, section), max_size=5)


def check(text: str) -> None:
    try:
        loads(text, file="fuzz.toml")
    except ProfileError as exc:
        message = str(exc)
        assert ERROR.match(message), message
        assert "\n" not in message


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_documents_load_or_fail_cleanly(doc: dict) -> None:
    """Random TOML documents built from the schema's own keys and every TOML value type."""
    check(tomlkit.dumps(doc))


@settings(max_examples=400, deadline=None, database=None)
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_fails_cleanly(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.sampled_from(
            ["[sampling]", "[chat]", "[quantize]", "[bench]", "[x.y]", "version = 0", "version = 1",
             "temperature = 0.5", "top_k = 'a'", "bits = [2, 9]", "max_new_tokens = 5", "draft_model = 'd'",
             "seed = -1", 'system_prompt = """\n[chat]\n"""', "a.b = 1", "= 3", "[[bench]]", "modes = []"]
        ),
        max_size=10,
    )
)
def test_line_soup_loads_or_fails_cleanly(lines: list[str]) -> None:
    """Plausible lines in random order: duplicate tables, v0 keys, multi-line strings, arrays of tables."""
    check("\n".join(lines))


# keys whose valid values the generic rule below cannot guess: a recipe name (any grid-honouring recipe
# takes any grid: temper), text files named for calibration and evaluation (distinct, non-empty)
SPECIAL = {("quantize", "recipe"): st.just("temper"), ("quantize", "calibration"): st.just("builtin"),
           ("quantize", "evaluation"): st.sampled_from(["builtin", "held-out.txt"]),
           ("quantize", "protect"): st.lists(st.sampled_from(["lm_head", "*embed*:6", "model.layers.0.*"]))}


def _valid(field) -> st.SearchStrategy:
    if field.choices and not field.type.startswith("list"):
        return st.sampled_from(field.choices)
    lo = field.min if field.min is not None else -(2**31)
    hi = field.max if field.max is not None else 2**31
    item = {
        "int": st.integers(int(lo), int(hi)),
        "float": st.floats(lo, hi, allow_nan=False),
        "str": st.text(max_size=20),
        "bool": st.booleans(),
    }
    if field.type.startswith("list"):
        inner = st.sampled_from(field.choices) if field.choices else item[field.type[5:-1]]
        return st.lists(inner, min_size=1, max_size=4)
    return item[field.type]


valid_profiles = st.fixed_dictionaries(
    {},
    optional={
        "version": st.just(1),
        **{
            name: st.fixed_dictionaries({}, optional={k: SPECIAL.get((name, k), _valid(f)) for k, f in fields.items()})
            for name, fields in SECTIONS.items()
        },
    },
)


@settings(max_examples=300, deadline=None, database=None)
@given(valid_profiles)
def test_valid_profiles_load_with_the_same_values(doc: dict) -> None:
    profile = loads(tomlkit.dumps(doc), file="fuzz.toml")
    for section in SECTIONS:
        assert profile.section(section) == doc.get(section, {})

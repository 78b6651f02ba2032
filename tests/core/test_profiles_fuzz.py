"""Fuzzing the profile loader: any text either loads or raises ProfileError with `file:line:`."""

from __future__ import annotations

import datetime as dt
import re

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temper.core.errors import ProfileError
from temper.core.profiles import SECTIONS, loads

ERROR = re.compile(r"^fuzz\.toml:\d+: \S")

keys = st.one_of(
    st.sampled_from(["version", "description", *SECTIONS]),
    st.sampled_from([k for fields in SECTIONS.values() for k in fields]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8),
)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.dates(),
    st.datetimes(min_value=dt.datetime(1900, 1, 1)),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
section = st.dictionaries(
    st.one_of(st.sampled_from([k for fields in SECTIONS.values() for k in fields]), keys), values, max_size=6
)
documents = st.dictionaries(keys, st.one_of(values, section), max_size=6)


def check(text: str) -> None:
    try:
        loads(text, file="fuzz.toml")
    except ProfileError as exc:
        message = str(exc)
        assert ERROR.match(message), message
        assert "\n" not in message


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_documents_load_or_fail_cleanly(doc: dict) -> None:
    """Random TOML documents built from the schema's own keys and every TOML value type."""
    check(tomlkit.dumps(doc))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_fails_cleanly(text: str) -> None:
    check(text)


@settings(max_examples=300, deadline=None)
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

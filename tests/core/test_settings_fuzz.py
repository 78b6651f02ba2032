"""Fuzzing the settings and theme loaders: any text loads or gives a one-line `file:line:` error."""

from __future__ import annotations

import re

import tomlkit
from hypothesis import given, settings
from hypothesis import strategies as st
from temper.core import settings as store
from temper.core import themes
from temper.core.errors import ProfileError

ERROR = re.compile(r"^f\.toml:\d+: \S")
scalars = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.dates())
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=3))
setting_docs = st.dictionaries(st.one_of(st.sampled_from(list(store.SCHEMA)), st.text(max_size=6)), values, max_size=6)
theme_docs = st.dictionaries(
    st.one_of(st.sampled_from(list(themes.SCHEMA)), st.text(max_size=6)),
    st.one_of(values, st.dictionaries(st.sampled_from(list(themes.COLOR_KEYS)), scalars, max_size=4)),
    max_size=6,
)


def clean(fn, text: str) -> None:
    try:
        fn(text, "f.toml")
    except ProfileError as exc:
        assert ERROR.match(str(exc)) and "\n" not in str(exc), str(exc)


@settings(max_examples=200, deadline=None, database=None)
@given(setting_docs)
def test_settings_documents(doc: dict) -> None:
    clean(store.loads, tomlkit.dumps(doc))


@settings(max_examples=200, deadline=None, database=None)
@given(theme_docs)
def test_theme_documents(doc: dict) -> None:
    clean(themes.loads, tomlkit.dumps(doc))


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=120))
def test_arbitrary_text(text: str) -> None:
    clean(store.loads, text)
    clean(themes.loads, text)

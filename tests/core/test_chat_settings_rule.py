"""Chat settings, defined once: a profile's [sampling]/[chat], the chat's own settings (the Chat tab's
modal, a saved conversation), the CLI flags and the REPL's /commands take the same values, with the same
defaults.

Before (issue 12): top_p 1.0 vs 0.95, max_tokens 1024 vs 2048, draft tokens ≤ 64 vs ≤ 16 and kv_bits
2-8 vs 4|8 between the profile schema and the chat settings: a profile could hold what a chat refused."""

from __future__ import annotations

import argparse

import pytest
from temper.cli.chat import changed_settings, register, settings_from
from temper.core.chat.settings import ChatProfile, ChatSettings
from temper.core.engine.sampling import SamplingSettings
from temper.core.errors import TemperError
from temper.core.profiles import Profile, loads


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["chat", "m", *argv])


def _routes(key: str, value: int) -> dict[str, object]:
    """Each route's answer for one [chat] value: 'ok', or the error's class."""
    flag = {"num_draft_tokens": "--draft-tokens", "kv_bits": "--kv-bits"}[key]
    routes = {
        "profile": lambda: loads(f"[chat]\n{key} = {value}\n"),
        "profile model": lambda: ChatProfile(**{key: value}),
        "chat settings": lambda: ChatSettings(**{key: value}).validate(),
        "saved conversation": lambda: ChatSettings.from_dict({key: value}).validate(),
        "cli flag": lambda: settings_from(_parse(flag, str(value))),
    }
    if key == "num_draft_tokens":
        routes["repl /draft-tokens"] = lambda: changed_settings(ChatSettings(), "draft-tokens", str(value))
    answers: dict[str, object] = {}
    for name, route in routes.items():
        try:
            route()
            answers[name] = "ok"
        except (TemperError, SystemExit) as exc:      # argparse's `choices` exits 2 with its own line
            answers[name] = type(exc).__name__
    return answers


@pytest.mark.parametrize("key, value, ok", [
    ("num_draft_tokens", 1, True), ("num_draft_tokens", 16, True),
    ("num_draft_tokens", 0, False), ("num_draft_tokens", 17, False), ("num_draft_tokens", 64, False),
    ("kv_bits", 0, True), ("kv_bits", 4, True), ("kv_bits", 8, True),
    ("kv_bits", 2, False), ("kv_bits", 3, False), ("kv_bits", 6, False),
])
def test_every_route_accepts_and_refuses_the_same_values(key, value, ok, capsys) -> None:
    answers = _routes(key, value)
    capsys.readouterr()
    assert all((a == "ok") == ok for a in answers.values()), answers


def test_a_chat_without_a_profile_runs_with_the_profiles_defaults() -> None:
    system, from_profile = ChatSettings.from_profile(Profile.default())
    assert system == "" and from_profile == ChatSettings() == settings_from(_parse())
    assert ChatSettings().sampling == SamplingSettings()
    assert Profile.default().effective("sampling") == SamplingSettings().to_dict()
    chat = Profile.default().effective("chat")
    assert (chat["num_draft_tokens"], chat["kv_bits"]) == (ChatSettings().num_draft_tokens, ChatSettings().kv_bits)

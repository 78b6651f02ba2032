"""Fixtures for app tests: a TemperApp on the session engine, with fixed user@host and no animations."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_app(engine):
    from temper.tui.app import TemperApp

    def make(**kwargs) -> TemperApp:
        kwargs.setdefault("user_host", "tester@box")
        kwargs.setdefault("environ", {"SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22"})
        return TemperApp(engine=engine, **kwargs)

    return make

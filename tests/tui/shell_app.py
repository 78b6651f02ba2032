"""The shell's app for tests: a TemperApp on the session engine, fixed user@host, no animations (as over
SSH). A plain function, not a conftest fixture, so other areas' tui tests stay independent."""

from __future__ import annotations


def new_app(engine, **kwargs):
    from temper.tui.app import TemperApp

    kwargs.setdefault("user_host", "tester@box")
    kwargs.setdefault("environ", {"SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22"})
    return TemperApp(engine=engine, **kwargs)

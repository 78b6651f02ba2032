"""Pilot helpers for the Quantize wizard's tests: the app on a fake client (tests/tui/fake_quant.py), a
script run on the Quantize tab, waiting for a step or a text."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fake_quant import FakeQuantClient
from temper.tui.app import TemperApp
from textual.widgets import ContentSwitcher, Static


def make_app(engine, tmp_path: Path, **kw) -> tuple[TemperApp, FakeQuantClient]:
    app = TemperApp(engine=engine)
    client = FakeQuantClient(app, tmp_path / "tiny-llama", **kw)
    app.quant_client = client
    return app, client


def run(app: TemperApp, script, size=(100, 30)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()     # the model list is read in a worker
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


async def step(pilot) -> str:
    await pilot.pause()
    return pilot.app.query_one("#quantize-view").query_one(ContentSwitcher).current


async def wait_for_step(pilot, name: str, tries: int = 600) -> None:
    for _ in range(tries):
        if await step(pilot) == name:
            return
        await pilot.pause(0.05)
    raise AssertionError(f"wizard stayed on {await step(pilot)}, expected {name}; error: {error_text(pilot.app)!r}; focus {pilot.app.focused}")


async def start_run(pilot) -> None:
    """Enter through Model, Goal, Calibration and Review (the defaults), then wait for the Run step."""
    await pilot.press("enter", "enter", "enter", "enter")
    await wait_for_step(pilot, "step-run")


def error_text(app) -> str:
    return str(app.query_one("#quant-error", Static).render())


def phase_text(app, name: str) -> str:
    return str(app.query_one(f"#phase-{name} .phase-name").render()) + " | " + \
        str(app.query_one(f"#phase-{name} .phase-status").render())


async def wait_text(pilot, selector: str, text: str, tries: int = 400) -> None:
    for _ in range(tries):
        if text in str(pilot.app.query_one(selector).render()):
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{selector} never showed {text!r}: {pilot.app.query_one(selector).render()!r}")


async def open_compare(pilot):
    """From step 1 with defaults: run to the Result step, press Compare, return the result table."""
    await pilot.press("enter", "enter", "enter", "enter")
    await wait_for_step(pilot, "step-result")
    pilot.app.query_one("#result-compare").press()
    await pilot.pause()
    return pilot.app.query_one("#result-table")

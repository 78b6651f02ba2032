"""The Quantize wizard driven with keys, against a fake client (tests/tui/fake_quant.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fake_quant import FakeQuantClient
from temper.tui.app import TemperApp
from textual.widgets import ContentSwitcher


def make_app(engine, tmp_path: Path, **kw) -> tuple[TemperApp, FakeQuantClient]:
    app = TemperApp(engine=engine)
    client = FakeQuantClient(app, tmp_path / "tiny-llama", **kw)
    app.quant_client = client
    return app, client


async def current(pilot) -> str:
    await pilot.pause()
    return pilot.app.query_one("#quantize-view").query_one(ContentSwitcher).current


def test_enter_enter_enter_runs_with_defaults(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)
    asyncio.run(_drive_defaults(app))
    (req,) = client.started
    assert req.model == str(tmp_path / "tiny-llama")
    assert req.recipe == "temper" and req.target_bpw == 4.5
    assert req.output == str(tmp_path / "out-4.5bpw")


async def _drive_defaults(app) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f2")
        assert await current(pilot) == "step-model"
        for expected in ("step-goal", "step-calibration", "step-review"):
            await pilot.press("enter")
            assert await current(pilot) == expected
        await pilot.press("enter")
        for _ in range(50):
            if await current(pilot) == "step-result":
                break
            await pilot.pause(0.05)
        assert await current(pilot) == "step-result"

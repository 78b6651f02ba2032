"""SVG snapshots of each wizard step and of the Layers tab at 100x30 and 80x24 (fake data, no clocks).

Update with: pytest tests/tui/test_quant_snapshots.py --snapshot-update (then look at the pictures)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fake_quant import FakeQuantClient
from temper.tui.views.layers import LayersView
from temper.tui.views.quantize import QuantizeView
from textual.widgets import ContentSwitcher, Input


@pytest.fixture
def make_app(engine):
    """The shell's test app (fixed user@host, no animations) on the session engine."""
    from shell_app import new_app

    return lambda **kwargs: new_app(engine, **kwargs)

SIZES = [(100, 30), (80, 24)]
STEPS = {"model": 0, "goal": 1, "calibration": 2, "review": 3, "run": 3, "result": 3}


def _app(make_app, gate=None, saved=False):
    # Only the two tabs under test: the pictures change only when the wizard or the Layers view does.
    tabs = [("quantize", "Quantize", QuantizeView), ("layers", "Layers", LayersView)]
    app = make_app(model="/models/tiny-llama", tabs=tabs)
    app.animation_level = "none"
    app.quant_client = FakeQuantClient(app, Path("/models/tiny-llama"), gate=gate)
    app.quant_client.saved_scores = saved
    return app


async def _settle(pilot) -> None:
    for widget in pilot.app.query(Input):
        widget.cursor_blink = False
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("step", list(STEPS))
def test_wizard_step(snap_compare, make_app, size, step) -> None:
    gate = threading.Event()
    app = _app(make_app, gate=gate if step == "run" else None)

    async def before(pilot) -> None:
        await pilot.press("f2")
        await _settle(pilot)
        for _ in range(STEPS[step]):
            await pilot.press("enter")
            await _settle(pilot)
        if step in ("run", "result"):
            await pilot.press("enter")
            wanted = "14/29" if step == "run" else None
            for _ in range(1000):
                await pilot.pause(0.02)
                view = pilot.app.query_one("#quantize-view")
                if wanted and wanted in str(view.query_one("#phase-sensitivity .phase-status").render()):
                    break
                if not wanted and view.query_one(ContentSwitcher).current == "step-result":
                    break
            await _settle(pilot)

    try:
        assert snap_compare(app, terminal_size=size, run_before=before)
    finally:
        gate.set()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("heat", ["sensitivity", "bits"])
def test_layers_tab(snap_compare, make_app, size, heat) -> None:
    app = _app(make_app, saved=True)

    async def before(pilot) -> None:
        await pilot.press("f3")
        await _settle(pilot)
        if heat == "bits":
            await pilot.press("m")
            await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)

"""The wizard on the real engine and core: Enter through every step on the tiny fixture to a verified
MLX folder that plain mlx-lm loads; the Layers tab fills from the same run's events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temper.core.paths import models_dir
from temper.core.quant.scores import SensitivityTable
from textual.widgets import ContentSwitcher, DataTable, Input


@pytest.fixture
def make_app(engine):
    """The shell's test app (fixed user@host, no animations) on the session engine."""
    from shell_app import new_app

    return lambda **kwargs: new_app(engine, **kwargs)


def test_wizard_defaults_on_tiny_llama_make_a_verified_model(make_app, engine, tiny_llama: Path) -> None:
    app = make_app(model=str(tiny_llama))
    out = models_dir() / f"{tiny_llama.name}-temper-4.5bpw"

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            await app.workers.wait_for_complete()           # the model list is read in a worker
            await pilot.pause()
            view = app.query_one("#quantize-view")
            await pilot.press("enter")                              # 1 model: the active one
            assert view.request.model == str(tiny_llama)
            app.query_one("#goal-bits", Input).value = "2,4,8"       # keep the pass small on CPU
            app.query_one("#goal-groups", Input).value = "64"
            await pilot.press("enter")                              # 2 goal: temper at 4.5 bpw
            app.query_one("#calib-samples", Input).value = "4"
            app.query_one("#calib-len", Input).value = "64"
            await pilot.press("enter")                              # 3 calibration: built-in mix
            await pilot.press("enter")                              # 4 review: Start
            for _ in range(600):
                if view.query_one(ContentSwitcher).current == "step-result":
                    break
                await pilot.pause(0.1)
            assert view.query_one(ContentSwitcher).current == "step-result", view.query_one("#run-message").render()
            result = view.result
            table = app.query_one("#result-table", DataTable)
            assert table.get_row("verified")[1] == "yes"
            assert float(table.get_row("bpw")[1]) <= 4.5
            layers = app.query_one("#layers-view")
            scores = SensitivityTable.load(Path(result["sensitivity_file"]))
            assert layers.query_one(DataTable).row_count == len(scores.tensors) >= 14   # 2 blocks x 7 linears
            await pilot.pause(0.5)
            await app.workers.wait_for_complete()
            assert layers.alloc is not None and layers.alloc.choice == {
                k: v for k, v in result["plan"].items() if k in layers.alloc.choice}
        return result

    result = asyncio.run(main())
    assert result["output"] == str(out) and result["verified"] is True
    assert result["bpw"] <= 4.5 and result["quality"]["kl_mean"] > 0
    config = json.loads((out / "config.json").read_text())
    assert "quantization" in config

    def load(ctx):
        from mlx_lm import load as mlx_load

        model, tok = mlx_load(str(out))
        return sum(1 for _ in model.parameters())

    assert engine.run(load) > 0


def test_layers_reallocation_matches_the_written_plan(engine, tiny_llama: Path) -> None:
    """The saved scores re-allocated at the run's budget (what the Layers tab does) give the run's plan."""
    from temper.core.quant.pipeline import quantize, result_dict
    from temper.core.quant.request import QuantRequest
    from temper.tui.engine_quant_client import EngineQuantClient

    request = QuantRequest(model=str(tiny_llama), target_bpw=5.0, bits=[2, 4, 8], group_sizes=[64], samples=4,
                           seq_len=64, output=str(models_dir() / "layers-check"))
    result = result_dict(engine.run(lambda ctx: quantize(ctx, request)))
    client = EngineQuantClient(None)
    table = client.saved_table(str(tiny_llama))
    assert table is not None
    alloc = client.allocate(table, 5.0, {})
    assert alloc.choice == result["plan"]
    assert abs(alloc.kl - result["predicted_kl"]) < 1e-12
    pinned = next(iter(alloc.choice))
    again = client.allocate(table, 5.0, {pinned: "affine:8b:g64"})
    assert again.choice[pinned] == "affine:8b:g64" and again.bpw <= 5.0


def test_layers_measure_now_on_the_real_engine_and_found_again(make_app, engine, tiny_llama: Path) -> None:
    """Layers' s runs the real sensitivity pass (no quantize run); a new app finds the table it saved."""

    async def main(press: bool) -> int:
        app = make_app(model=str(tiny_llama))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("f3")
            await pilot.pause()
            layers = app.query_one("#layers-view")
            if press:
                assert "press s to measure them now" in str(layers.query_one("#layers-status").render())
                await pilot.press("s")
            for _ in range(1200):
                if layers.alloc is not None:
                    break
                await pilot.pause(0.1)
            assert layers.alloc is not None, layers.query_one("#layers-status").render()
            return layers.query_one(DataTable).row_count

    rows = asyncio.run(main(press=True))
    assert rows >= 14                                       # 2 blocks x 7 linears
    assert asyncio.run(main(press=False)) == rows           # saved, and read back at the next start

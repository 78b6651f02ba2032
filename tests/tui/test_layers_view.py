"""The Layers tab: live scores from engine events, the budget re-running the allocation, pins, heat strip."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fake_quant import CANDS, FakeQuantClient, fake_table, greedy
from temper.core.quant.candidates import Candidate
from temper.core.quant.scores import SensitivityTable
from temper.core.quant.sensitivity import LayerScored
from temper.tui.app import TemperApp
from temper.tui.views.layers import LayersView
from temper.tui.widgets.layers_budget import BudgetSlider
from temper.tui.widgets.layers_heat import LayersHeat
from textual.widgets import DataTable, Input, Static


def make_app(engine, tmp_path: Path, saved: bool = True) -> TemperApp:
    app = TemperApp(engine=engine)
    app.quant_client = FakeQuantClient(app, tmp_path / "tiny-llama")
    app.quant_client.saved_scores = saved
    app.model = str(tmp_path / "tiny-llama")
    return app


def run(app: TemperApp, script, size=(100, 30)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.press("f3")
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            await script(pilot, app.query_one(LayersView))

    asyncio.run(main())


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def status(view: LayersView) -> str:
    return str(view.query_one("#layers-status", Static).render())


def test_saved_scores_show_allocation_and_budget_moves_it(engine, tmp_path: Path) -> None:
    app = make_app(engine, tmp_path)

    async def script(pilot, view: LayersView) -> None:
        table = view.query_one(DataTable)
        assert table.row_count == len(fake_table().tensors)
        assert view.alloc is not None and view.alloc.bpw <= 4.5
        expected = greedy(fake_table(), 4.5, {})
        assert view.alloc.choice == expected.choice
        assert f"predicted KL {expected.kl:.4f}" in status(view)
        kl_before, bpw_before = view.alloc.kl, view.alloc.bpw
        assert isinstance(pilot.app.focused, BudgetSlider)
        await pilot.press("pageup", "pageup")                     # +0.5 bpw
        await settle(pilot)
        assert view.query_one(BudgetSlider).value == 5.0
        assert bpw_before < view.alloc.bpw <= 5.0 and view.alloc.kl < kl_before
        assert view.query_one("#layers-bpw", Input).value == "5"
        # the chosen column follows the allocation
        chosen = table.get_cell("model.layers.0.self_attn.v_proj", "chosen")
        assert chosen == str(CANDS[[c.key for c in CANDS].index(view.alloc.choice["model.layers.0.self_attn.v_proj"])])
        # the frontier is drawn with the current point marked
        plot = str(view.query_one("#layers-plot").render())
        assert "●" in plot and "·" in plot

    run(app, script)


def test_typed_budget_and_bad_budget(engine, tmp_path: Path) -> None:
    app = make_app(engine, tmp_path)

    async def script(pilot, view: LayersView) -> None:
        box = view.query_one("#layers-bpw", Input)
        box.focus()
        box.value = "3.2"
        await pilot.press("enter")
        await settle(pilot)
        assert view.alloc.bpw <= 3.2 and view.query_one(BudgetSlider).value == 3.2
        box.value = "1.5"
        await pilot.press("enter")
        await settle(pilot)
        assert "outside what these candidates can reach" in status(view)
        assert view.query_one(BudgetSlider).value == 3.2

    run(app, script)


def test_pins_are_respected_by_the_allocator(engine, tmp_path: Path) -> None:
    app = make_app(engine, tmp_path)
    path = "model.layers.1.self_attn.q_proj"

    async def script(pilot, view: LayersView) -> None:
        table = view.query_one(DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(path))
        chosen = view.alloc.choice[path]
        await pilot.press("p")                       # pin at its current choice
        await settle(pilot)
        assert view.pins == {path: chosen}
        await pilot.press("p")                       # next candidate up
        await settle(pilot)
        keys = [c.key for c in CANDS]
        pinned = keys[(keys.index(chosen) + 1) % len(keys)]
        assert view.pins == {path: pinned} and view.alloc.choice[path] == pinned
        assert table.get_cell(path, "pin") == str(Candidate.from_key(pinned))
        assert "1 pinned" in status(view)
        await pilot.press("u")
        await settle(pilot)
        assert view.pins == {} and view.alloc.choice == greedy(fake_table(), 4.5, {}).choice

    run(app, script)


def test_live_events_fill_the_table_and_heat_strip(engine, tmp_path: Path) -> None:
    app = make_app(engine, tmp_path, saved=False)
    table = fake_table()
    saved = tmp_path / "scores.json"
    table.save(saved)
    release = threading.Event()

    def job(ctx):
        for t in table.tensors[:10]:
            ctx.emit(LayerScored(ctx.job_id, t.path, dict(t.scores)))   # path and scores only
        release.wait(10)
        return {"sensitivity_file": str(saved)}

    async def script(pilot, view: LayersView) -> None:
        assert "No sensitivity scores for tiny-llama yet: press s" in status(view)
        done = pilot.app.engine.submit(job, kind="quantize")
        for _ in range(300):
            if view.query_one(DataTable).row_count == 10:
                break
            await pilot.pause(0.05)
        assert view.query_one(DataTable).row_count == 10
        assert "live: 10 tensors scored" in status(view)
        heat = view.query_one(LayersHeat)
        assert {t.layer for t in heat.tensors} == {0, 1}
        assert {t.kind for t in heat.tensors} >= {"q_proj", "down_proj"}
        rendered = str(heat.render())
        assert "down █" in rendered and "sensitivity · 2 layers" in rendered
        assert view.alloc is None                  # no allocation on a partial table
        release.set()
        await asyncio.get_running_loop().run_in_executor(None, done.result)
        for _ in range(300):
            await settle(pilot)
            if view.alloc is not None:
                break
        assert view.query_one(DataTable).row_count == len(table.tensors)
        assert view.alloc is not None and view.alloc.choice == greedy(table, 4.5, {}).choice
        await pilot.press("m")
        assert "chosen bits" in str(heat.render())

    run(app, script)


def test_heat_strip_fits_80_columns_with_many_layers(engine, tmp_path: Path) -> None:
    app = make_app(engine, tmp_path)

    async def script(pilot, view: LayersView) -> None:
        view.set_table(fake_table(layers=120))
        await settle(pilot)
        lines = str(view.query_one(LayersHeat).render()).splitlines()
        assert "120 layers, 4 per cell" in lines[0]
        assert max(len(line) for line in lines) <= view.query_one(LayersHeat).size.width

    run(app, script, size=(80, 24))


def wide_table() -> SensitivityTable:
    """fake_table's tensors scored for the wizard's default grid: widths 2,3,4,5,6,8 × groups 32,64,128 (18)."""
    table = fake_table()
    keys = [Candidate(b, g).key for b in (2, 3, 4, 5, 6, 8) for g in (128, 64, 32)]
    for t in table.tensors:
        base = t.scores[CANDS[2].key]
        t.scores = {k: base * 2.0 ** (4 - Candidate.from_key(k).bits) * Candidate.from_key(k).group_size / 64
                    for k in keys}
    table.candidates = keys
    return table


def test_the_table_fits_the_width_without_scrolling_sideways(engine, tmp_path: Path) -> None:
    """Before: Layer, Tensor, Params, 18 score columns, then Chosen and Pin: 80 and 100 columns both scrolled
    sideways, with the allocation's own columns out of sight. Now the allocation's columns come first and
    the score columns that fit follow, one per width before a second group size; a resize refits them."""
    app = make_app(engine, tmp_path)
    app.quant_client.table = wide_table()

    def fits(dt: DataTable) -> None:
        assert dt.max_scroll_x == 0 and not dt.show_horizontal_scrollbar, (dt.virtual_size, dt.size)

    async def script(pilot, view: LayersView) -> None:
        dt = view.query_one(DataTable)
        await settle(pilot)
        fits(dt)
        keys = [c.value for c in dt.columns]
        assert keys[:5] == ["layer", "tensor", "params", "chosen", "pin"]
        narrow = keys[5:]
        assert len(narrow) >= 3 and len({Candidate.from_key(k).bits for k in narrow}) == len(narrow)
        path = "model.layers.0.mlp.down_proj"
        assert dt.get_cell(path, "chosen") == str(Candidate.from_key(view.alloc.choice[path]))
        await pilot.resize_terminal(100, 30)
        await settle(pilot)
        fits(dt)
        wide = [c.value for c in dt.columns][5:]
        assert len(wide) > len(narrow) and {Candidate.from_key(k).bits for k in wide} == {2, 3, 4, 5, 6, 8}
        assert dt.get_cell(path, wide[0]) == f"{view.table.by_path()[path].scores[wide[0]]:.4f}"
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        fits(dt)
        assert [c.value for c in dt.columns][5:] == narrow and dt.row_count == len(view.table.tensors)

    run(app, script, size=(80, 24))


def test_no_scores_on_a_float_model_offers_measure_now(engine, tmp_path: Path) -> None:
    """Before: "Waiting for sensitivity scores." until a quantize run. Now s runs the pass as a job, with
    progress, and the table fills and allocates."""
    app = make_app(engine, tmp_path, saved=False)

    async def script(pilot, view: LayersView) -> None:
        assert "No sensitivity scores for tiny-llama yet: press s to measure them now" in status(view)
        await pilot.press("s")
        for _ in range(300):
            await settle(pilot)
            if view.alloc is not None:
                break
        assert app.quant_client.measured == [str(tmp_path / "tiny-llama")]
        assert view.query_one(DataTable).row_count == len(app.quant_client.table.tensors)
        assert view.alloc is not None and "predicted KL" in status(view)

    run(app, script)


def test_a_quantized_model_says_why_and_opens_its_float_copy(engine, tmp_path: Path) -> None:
    app = make_app(engine, tmp_path, saved=False)
    app.quant_client.quantized = True
    four_bit = str(tmp_path / "tiny-4bit")
    app.model = four_bit

    async def script(pilot, view: LayersView) -> None:
        text = status(view)
        assert "tiny-4bit is already quantized (4-bit)" in text and "Make a float copy" in text, text
        await pilot.press("s")
        await settle(pilot)
        assert not getattr(app.quant_client, "measured", [])          # nothing to measure on a 4-bit model
        app.quant_client.copies.append(f"{four_bit}-bf16")
        view.model_path = None                                       # as if the tab were shown again
        view.on_show()
        await settle(pilot)
        assert "Press f to open its float copy tiny-4bit-bf16" in status(view)
        await pilot.press("f")
        await settle(pilot)
        assert app.model == f"{four_bit}-bf16"
        assert "No sensitivity scores for tiny-4bit-bf16 yet: press s" in status(view)

    run(app, script)


def test_measuring_shows_one_count_an_eta_and_what_the_pass_does(engine, tmp_path: Path) -> None:
    """Before: "press s to measure them now … · measuring: fisher: sequence 2/16 2/227" (the hint kept, two
    counts, no ETA). The ETA is the core's (`eta_s`: core/engine/eta.py weighs the pass's unlike steps)."""
    from temper.core.engine.events import Progress
    from temper.tui.bridge import EngineEvent

    app = make_app(engine, tmp_path, saved=False)

    async def script(pilot, view: LayersView) -> None:
        view.measure_job = 99
        for done, eta in ((1, {}), (2, {"eta_s": 90.0})):
            view.on_engine_event(EngineEvent(Progress(99, "sensitivity", done, 11, f"fisher: sequence {done}/4",
                                                      eta)))
        await pilot.pause()
        text = status(view)
        assert text == "measuring sensitivity 2/11 (18%) · ETA 1m30s · fisher: sequence 2/4", text

    run(app, script)

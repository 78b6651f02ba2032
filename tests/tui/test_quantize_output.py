"""The wizard's default output follows the request: a goal changed after a first look at Review gives the
new recipe's name (as `temper quantize` would), while an output the user typed is kept."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, OptionList
from wizard_pilot import make_app, run, step


def test_the_default_output_follows_a_changed_goal_and_a_typed_one_stays(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        await pilot.press("enter", "enter", "enter")
        assert await step(pilot) == "step-review"
        out = pilot.app.query_one("#review-out", Input)
        assert out.value == str(tmp_path / "out-4.5bpw")
        await pilot.press("escape", "escape")
        assert await step(pilot) == "step-goal"
        goals = pilot.app.query_one("#recipe-list", OptionList)
        uniform = next(i for i in range(goals.option_count) if "uniform 8-bit" in str(goals.get_option_at_index(i).prompt))
        goals.highlighted = uniform
        goals.focus()
        await pilot.press("enter")
        assert await step(pilot) == "step-calibration"
        await pilot.press("enter")
        assert await step(pilot) == "step-review"
        assert out.value == str(tmp_path / "out-uniform-8")
        out.value = str(tmp_path / "mine")                       # typed, then started: the run takes it
        pilot.app.query_one("#review-start").focus()
        await pilot.pause(0.4)
        await pilot.press("enter")
        await pilot.pause()

    run(app, script)
    (req,) = client.started
    assert req.recipe == "uniform-8" and req.output == str(tmp_path / "mine")

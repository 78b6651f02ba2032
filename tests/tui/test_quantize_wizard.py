"""The Quantize wizard driven with keys, against a fake client (tests/tui/fake_quant.py).

The fake's jobs run on the real engine, so events go engine → bridge → app → view as in use."""

from __future__ import annotations

from pathlib import Path

from temper.core import jobs
from textual.widgets import Checkbox, Input, Static
from wizard_pilot import error_text, make_app, run, step, wait_for_step


def test_enter_enter_enter_runs_with_defaults(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        assert await step(pilot) == "step-model"
        for expected in ("step-goal", "step-calibration", "step-review"):
            await pilot.press("enter")
            assert await step(pilot) == expected
        await pilot.press("enter")
        await wait_for_step(pilot, "step-result")
        table = pilot.app.query_one("#result-table")
        assert table.get_row("kl_mean")[1] == "0.0791 ± 0.0042"
        assert table.get_row("verified")[1] == "yes"

    run(app, script)
    (req,) = client.started
    assert req.model == str(tmp_path / "tiny-llama")
    assert req.recipe == "temper" and req.target_bpw == 4.5 and req.bits == [2, 3, 4, 5, 6, 8]
    assert req.calibration == "builtin" and req.evaluation == "builtin"
    assert req.output == str(tmp_path / "out-4.5bpw")
    assert jobs.all_jobs("quantize")[0].status == "done"


def test_choices_reach_the_request_and_bad_input_stays_put(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        await pilot.press("down", "enter")                      # second model
        assert await step(pilot) == "step-goal"
        pilot.app.query_one("#goal-bits", Input).value = "3,x"
        await pilot.press("enter")
        assert await step(pilot) == "step-goal"
        assert "widths: give whole numbers" in error_text(pilot.app)
        pilot.app.query_one("#goal-bits", Input).value = "3,4,8"
        pilot.app.query_one("#goal-protect", Input).value = "lm_head"
        pilot.app.query_one("#goal-bpw", Input).value = "3.9"
        await pilot.press("enter")
        assert await step(pilot) == "step-calibration" and error_text(pilot.app) == ""
        pilot.app.query_one("#calib-samples", Input).value = "8"
        await pilot.press("down", "enter")                      # "from a file" without a path
        assert "type the calibration file" in error_text(pilot.app)
        await pilot.press("up", "enter")
        assert await step(pilot) == "step-review"
        summary = str(pilot.app.query_one("#review-summary", Static).render())
        assert "KL knapsack at 3.9 bpw" in summary and "8 × 256" in summary and "lm_head" in summary
        await pilot.press("escape")
        assert await step(pilot) == "step-calibration"

    run(app, script)
    assert client.started == []


def test_existing_output_is_not_overwritten_without_asking(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)
    (tmp_path / "out-4.5bpw").mkdir()

    async def script(pilot) -> None:
        await pilot.press("enter", "enter", "enter")
        assert "exists" in str(pilot.app.query_one("#review-warning", Static).render())
        await pilot.press("enter")
        assert await step(pilot) == "step-review"
        assert "already exists" in error_text(pilot.app)
        pilot.app.query_one("#review-overwrite", Checkbox).value = True
        await pilot.pause()
        assert "WILL BE REPLACED" in str(pilot.app.query_one("#review-warning", Static).render())
        pilot.app.query_one("#review-start").focus()
        await pilot.pause(0.4)                 # a Button ignores presses while its press effect shows
        await pilot.press("enter")
        await wait_for_step(pilot, "step-result")

    run(app, script)
    assert client.started[0].overwrite is True


def test_settings_save_to_a_profile_and_follow_the_active_profile(engine, tmp_path: Path) -> None:
    from temper.core.profiles import Profile, store

    app, _ = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        await pilot.press("enter")
        pilot.app.query_one("#goal-bpw", Input).value = "3.25"
        pilot.app.query_one("#goal-groups", Input).value = "64"
        await pilot.press("ctrl+s")
        await pilot.pause()
        pilot.app.screen.query_one("#prompt-input", Input).value = "small"
        await pilot.press("enter")
        await pilot.pause()
        assert pilot.app.profile.name == "small"
        other = Profile.default().copy("big")
        other.set("quantize", "target_bpw", 6.5)
        other.set("quantize", "seq_len", 128)
        pilot.app.profile = other                       # as the Profiles picker (ctrl+o) does
        await pilot.pause()
        assert pilot.app.query_one("#goal-bpw", Input).value == "6.5"
        assert pilot.app.query_one("#calib-len", Input).value == "128"
        assert pilot.app.query_one("#goal-groups", Input).value == "32,64,128"

    run(app, script)
    saved = store.load("small")
    assert saved.section("quantize")["target_bpw"] == 3.25 and saved.section("quantize")["group_sizes"] == [64]
    assert "[quantize]" in saved.path.read_text()


def test_a_quantized_model_is_refused_at_step_one_and_f_makes_a_float_copy(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path, quantized=True)

    async def script(pilot) -> None:
        facts = str(pilot.app.query_one("#model-facts").render())
        assert "Already quantized (4-bit)" in facts and "Press f to make a float copy" in facts
        await pilot.press("enter")
        assert await step(pilot) == "step-model"
        assert "already quantized" in error_text(pilot.app) and "press f" in error_text(pilot.app)
        await pilot.press("f")
        for _ in range(200):
            current = pilot.app.query_one("#step-model").current
            if current is not None and current.path.endswith("tiny-4bit-bf16"):
                break
            await pilot.pause(0.05)
        assert pilot.app.query_one("#step-model").current.path == str(tmp_path / "tiny-4bit-bf16")
        await pilot.press("enter")
        assert await step(pilot) == "step-goal"

    run(app, script)


def test_a_fixed_recipe_is_not_capped_by_the_budget_left_as_shown(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        await pilot.press("enter")
        assert await step(pilot) == "step-goal"
        await pilot.press("down", "down", "down", "down", "enter")      # uniform 8-bit, budget field untouched
        assert await step(pilot) == "step-calibration"
        assert pilot.app.query_one("#quantize-view").request.target_bpw is None

    run(app, script)


def test_review_of_a_fixed_recipe_shows_no_candidate_grid(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)

    async def script(pilot) -> None:
        await pilot.press("enter", "down", "down", "down", "down", "enter", "enter")
        assert await step(pilot) == "step-review"
        summary = str(pilot.app.query_one("#review-summary", Static).render())
        assert "uniform-8" in summary and "Candidates" not in summary
        assert "sensitivity pass" not in summary and "measured after writing" in summary

    run(app, script)


def test_the_float_copy_is_named_not_spelled_as_a_path() -> None:
    """Before: "Its float copy is /home/…/data/models/X-bf16: press f" wrapped over three lines at 80 columns."""
    from temper.tui.quant_client import ModelChoice
    from temper.tui.widgets.quant_setup import model_facts

    model = ModelChoice("X", "/deep/models/X", "llama", 1000, 2000, quantization="4-bit")
    facts = model_facts(model, None, "/deep/folder/of/models/X-bf16")
    assert "X-bf16 is in the list: press [b]f[/b] to pick it" in facts and "/deep" not in facts

"""The quantize settings, defined once: strict validation with one-line errors, one set of defaults shared by
the profile, the request, the CLI flags and the job record, and a round trip through plain data."""

from __future__ import annotations

import argparse

import pytest
from temper.cli.quantize import register, request_from
from temper.core.errors import ProfileError, QuantError
from temper.core.profiles import loads
from temper.core.profiles.schema import QUANTIZE
from temper.core.quant.request import QuantRequest, QuantSettings, default_output


def parse_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["quantize", *argv])


def test_defaults_validate_and_round_trip(tmp_path) -> None:
    req = QuantRequest(model=str(tmp_path)).validate()
    assert req.recipe == "temper" and req.target_bpw is None and req.budget_label() == "4.5 bpw"
    assert len(req.candidates()) == 18
    assert QuantRequest.from_dict(req.to_dict()) == req
    assert default_output(str(tmp_path), req).name == f"{tmp_path.name}-temper-4.5bpw"


def test_one_set_of_defaults_for_profile_request_and_cli() -> None:
    """Before: seq_len 512 (profile) vs 256 (request), samples 32 vs 16, mode hybrid (CLI) vs auto (app),
    recipe '' vs 'temper'. Now the profile's defaults, the CLI's and the request's are the model's."""
    model = QuantSettings()
    for key, spec in QUANTIZE.items():
        assert spec.default == getattr(model, key), key
    cli = request_from(parse_cli("some/model"))
    assert cli.model_dump(exclude={"model"}) == QuantRequest().model_dump(exclude={"model"})
    assert (cli.seq_len, cli.samples, cli.sensitivity_mode, cli.recipe) == (256, 16, "auto", "temper")
    # the candidate grid does not change with an unrelated flag: --bits keeps the default group sizes
    narrowed = request_from(parse_cli("m", "--bits", "3,4"))
    assert {c.group_size for c in narrowed.candidates()} == {32, 64, 128}


@pytest.mark.parametrize("change, message", [
    ({"bits": [7]}, "bits: item 1: must be one of 2, 3, 4, 5, 6, 8, got 7"),
    ({"group_sizes": [16]}, "group_sizes: item 1: must be one of 32, 64, 128, got 16"),
    ({"group_sizes": [48]}, "group_sizes: item 1: must be one of"),
    ({"modes": ["int4"]}, "modes: item 1: must be one of affine, mxfp4, nvfp4, mxfp8"),
    ({"target_bpw": 0.5}, "target_bpw: must be at least 1"),
    ({"size_gb": -1.0}, "size_gb: must be at least 0.001"),
    ({"samples": "8"}, "samples: expected an integer, got a string"),
    ({"recipe": "q4"}, "recipe: unknown recipe 'q4'"),
    ({"protect": [":4"]}, "protect: bad protect pattern"),
    ({"bpw": 4}, "bpw: unknown key"),
])
def test_bad_settings_give_one_line_errors(tmp_path, change, message) -> None:
    with pytest.raises(QuantError, match=message) as err:
        QuantRequest(**{"model": str(tmp_path), **change})
    assert "\n" not in str(err.value)


def test_profile_and_core_apply_the_same_rule() -> None:
    """Before: a profile with group_sizes=[16] or bits=[7] loaded, then the request refused it."""
    for section in ("group_sizes = [16]", "bits = [7]"):
        with pytest.raises(ProfileError):
            loads(f"[quantize]\n{section}\n")
        key, value = section.split(" = ")
        with pytest.raises(QuantError):
            QuantRequest(**{key: [int(value.strip("[]"))]})
    # and what a profile holds, the request takes as it is
    profile = loads("[quantize]\nrecipe = 'oq4'\ntarget_bpw = 4.5\nbits = [3, 4, 5, 6, 8]\ngroup_sizes = [64]\n")
    req = QuantRequest(model="m", **profile.section("quantize")).validate()
    assert [c.key for c in req.scored_candidates()] == [f"affine:{b}b:g64" for b in (3, 4, 5, 6, 8)]
    assert req.plan_options().bpw == 4.5


def test_runtime_checks(tmp_path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with pytest.raises(QuantError, match="kept apart"):
        QuantRequest(model=str(tmp_path), calibration=str(text), evaluation=str(text)).validate()
    with pytest.raises(QuantError, match="does not exist"):
        QuantRequest(model=str(tmp_path), calibration="/nope/calib.jsonl").validate()
    with pytest.raises(QuantError, match="choose a model"):
        QuantRequest().validate()


def test_assignment_is_validated_as_a_form_would_set_it() -> None:
    req = QuantRequest(model="m")
    with pytest.raises(QuantError, match="bits: item 2"):
        req.bits = [4, 9]
    assert req.bits == [2, 3, 4, 5, 6, 8]


def test_cli_flags_come_from_the_model() -> None:
    args = parse_cli("m", "--bpw", "3.5", "--group-sizes", "64", "--awq", "--calibration", "c.txt", "-o", "out",
                     "--force", "--no-eval", "--sensitivity-mode", "exact", "--pin", "lm_head=float")
    req = request_from(args)
    assert (req.target_bpw, req.group_sizes, req.awq, req.calibration, req.output, req.overwrite, req.evaluate,
            req.sensitivity_mode, req.pins) == (3.5, [64], True, "c.txt", "out", True, False, "exact", ["lm_head=float"])
    with pytest.raises(SystemExit):
        parse_cli("m", "--bits", "2,x")
    with pytest.raises(QuantError, match="^--bits: item 1: must be one of"):
        request_from(parse_cli("m", "--bits", "7"))


def test_a_profile_fills_what_the_flags_leave_out() -> None:
    profile = loads("[quantize]\ntarget_bpw = 3.8\nsamples = 8\nawq = true\n")
    req = request_from(parse_cli("m", "--samples", "4"), profile)
    assert (req.target_bpw, req.samples, req.awq) == (3.8, 4, True)
    assert request_from(parse_cli("m", "--size-gb", "0.5"), profile).target_bpw is None


@pytest.mark.parametrize("recipe, change, message", [
    ("uniform-4", {"bits": [4]}, "fixed map"),
    ("optiq-like", {"bits": [2, 3]}, "chooses from 4b g64, 8b g64"),
    ("oq4", {"group_sizes": [32]}, "leave none of them"),
])
def test_a_grid_the_recipe_would_drop_is_refused(recipe, change, message) -> None:
    """Before: `bits` and `target_bpw` of a non-temper recipe were silently dropped by the app."""
    with pytest.raises(QuantError, match=message):
        QuantRequest(model="m", recipe=recipe, **change).validate()


def test_auto_sensitivity_mode_follows_the_one_rule() -> None:
    """'auto' is core/quant/mode.choose_mode (tested in test_sensitivity_memory.py) on this machine."""
    from temper.core.quant.mode import ModelSize, choose_mode
    from temper.core.quant.request import resolved_sensitivity_mode

    assert resolved_sensitivity_mode("exact") == "exact" and resolved_sensitivity_mode("hybrid") == "hybrid"
    size = ModelSize(135_000_000, 270_000_000, 0, 0, 0, 0)
    assert resolved_sensitivity_mode("auto", size.params) == choose_mode(size, available=1 << 62).mode


def test_oq_levels_are_defined_once() -> None:
    import subprocess

    out = subprocess.run(["git", "grep", "-n", "^OQ_LEVELS ="], capture_output=True, text=True,
                         cwd=__import__("pathlib").Path(__file__).parents[2])
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == ["core/quant/recipes.py"]


def test_eval_tasks_and_limit_flags_reach_the_request_under_both_spellings() -> None:
    for tasks_flag, limit_flag in (("--tasks", "--limit"), ("--eval-tasks", "--eval-limit")):
        req = request_from(parse_cli("m", tasks_flag, "GSM8K,mmlu_cloze", limit_flag, "5"))
        assert (req.eval_tasks, req.eval_limit) == ("gsm8k,mmlu_cloze", 5)
    with pytest.raises(QuantError, match="unknown task 'arc'"):
        request_from(parse_cli("m", "--eval-tasks", "gsm8k,arc"))


def test_the_shipped_oq4_balanced_profile_keeps_its_budget_and_widths() -> None:
    """Before: oq4-balanced.toml's `target_bpw` and `bits` were dropped for a non-temper recipe (the app kept
    only the recipe name). Now the app's route (the profile section as the request) and the CLI's
    (`temper --profile oq4-balanced quantize`) hand the allocator the profile's budget and widths."""
    from temper.core.profiles import load

    profile = load("oq4-balanced")
    section = profile.section("quantize")
    assert section["recipe"] == "oq4" and section["target_bpw"] == 4.5
    for req in (QuantRequest(model="m", **section).validate(), request_from(parse_cli("m"), profile).validate()):
        options = req.plan_options()
        assert (req.recipe, options.bpw) == ("oq4", 4.5)
        assert sorted({c.bits for c in options.candidates}) == section["bits"] == [3, 4, 5, 6, 8]
        assert {c.group_size for c in options.candidates} == {64}
        assert [p.pattern for p in options.protect] == section["protect"]

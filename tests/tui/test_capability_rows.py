"""Capability figures in the wizard's Result step and its Compare view."""

from __future__ import annotations

from pathlib import Path

from temper.core import jobs
from temper.tui.widgets.capability_rows import capability_rows
from wizard_pilot import make_app, open_compare, run

CAP = {"tasks": {"gsm8k": {"accuracy": 0.02, "low": 0.008, "high": 0.045, "n": 200, "base_accuracy": 0.03}},
       "capability": 0.02, "base_capability": 0.03}


def test_rows_per_task_and_the_score():
    rows = capability_rows([{"capability": CAP}, {}])
    assert rows == [("gsm8k accuracy", ["2.0% [1–4] n=200 (base 3.0%)", "–"]),
                    ("Capability score", ["2.0% (base 3.0%)", "–"])]
    assert capability_rows([{}, {"capability": None}]) == []


def test_compare_shows_capability_of_an_earlier_result(engine, tmp_path: Path) -> None:
    app, client = make_app(engine, tmp_path)
    earlier = jobs.create("quantize", {"model": str(tmp_path / "tiny-llama")})
    earlier.finish("done", result={"output": str(tmp_path / "older-3bpw"), "bpw": 3.1, "size_bytes": 999,
                                   "quality": {"kl_mean": 0.3, "top1": 0.8}, "verified": True,
                                   "capability": CAP})

    async def script(pilot) -> None:
        table = await open_compare(pilot)
        assert table.get_row("capability-gsm8k accuracy") == ["gsm8k accuracy", "–", "2.0% [1–4] n=200 (base 3.0%)"]

    run(app, script)

"""The wizard's model step says how long the job is likely to take, or that it will show the time as it runs."""

from __future__ import annotations


def test_the_wizard_says_so_when_there_is_no_figure():
    from temper.tui.quant_client import ModelChoice, Preflight
    from temper.tui.widgets.quant_setup import model_facts

    model = ModelChoice(name="m", path="/m", arch="llama", params=1000, size_bytes=2000)
    with_eta = model_facts(model, Preflight(10**10, 10**9, False, 95.0))
    without = model_facts(model, Preflight(10**10, 10**9, False, None))
    assert "likely" in with_eta and "time shown as it runs" not in with_eta
    assert "likely" not in without and "time shown as it runs" in without

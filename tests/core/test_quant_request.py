"""The quantize request: strict validation with one-line errors, and a round trip through plain data."""

from __future__ import annotations

import pytest
from temper.core.errors import QuantError
from temper.core.quant.request import QuantRequest, default_output


def test_defaults_validate_and_round_trip(tmp_path) -> None:
    req = QuantRequest(model=str(tmp_path)).validate()
    assert req.recipe == "temper" and req.target_bpw == 4.5
    assert len(req.candidates()) == 18
    assert QuantRequest.from_dict(req.to_dict()) == req
    assert default_output(str(tmp_path), req).name == f"{tmp_path.name}-temper-4.5bpw"


@pytest.mark.parametrize("change, message", [
    ({"model": ""}, "choose a model"),
    ({"bits": [7]}, "no 7-bit width"),
    ({"group_sizes": [48]}, "group size must be"),
    ({"modes": ["int4"]}, "unknown mode"),
    ({"target_bpw": 0.5}, "out of range"),
    ({"size_gb": -1.0}, "positive"),
    ({"calibration": "/nope/calib.jsonl"}, "does not exist"),
])
def test_bad_settings_give_one_line_errors(tmp_path, change, message) -> None:
    req = QuantRequest(**{"model": str(tmp_path), **change})
    with pytest.raises(QuantError, match=message) as err:
        req.validate()
    assert "\n" not in str(err.value)


def test_calibration_and_evaluation_must_differ(tmp_path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with pytest.raises(QuantError, match="kept apart"):
        QuantRequest(model=str(tmp_path), calibration=str(text), evaluation=str(text)).validate()


def test_unknown_key_is_refused() -> None:
    with pytest.raises(QuantError, match="unknown quantize setting 'bpw'"):
        QuantRequest.from_dict({"bpw": 4})


def test_auto_sensitivity_mode_follows_the_one_rule() -> None:
    """'auto' is core/quant/mode.choose_mode (tested in test_sensitivity_memory.py) on this machine."""
    from temper.core.quant.mode import ModelSize, choose_mode
    from temper.core.quant.request import resolved_sensitivity_mode

    assert resolved_sensitivity_mode("exact") == "exact" and resolved_sensitivity_mode("hybrid") == "hybrid"
    size = ModelSize(135_000_000, 270_000_000, 0, 0, 0, 0)
    assert resolved_sensitivity_mode("auto", size.params) == choose_mode(size, available=1 << 62).mode

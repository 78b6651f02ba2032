"""Wizard settings as a profile's [quantize] section: round trip, comments kept, bad files refused."""

from __future__ import annotations

import pytest
from temper.core.errors import ProfileError
from temper.core.quant.request import QuantRequest
from temper.tui.quant_profile import load, save


def test_round_trip_keeps_other_sections_and_comments(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("# my profile\nversion = 1\n\n[sampling]\ntemperature = 0.7 # warm\n")
    req = QuantRequest(model="/m", recipe="oq4", target_bpw=4.6, bits=[3, 4, 8], group_sizes=[64],
                       protect=["lm_head"], awq=True, samples=8, seq_len=128)
    save(path, req)
    text = path.read_text()
    assert "# my profile" in text and "temperature = 0.7 # warm" in text and "[quantize]" in text
    loaded = load(path)
    assert (loaded.recipe, loaded.target_bpw, loaded.bits, loaded.group_sizes) == ("oq4", 4.6, [3, 4, 8], [64])
    assert loaded.protect == ["lm_head"] and loaded.awq and (loaded.samples, loaded.seq_len) == (8, 128)
    assert loaded.model == ""                      # per-run settings are not part of a profile


@pytest.mark.parametrize("body, message", [
    ("[quantize]\nbpw = 4\n", "unknown \\[quantize\\] key 'bpw'"),
    ("[quantize]\nbits = [7]\n", "no 7-bit width"),
    ("version = 1\n", "no \\[quantize\\] section"),
    ("[quantize\n", "not valid TOML"),
])
def test_bad_profiles_are_refused_with_one_line(tmp_path, body, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ProfileError, match=message) as err:
        load(path)
    assert "\n" not in str(err.value)

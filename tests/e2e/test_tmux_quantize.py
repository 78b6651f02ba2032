"""End to end: the installed `temper` in tmux (100x30) quantizes the trained fixture through the wizard
by pressing Enter at every step. The defaults come from a small test profile (CPU time), nothing else."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from tmux_driver import Tmux, temper_command

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]

PROFILE = """# e2e: a small pass so the test stays short on CPU
version = 1

[quantize]
target_bpw = 4.5
bits = [2, 4, 8]
group_sizes = [64]
samples = 4
seq_len = 64
"""


def _has(text: str):
    return lambda lines: any(text in line for line in lines)


def test_wizard_with_defaults_on_the_trained_fixture(tmp_path: Path, trained_tiny: Path) -> None:
    home = tmp_path / "home"
    profile = tmp_path / "small.toml"
    profile.write_text(PROFILE)
    term = Tmux(100, 30)
    status = tmp_path / "status"
    env = {"TEMPER_HOME": str(home), "TEMPER_USER_HOST": "e2e@tmux", "HF_HUB_OFFLINE": "1",
           "SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22", "TERM": "xterm-256color"}
    try:
        term.start([*temper_command(), "--model", str(trained_tiny), "--profile", str(profile)], env, status)
        term.wait_for(_has("Palette"), timeout=30)
        for _ in range(20):                       # the first keys may arrive before the app listens
            term.send("F2")
            try:
                term.wait_for(_has("1 · Choose the model"), timeout=1)
                break
            except TimeoutError:
                continue
        term.wait_for(_has("1 · Choose the model"), timeout=5)
        term.wait_for(_has("trained-tiny"), timeout=15)
        for title in ("2 · Goal", "3 · Calibration", "4 · Review"):
            term.send("Enter")
            term.wait_for(_has(title), timeout=15)
        review = term.wait_for(_has("Predicted"), timeout=15)
        assert any("4 × 64 tokens" in line for line in review)
        term.send("Enter")
        term.wait_for(_has("5 · Run"), timeout=15)
        screen = term.wait_for(_has("6 · Result"), timeout=300)
        assert any("Real bpw" in line for line in screen)
        term.send("C-q")
        deadline = time.monotonic() + 10
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        term.kill()
    out = home / "data" / "models" / "trained-tiny-temper-4.5bpw"
    config = json.loads((out / "config.json").read_text())
    assert "quantization" in config
    (record,) = [json.loads(p.read_text()) for p in (home / "data" / "jobs").glob("*[0-9a-f].json")]
    assert record["status"] == "done" and record["result"]["verified"] is True
    assert record["result"]["bpw"] <= 4.5

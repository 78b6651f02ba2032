"""End to end: the installed `temper` in a real terminal (tmux, 100x30): first paint, tabs, help, quit."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from tmux_driver import Tmux, active_tab, temper_command

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]


def test_temper_starts_switches_tabs_and_quits(tmp_path: Path) -> None:
    term = Tmux(100, 30)
    status = tmp_path / "status"
    env = {
        "TEMPER_HOME": str(tmp_path / "home"),
        "TEMPER_USER_HOST": "e2e@tmux",
        "SSH_CONNECTION": "10.0.0.1 50000 10.0.0.2 22",  # as over SSH: no animations
        "HF_HUB_OFFLINE": "1",
        "TERM": "xterm-256color",
    }
    try:
        term.start(temper_command(), env, status)
        screen = term.wait_for(lambda lines: active_tab(lines) == "Library" and any("Palette" in line for line in lines))
        assert "temper" in screen[0] and "e2e@tmux" in screen[0]
        assert active_tab(screen) == "Library"

        # in Chat the message box has the focus: ctrl+pageup/pagedown and F-keys still switch tabs
        steps = [("F2", "Quantize"), ("]", "Layers"), ("]", "Chat"), ("C-NPage", "Performance"),
                 ("C-PPage", "Chat"), ("F5", "Performance"), ("]", "Library"), ("[", "Performance"),
                 ("F1", "Library")]
        for key, expected in steps:
            term.send(key)
            term.wait_for(lambda lines, expected=expected: active_tab(lines) == expected, timeout=15)

        term.send("?")
        term.wait_for(lambda lines: any("app.quit" in line for line in lines), timeout=15)
        term.send("Escape")
        term.wait_for(lambda lines: not any("app.quit" in line for line in lines), timeout=15)
        term.send("F4")                                   # F10 opens help while typing in the message box
        term.wait_for(lambda lines: active_tab(lines) == "Chat", timeout=15)
        term.send("-l", "?]")
        term.wait_for(lambda lines: any("?]" in line for line in lines), timeout=15)
        assert active_tab(term.capture()) == "Chat"
        term.send("F10")
        term.wait_for(lambda lines: any("app.quit" in line for line in lines), timeout=15)
        term.send("Escape")
        term.wait_for(lambda lines: not any("app.quit" in line for line in lines), timeout=15)

        term.send("C-q")
        deadline = time.monotonic() + 10
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not term.alive(), "temper did not exit on ctrl+q"
        assert status.read_text().strip() == "0"
    finally:
        term.kill()

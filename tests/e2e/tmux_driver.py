"""A tiny driver for running the real `temper` in a detached tmux session (tests and benchmarks)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path


def temper_command() -> list[str]:
    script = Path(sys.executable).parent / "temper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "temper.cli.main"]


class Tmux:
    def __init__(self, width: int = 100, height: int = 30) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed")
        self.name = f"temper-{uuid.uuid4().hex[:8]}"
        self.socket = f"temper-test-{os.getpid()}-{self.name}"
        self.width, self.height = width, height

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def start(self, argv: list[str], env: dict[str, str], status_file: Path) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = f"env {exports} {shlex.join(argv)}; echo $? > {shlex.quote(str(status_file))}"
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(self.width), "-y", str(self.height), command)

    def capture(self) -> list[str]:
        out = self.tmux("capture-pane", "-p", "-t", self.name, check=False)
        return out.stdout.splitlines()

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, predicate, timeout: float = 20.0, interval: float = 0.01) -> list[str]:
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = self.capture()
            if predicate(lines):
                return lines
            time.sleep(interval)
        raise TimeoutError("screen never matched; last screen:\n" + "\n".join(lines))

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.name, check=False).returncode == 0

    def kill(self) -> None:
        self.tmux("kill-server", check=False)


def active_tab(lines: list[str]) -> str | None:
    """The label above the highlighted part of the tab underline (between '╸' and '╺')."""
    for row in range(1, len(lines)):
        bar = lines[row]
        if "╸" in bar and "━" in bar:
            start = bar.index("╸") + 1 if not bar.startswith("╸") else 1
            end = bar.find("╺", start)
            label = lines[row - 1][start : end if end > 0 else None].strip()
            return label or None
    return None

"""Time from launch to first paint of `temper` in a real terminal (tmux), against a baseline measured in
the same run: a bare Textual app with a Header and a Footer, started the same way.

    .venv/bin/python docs/benchmarks/startup.py [--runs 7] [--out docs/benchmarks/startup.md]

"First paint" is the first `tmux capture-pane` (polled every 5 ms) that shows the footer's "Quit" hint:
the whole first screen has been drawn. The engine thread is created at mount; no model is loaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from tmux_driver import Tmux, temper_command  # noqa: E402

BASELINE = """
from textual.app import App
from textual.binding import Binding
from textual.widgets import Footer, Header, Static
class Bare(App):
    BINDINGS = [Binding("ctrl+q", "quit", "Quit")]
    def compose(self):
        yield Header()
        yield Static("baseline")
        yield Footer()
Bare().run()
"""


def first_paint(argv: list[str], home: Path) -> float:
    term = Tmux(100, 30)
    env = {"TEMPER_HOME": str(home), "SSH_CONNECTION": "bench", "TERM": "xterm-256color", "HF_HUB_OFFLINE": "1"}
    try:
        start = time.perf_counter()
        term.start(argv, env, home / "status")
        term.wait_for(lambda lines: any("Quit" in line for line in lines), timeout=60, interval=0.005)
        return time.perf_counter() - start
    finally:
        term.kill()


def import_time(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        script = home / "bare.py"
        script.write_text(BASELINE)
        rows: dict[str, list[float]] = {
            "bare Textual app (baseline)": [],
            "temper": [],
            "import textual.app": [],
            "import temper.tui.app": [],
        }
        for _ in range(args.runs):  # interleaved, so background load hits both alike
            rows["bare Textual app (baseline)"].append(first_paint([sys.executable, str(script)], home))
            rows["temper"].append(first_paint(temper_command(), home))
            rows["import textual.app"].append(import_time("textual.app"))
            rows["import temper.tui.app"].append(import_time("temper.tui.app"))
    base = statistics.median(rows["bare Textual app (baseline)"])
    lines = [
        "# Start time to first paint",
        "",
        f"Command: `.venv/bin/python docs/benchmarks/startup.py --runs {args.runs}`  ",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"tmux 100x30, {args.runs} runs each (interleaved), first paint = footer drawn (capture-pane polled "
        f"every 5 ms). Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
        "",
        "| what | median s | min s | max s | × baseline |",
        "|---|---|---|---|---|",
    ]
    for name, values in rows.items():
        med = statistics.median(values)
        ratio = "-" if name.startswith("import") else f"{med / base:.2f}"
        lines.append(f"| {name} | {med:.3f} | {min(values):.3f} | {max(values):.3f} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

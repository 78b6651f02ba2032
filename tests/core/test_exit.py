"""`temper` ends through exit_now: the chosen status, exit handlers run, no native teardown abort."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit, threading, sys
import mlx.core as mx
from temper.core.exit import exit_now
atexit.register(lambda: print("handlers ran", flush=True))
def work():
    a = mx.random.normal((128, 128)); mx.eval(a @ a)
t = threading.Thread(target=work); t.start(); t.join()
print("done", end="")
exit_now(int(sys.argv[1]))
"""


def test_exit_now_keeps_the_status_and_runs_handlers() -> None:
    for code in (0, 3):
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(code)], capture_output=True, text=True, timeout=120)
        assert out.returncode == code, out.stderr
        assert out.stdout == "donehandlers ran\n"  # the work's output, then the exit handlers
        assert "terminate called" not in out.stderr


WITH = """
import sys, threading
import mlx.core as mx
from temper.core.exit import exit_with
def work():
    a = mx.random.normal((128, 128)); mx.eval(a @ a)
def main():
    t = threading.Thread(target=work); t.start(); t.join()
    how = sys.argv[1]
    if how == "status":
        return 4
    if how == "stop":
        raise SystemExit(3)
    if how == "message":
        raise SystemExit("bad flag")
    raise RuntimeError("a bug")
exit_with(main)
"""


def test_exit_with_leaves_through_exit_now_however_main_ends() -> None:
    """A status, a SystemExit raised inside main (a failed benchmark row, argparse) or an uncaught exception:
    each keeps its status and its message, and none reaches the native teardown."""
    for how, code, said in (("status", 4, ""), ("stop", 3, ""), ("message", 1, "bad flag"),
                            ("bug", 1, "RuntimeError: a bug")):
        out = subprocess.run([sys.executable, "-c", WITH, how], capture_output=True, text=True, timeout=120)
        assert out.returncode == code, (how, out.stderr)
        assert said in out.stderr and "terminate called" not in out.stderr, (how, out.stderr)


def test_console_script_points_at_entry() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "temper"]
    assert script.value == "temper.cli.main:entry"

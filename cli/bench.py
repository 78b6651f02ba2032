"""`temper bench`: the Performance tab's headless twin.

    temper bench MODEL [--pp 512,1024] [--tg 128] [-n 3] [--batch 1,2,4,8] [--json OUT] [--md] [--csv]
    temper bench --compare A.json B.json

Progress goes to stderr; the table (Markdown by default, CSV with --csv) to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.bench.settings import BenchSettings
from ..core.errors import TemperError
from .output import print_markdown


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark a model: TTFT, prefill/decode tok/s, memory, roofline",
                       description="Benchmark a model: a prompt × generation matrix repeated n times after a "
                                   "warm-up, continuous batching, and the memory-bandwidth roofline.")
    p.add_argument("model", nargs="?", help="model folder or Hub id in the local cache")
    d = BenchSettings()        # the defaults; a profile's [bench] replaces them, flags replace both
    p.add_argument("--pp", type=_ints, help=f"prompt lengths, comma-separated (default {_csv(d.prompt_lengths)})")
    p.add_argument("--tg", type=_ints, help=f"tokens to generate, comma-separated (default {_csv(d.gen_lengths)})")
    p.add_argument("-n", "--repetitions", type=int, dest="n", help=f"counted runs per shape (default {d.repetitions})")
    p.add_argument("--batch", type=_ints, help="concurrent requests to test, e.g. 1,2,4,8 (default: none)")
    p.add_argument("--batch-pp", type=int, help="prompt length of batch requests (default: first --pp)")
    p.add_argument("--batch-tg", type=int, help="tokens per batch request (default: first --tg)")
    p.add_argument("--kv-bits", type=int, choices=(0, 4, 8),
                   help="KV-cache bits (default: the model's kv_config.json if any, else float; 0 = float)")
    p.add_argument("--no-warmup", action="store_true", help="count the first run too (not recommended)")
    p.add_argument("--no-copy-test", action="store_true", help="skip the measured memory-bandwidth test")
    p.add_argument("--json", metavar="OUT", help="save the full result (with machine info) as JSON")
    p.add_argument("--md", action="store_true", help="print the Markdown itself even on a terminal (there it is drawn as tables; "
                   "piped, Markdown is the default)")
    p.add_argument("--csv", action="store_true", help="print CSV instead of Markdown")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two saved JSON results")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run, on_interrupt="no result saved")


def run(args: argparse.Namespace) -> int:
    from ..core.bench.results import BenchResult, compare_markdown

    if args.compare:
        a, b = (BenchResult.load(x) for x in args.compare)
        text = compare_markdown(a, b, names=(Path(args.compare[0]).stem, Path(args.compare[1]).stem))
        if args.md:
            print(text, end="")
        else:
            print_markdown(text)
        return 0
    if not args.model:
        raise TemperError("bench needs a MODEL (folder or cached Hub id), or --compare A.json B.json")
    if args.json and Path(args.json).is_dir():
        raise TemperError(f"--json {args.json} is a folder: give a file name")
    config = config_from_args(args)
    from ..core.engine.loader import resolve, validate

    path = resolve(args.model)
    config.check_context(validate(path), path.name)   # before loading anything
    result = bench(args.model, config, quiet=args.quiet)
    if args.json:
        result.save(args.json)
        if not args.quiet:
            print(f"saved {args.json}", file=sys.stderr)
    if args.csv or args.md:
        print(result.to_csv() if args.csv else result.to_markdown(), end="")
    else:
        print_markdown(result.to_markdown())
    return 0


def _csv(values: list[int]) -> str:
    return ",".join(map(str, values))


def settings_from(args: argparse.Namespace, profile=None) -> BenchSettings:
    """The profile's [bench] (`temper --profile P bench`), then the flags given, over the defaults."""
    values = dict(profile.section("bench")) if profile is not None else {}
    given = {"prompt_lengths": args.pp, "gen_lengths": args.tg, "repetitions": args.n, "batch_sizes": args.batch,
             "kv_bits": args.kv_bits}
    values.update({k: v for k, v in given.items() if v is not None})
    return BenchSettings(**values)


def config_from_args(args: argparse.Namespace):
    return settings_from(args, getattr(args, "loaded_profile", None)).config(
        batch_pp=args.batch_pp, batch_tg=args.batch_tg, warmup=not args.no_warmup, bandwidth=not args.no_copy_test)


def bench_line(event) -> str:
    """The step and the last run's figures, e.g. 'pp512 tg128  tg 41.3 tok/s  ttft 52.0 ms'."""
    line = event.message
    if "decode_tps" in event.data:
        line += f"  tg {event.data['decode_tps']:.1f} tok/s"
    if "ttft" in event.data:
        line += f"  ttft {event.data['ttft'] * 1000:.1f} ms"
    if "measured_gbs" in event.data:
        line += f"  {event.data['measured_gbs']:.1f} GB/s"
    return line


def bench(model: str, config, *, quiet: bool = False, engine=None):
    """Load `model` and run the suite on the engine thread, printing progress to stderr."""
    from ..core.bench.runner import BenchProgress, bench_job
    from ..core.engine import get_engine
    from .progress import ProgressView

    engine = engine or get_engine()
    job = engine.submit(bench_job(model, config), kind="bench")
    with ProgressView(quiet) as show:
        for event in job.events():   # Ctrl-C: temper.cli.main cancels the job and exits 130
            if isinstance(event, BenchProgress):
                show(event.phase, event.done, event.total, bench_line(event))
    return job.result()

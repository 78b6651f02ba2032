"""`temper quantize MODEL [--recipe NAME | --bpw X | --size-gb G] ...`: plan, write, verify, evaluate (the
headless twin of the Quantize tab). Its flags are the fields of core.quant.request.QuantRequest; a profile's
[quantize] section (`temper --profile FILE quantize ...`) fills what the flags leave out. Runs the one core
entry, `core.quant.pipeline.quantize`, on the engine thread under a job record; `--resume JOB` runs an
unfinished one again (saved scores are reused)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core.quant.request import QuantRequest, QuantSettings
from . import flags
from .output import print_capability, print_table

RUN_FIELDS = ("output", "overwrite", "pins", "min_bits", "max_bits", "sensitivity", "dtype", "plan_only")
SETTINGS_FIELDS = tuple(QuantSettings.model_fields)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="quantize a model (recipe or budgeted mixed precision) and verify it",
                       description="Quantize MODEL into a standard MLX folder that mlx-lm loads, then verify "
                                   "every tensor against the plan. Budgets are hard caps on REAL bits per "
                                   "weight (scales, biases and unquantized tensors included).")
    p.add_argument("model", nargs="?", help="model folder or Hub id (from the local cache)")
    what = p.add_mutually_exclusive_group()
    flags.add_flags(what, QuantRequest, ("target_bpw", "size_gb"))
    flags.add_flags(p, QuantRequest, [f for f in SETTINGS_FIELDS if f not in ("target_bpw", "size_gb")],
                    aliases={"eval_tasks": ["--eval-tasks"], "eval_limit": ["--eval-limit"]})
    flags.add_flags(p, QuantRequest, RUN_FIELDS)
    p.add_argument("--resume", nargs="?", const="last", metavar="JOB",
                   help="run an unfinished quantize job again (default: the latest one)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result (no progress)")
    p.set_defaults(func=run, on_interrupt="nothing written (the half-written output folder is removed); "
                                          "measured scores are kept: `temper quantize --resume` goes on")


def request_from(args: argparse.Namespace, profile: Any = None) -> QuantRequest:
    """Profile section, then the flags the user gave, then the model: one QuantRequest."""
    values = dict(profile.section("quantize")) if profile is not None else {}
    values.update(flags.given(args, QuantRequest, (*SETTINGS_FIELDS, *RUN_FIELDS)))
    if "size_gb" in flags.given(args, QuantRequest, ("size_gb",)):
        values.pop("target_bpw", None)          # a size on the command line replaces a profile's bpw
    if "target_bpw" in flags.given(args, QuantRequest, ("target_bpw",)):
        values.pop("size_gb", None)
    return flags.build(QuantRequest, {**values, "model": args.model or ""})


def last_unfinished() -> str:
    from ..core import jobs
    from ..core.errors import QuantError

    records = [r for r in jobs.all_jobs("quantize") if r.status != "done"
               and (r.status != "running" or r.interrupted) and not (r.error or "").startswith("discarded")]
    if not records:
        raise QuantError("no unfinished quantize job to resume")
    return max(records, key=lambda r: r.updated).id


def run(args: argparse.Namespace) -> int:
    from ..core.engine import get_engine
    from ..core.errors import QuantError
    from ..core.quant.pipeline import quantize, resume
    from .progress import follow

    if args.resume is not None:
        if args.model:
            raise QuantError("--resume takes the job's own request: give no MODEL")
        job_id = last_unfinished() if args.resume == "last" else args.resume
        job = get_engine().submit(lambda ctx: resume(ctx, job_id), kind="quantize")
    else:
        if not args.model:
            raise QuantError("say which model to quantize (or --resume JOB)")
        request = request_from(args, getattr(args, "loaded_profile", None))
        request.validate()
        job = get_engine().submit(lambda ctx: quantize(ctx, request), kind="quantize")
    result = follow(job, quiet=args.quiet or args.json)
    if args.json:
        data = result.to_dict()
        if result.out is None:
            data["entries"] = result.plan.to_dict()["entries"]
        print(json.dumps(data, indent=1))
        return 0
    if result.out is None:
        print_table(result.plan.TABLE_HEADER, result.plan.rows(), right=result.plan.TABLE_RIGHT)
    print(result.plan.summary_text())
    if result.verify is not None:
        print(result.verify.text())
        print(f"wrote {result.out}")
    if result.quality:
        from ..core.quant.evaluate import QUALITY_HEADER, QUALITY_RIGHT, quality_rows, reference_note

        print_table(QUALITY_HEADER, quality_rows(result.quality), right=QUALITY_RIGHT)
        if note := reference_note(result.quality):
            print(note)
    if result.capability:
        print_capability(result.capability)
    return 0

"""`temper quantize MODEL --recipe NAME | --bpw X | --size-gb G ...`: plan, write, verify (headless twin of
the Quantize tab). Runs `temper.core.quant.job.quantize_job` on the engine thread and prints its phases."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import QuantError


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, not {text!r}") from exc


def _words(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="quantize a model (recipe or budgeted mixed precision) and verify it",
                       description="Quantize MODEL into a standard MLX folder that mlx-lm loads, then verify "
                                   "every tensor against the plan. Budgets are hard caps on REAL bits per "
                                   "weight (scales, biases and unquantized tensors included).")
    p.add_argument("model", help="model folder or Hub id (from the local cache)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--bpw", type=float, help="budget: real bits per weight (hard cap)")
    what.add_argument("--size-gb", type=float, help="budget: size of all tensors in GB (1e9 bytes, hard cap)")
    p.add_argument("--recipe", help="temper, uniform-B[-gN], oq2..oq8, optiq-like, unsloth-B, mixed_3_6, ...")
    p.add_argument("--bits", type=_ints, help="widths to allow, e.g. 2,3,4,5,6,8")
    p.add_argument("--group-sizes", type=_ints, help="group sizes to allow, e.g. 32,64,128")
    p.add_argument("--modes", type=_words, help="modes: affine,mxfp4,nvfp4,mxfp8")
    p.add_argument("--protect", nargs="+", default=[], metavar="PATTERN[:BITS]",
                   help="keep matching tensors float (or at ≥ BITS), e.g. lm_head '*embed*:6'")
    p.add_argument("--pin", nargs="+", default=[], metavar="PATH=KEY", help="fix a tensor, e.g. lm_head=affine:8b:g64")
    p.add_argument("--min-bits", type=int)
    p.add_argument("--max-bits", type=int)
    p.add_argument("--sensitivity", type=Path, help="saved sensitivity table (JSON) to allocate from")
    p.add_argument("--sensitivity-mode", choices=["fast", "hybrid", "exact"], default="hybrid",
                   help="how to measure scores when no table is given (default hybrid: Fisher estimate for "
                        "all tensors, exact KL for the most damaging quarter); a saved table is reused")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"],
                   help="cast before quantizing (default: the source's dtype; scales are stored in it)")
    p.add_argument("--awq", action=argparse.BooleanOptionalAction, default=False,
                   help="AWQ-style pre-scaling folded into the norms (llama/mistral/qwen/gemma3/gemma4)")
    p.add_argument("--gptq", action=argparse.BooleanOptionalAction, default=True,
                   help="error-compensated (GPTQ) rounding on calibration activations, block by block "
                        "(default on; --no-gptq: round to nearest)")
    p.add_argument("--clip", action=argparse.BooleanOptionalAction, default=True,
                   help="search each group's scale/bias over shrink factors for the least output error "
                        "(default on)")
    p.add_argument("-o", "--out", type=Path, help="output folder (default: temper's models folder)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--eval", action="store_true",
                   help="measure held-out KL against the base after writing (recorded in the model card)")
    p.add_argument("--eval-text", type=Path, help="evaluation text for --eval (default: temper's held-out set)")
    p.add_argument("--plan-only", action="store_true", help="print the plan, write nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..core.engine import Progress, get_engine
    from ..core.quant.job import QuantizeRequest, quantize_job

    if args.recipe is None and args.bpw is None and args.size_gb is None:
        raise QuantError("say what to make: --recipe NAME, --bpw X or --size-gb G")
    req = QuantizeRequest(
        model=args.model, recipe=args.recipe, bpw=args.bpw, size_gb=args.size_gb, bits=args.bits,
        group_sizes=args.group_sizes, modes=args.modes, protect=args.protect, pins=args.pin,
        min_bits=args.min_bits, max_bits=args.max_bits, sensitivity=args.sensitivity,
        sensitivity_mode=args.sensitivity_mode, out=args.out,
        plan_only=args.plan_only, force=args.force, dtype=args.dtype, awq=args.awq,
        gptq=args.gptq, clip=args.clip)
    if args.eval or args.eval_text:
        from mlx_lm.utils import load_tokenizer

        from ..core.engine.loader import resolve
        from .eval import eval_chunks

        req.eval_chunks, req.eval_about = eval_chunks(load_tokenizer(resolve(args.model)), text=args.eval_text,
                                              count=16, length=256)
    job = get_engine().submit(lambda ctx: quantize_job(ctx, req), kind="quantize")
    for event in job.events():
        if isinstance(event, Progress) and not args.json and (event.done == 0 or event.phase == "sensitivity"):
            print(f"[{event.phase}] {event.message}".rstrip(), file=sys.stderr)
    result = job.result()
    if args.json:
        data = result.to_dict()
        if args.plan_only:
            data["entries"] = result.plan.to_dict()["entries"]
        print(json.dumps(data, indent=1))
        return 0
    if args.plan_only:
        print(result.plan.table())
    print(result.plan.summary_text())
    if result.verify is not None:
        print(result.verify.text())
        print(f"wrote {result.out}")
    if result.quality:
        from ..core.quant.evaluate import format_table

        print(format_table(result.quality))
    return 0

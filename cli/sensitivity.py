"""`temper sensitivity MODEL`: measure (or reuse) the per-tensor ΔKL table and print it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from ..core.errors import QuantError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sensitivity",
        help="measure how much quantizing each tensor hurts the model (KL of next-token distributions)",
        description="For every quantizable tensor and candidate (bits x group size x mode), the predicted "
                    "ΔKL when only that tensor is quantized. Saved and reused; an interrupted run resumes.",
    )
    p.add_argument("model", help="model folder or Hub id in the local cache (unquantized)")
    p.add_argument("--bits", default="2,3,4,5,6,8", help="affine widths (default: 2,3,4,5,6,8)")
    p.add_argument("--group-sizes", default="64", help="affine group sizes from 32,64,128 (default: 64)")
    p.add_argument("--modes", default="affine", help="affine,mxfp4,nvfp4,mxfp8 (default: affine)")
    p.add_argument("--mode", default="hybrid", choices=("fast", "exact", "hybrid"),
                   help="fast: Fisher estimate; exact: one forward per tensor x candidate; hybrid "
                        "(default): estimate, then exact for the most damaging fraction")
    p.add_argument("--fraction", type=float, default=0.25, help="hybrid: share of tensors measured exactly")
    p.add_argument("--samples", type=int, default=16, help="calibration chunks (default 16)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per chunk (default 256)")
    p.add_argument("--calibration", help="your own text: .txt, or .jsonl/.json with text or messages")
    p.add_argument("--out", help="where to save the table (default: temper's data folder)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--streamed", action="store_true", default=None,
                       help="read one block at a time from disk (exact measure; default: only when the "
                            "model in fp32 does not fit the memory available)")
    where.add_argument("--in-memory", dest="streamed", action="store_false",
                       help="load the whole model even if it looks too big")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run, on_interrupt="finished tensors are saved: run the same command to resume")


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise QuantError(f"--{what} takes comma-separated integers, not {text!r}") from exc


def run(args: argparse.Namespace) -> int:
    from ..core.engine.loader import resolve, validate
    from ..core.engine.thread import get_engine
    from ..core.quant.candidates import grid
    from ..core.quant.sensitivity import LayerScored, run_sensitivity

    cands = grid(bits=_ints(args.bits, "bits"), group_sizes=_ints(args.group_sizes, "group-sizes"),
                 modes=[m.strip() for m in args.modes.split(",") if m.strip()])
    validate(resolve(args.model))       # one line for a broken folder, before anything starts
    engine = get_engine()
    job = engine.submit(lambda ctx: run_sensitivity(
        ctx, args.model, cands, args.calibration, mode=args.mode, out=args.out, samples=args.samples,
        seq_len=args.seq_len, fraction=args.fraction, streamed=args.streamed), kind="sensitivity")
    progress = sys.stderr.isatty()
    try:
        for event in job.events():   # Ctrl-C: temper.cli.main cancels the job and exits 130
            if isinstance(event, LayerScored) and progress:
                print(f"\r[{event.done}/{event.total}] {event.method:8s} {event.path[:60]:60s}",
                      end="", file=sys.stderr, flush=True)
    finally:
        if progress:
            print(file=sys.stderr)
    table = job.result()
    if args.json:
        print(json.dumps(asdict(table), indent=1))
    else:
        print(format_table(table))
    return 0


def format_table(table: Any) -> str:
    """Tensor rows x candidate columns of ΔKL (nats/token); '~' marks an estimate, '-' a skipped one."""
    keys = table.candidates
    from ..core.quant.candidates import Candidate

    heads = [str(Candidate.from_key(k)) for k in keys]
    width = max(24, *(len(t.path) for t in table.tensors))
    lines = [f"{'tensor':{width}s} {'params':>9s} " + " ".join(f"{h:>10s}" for h in heads)]
    for t in table.tensors:
        cells = []
        for k in keys:
            if k in t.scores:
                mark = "~" if t.methods.get(k) == "estimate" else " "
                cells.append(f"{mark}{t.scores[k]:9.2e}")
            else:
                cells.append(f"{'-':>10s}")
        lines.append(f"{t.path:{width}s} {t.params:9d} " + " ".join(cells))
    meta = table.meta
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in meta.get("seconds", {}).items())
    calib = meta.get("calibration", {})
    lines += [
        "",
        "ΔKL = KL(reference || quantized) in nats per token when only that tensor is quantized; "
        "~ = estimate, - = does not fit",
        f"mode {meta.get('mode')}; calibration {calib.get('name')} {calib.get('samples')}x{calib.get('seq_len')} "
        f"tokens (sha256 {table.calibration_hash[:12]})",
        ("reused saved table, no forward pass" if meta.get("reused") else
         (f"streamed, {meta.get('block_loads')} block reads" if meta.get("streamed") else
          f"{meta.get('forward_passes')} forward passes") + f"; {secs}; peak MLX memory "
         f"{meta.get('peak_mlx_bytes', 0) / 2**20:.0f} MiB, peak RSS {meta.get('peak_rss_bytes', 0) / 2**20:.0f} MiB"),
        f"saved: {meta.get('file')}",
    ]
    return "\n".join(lines)

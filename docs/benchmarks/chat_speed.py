"""Chat decode speed and peak memory: temper's chat path vs bare mlx-lm on the same model folder.

Each run is its own subprocess (so peak memory is that path's alone), alternating bare / temper and
taking the ratio within each pair. bare = `mlx_lm.load(folder)` + `mlx_lm.stream_generate`, as
`mlx_lm generate` does; temper = `chat_job` through the engine (chat template, prompt-cache session,
events per token, stats), loading the folder as the app does (core/accel/compute: on a CPU with a fast
BLAS a quantized model runs "mixed"). Both: same rendered prompt, greedy, a 16-token warm-up first.
decode tok/s = (tokens - 1) / (last token time - first token time), as mlx-lm reports it.

    python docs/benchmarks/chat_speed.py                         # the demo model (temper demo's folder)
    python docs/benchmarks/chat_speed.py --model PATH --reps 3 --tokens 128 --out docs/benchmarks/chat_speed.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short story about a lighthouse keeper who collects shells."},
]


def one_bare(path: Path, tokens: int) -> dict:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tok = load(str(path))
    prompt = tok.apply_chat_template(MESSAGES, add_generation_prompt=True)
    for _ in stream_generate(model, tok, prompt, max_tokens=16, sampler=make_sampler(temp=0.0)):
        pass
    mx.reset_peak_memory()
    cpu, out = [], []
    for resp in stream_generate(model, tok, prompt, max_tokens=tokens, sampler=make_sampler(temp=0.0)):
        cpu.append(time.process_time())
        out.append(resp.token)
        last = resp
    return {"decode_tps": last.generation_tps, "prefill_tps": last.prompt_tps, "peak_gb": mx.get_peak_memory() / 1e9,
            "cpu_ms": 1000 * (cpu[-1] - cpu[0]) / (len(cpu) - 1), "tokens": out, "compute": "mlx_lm.load"}


def one_temper(path: Path, tokens: int) -> dict:
    from temper.core.engine import Engine
    from temper.core.engine.generate import ChatRequest, TokenEvent, chat_job
    from temper.core.engine.sampling import SamplingSettings

    engine = Engine(name="bench-engine")

    def chat(n: int):
        engine.run(lambda ctx: ctx.state.pop("chat_session", None))
        cpu: list[float] = []
        remove = engine.add_listener(
            lambda e: cpu.append(time.process_time()) if isinstance(e, TokenEvent) and e.token >= 0 else None)
        request = ChatRequest(str(path), MESSAGES, SamplingSettings(temperature=0.0, max_tokens=n), effort="none")
        job = engine.submit(chat_job(request), kind="chat")
        for _ in job.events():
            pass
        remove()
        return job.result(), cpu

    chat(16)
    result, cpu = chat(tokens)
    from temper.core.engine.models import ensure_loaded

    mode = engine.run(lambda ctx: ensure_loaded(ctx.state, path).extra["compute"].mode)
    engine.shutdown()
    s = result.stats
    return {"decode_tps": s.decode_tps, "prefill_tps": s.prefill_tps, "peak_gb": s.peak_memory_gb,
            "cpu_ms": 1000 * (cpu[-1] - cpu[0]) / max(len(cpu) - 1, 1), "tokens": result.tokens, "compute": mode}


def run_one(which: str, path: Path, tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--one", which, "--model", str(path), "--tokens", str(tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{which} run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model folder (default: the demo model, prepared if needed)")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--one", choices=["bare", "temper"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:  # a child run: fast BLAS as the `temper` command gets it, then one JSON line
        from temper.core.accel.preload import ensure_fast_blas

        ensure_fast_blas()
        print(json.dumps((one_bare if args.one == "bare" else one_temper)(args.model, args.tokens)))
        return 0
    path = args.model
    if path is None:
        from temper.core.library.demo import demo_folder, is_ready

        if not is_ready():
            raise SystemExit("the demo model is not prepared: run `temper demo` first (or pass --model)")
        path = demo_folder()
    load_before = _load()
    runs: dict[str, list[dict]] = {"bare": [], "temper": []}
    ratios, mem_ratios, cpu_ratios = [], [], []
    for i in range(args.reps):  # pairs, alternating which path goes first
        for which in (("bare", "temper") if i % 2 == 0 else ("temper", "bare")):
            runs[which].append(run_one(which, path, args.tokens))
            print(which, {k: v for k, v in runs[which][-1].items() if k != "tokens"}, file=sys.stderr)
        ratios.append(runs["temper"][-1]["decode_tps"] / runs["bare"][-1]["decode_tps"])
        mem_ratios.append(runs["temper"][-1]["peak_gb"] / runs["bare"][-1]["peak_gb"])
        cpu_ratios.append(runs["bare"][-1]["cpu_ms"] / runs["temper"][-1]["cpu_ms"])
    load_after = _load()
    import mlx.core as mx

    def row(name: str, rs: list[dict]) -> str:
        d = [r["decode_tps"] for r in rs]
        return (f"| {name} | {statistics.median(d):.2f} | {min(d):.2f} | {max(d):.2f} | "
                f"{statistics.median(r['prefill_tps'] for r in rs):.1f} | "
                f"{statistics.median(r['cpu_ms'] for r in rs):.1f} | {max(r['peak_gb'] for r in rs):.3f} | "
                f"{rs[0]['compute']} |")

    same = all(t["tokens"] == b["tokens"] for t, b in zip(runs["temper"], runs["bare"], strict=True))
    command = "python docs/benchmarks/chat_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Chat decode speed and memory: temper vs bare mlx-lm ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", f"- command: `{command.strip()}`",
             f"- model: `{path.name}`" + (" (temper demo's folder: SmolLM2-135M-Instruct, 4-bit g32, 8-bit embeddings)"
                                          if args.model is None else ""),
             f"- machine: {platform.machine()} {platform.system()}, mlx {mx.__version__}, CPU",
             f"- {args.tokens} new tokens, greedy, {args.reps} pairs, each run its own process after a 16-token warm-up",
             f"- load average (`uptime`): before {load_before}; after {load_after}", "",
             "| path | decode tok/s (median) | min | max | prefill tok/s | CPU ms / token | peak memory GB (max) | compute |",
             "|---|---:|---:|---:|---:|---:|---:|---|",
             row("bare mlx-lm (load + stream_generate)", runs["bare"]), row("temper chat_job", runs["temper"]), "",
             f"**decode ratio temper / bare: {statistics.median(ratios):.3f}** (median of pairs: "
             f"{', '.join(f'{r:.3f}' for r in ratios)}); **peak memory ratio: {max(mem_ratios):.3f}** (worst pair); "
             f"same greedy tokens: {same}", "",
             f"**CPU-cost ratio bare / temper: {statistics.median(cpu_ratios):.3f}** (median of pairs: "
             f"{', '.join(f'{r:.3f}' for r in cpu_ratios)}): CPU time per decoded token, all threads; 1.0 = temper "
             "costs what bare mlx-lm costs per token, the decode ratio on a machine with the cores to itself. "
             "Far less sensitive than wall time to other processes on a shared machine.", "",
             "Peak memory is MLX's (`mx.get_peak_memory`, reset after the warm-up), as `mlx_lm generate` prints it. "
             "CPU ms / token counts all threads of the process (time spent descheduled by other processes is "
             "not counted). On a shared machine the min/max spread is the noise floor.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

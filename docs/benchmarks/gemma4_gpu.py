"""Gemma-4 end to end on a GPU: random-weight E2B-shaped and 31B-shaped models through temper.

Steps per shape, each printed with its time as it runs, the .md (and a .json) rewritten after every step
so a run cut short by a time limit still leaves the figures it reached:
1. build: random bf16 weights in mlx-lm's layout, a 1024-token BPE tokenizer (the model's vocab stays 262144);
2. sensitivity: temper's fast pass (Fisher estimate; few calibration samples: `--samples` x `--seq-len`);
3. quantize at 4.5 bpw (`--bpw`): recipe `temper` (KL knapsack on that table) through plan -> write -> verify,
   round-to-nearest (GPTQ and the clip search are off here to cap the time; said in the output);
4. bench bf16 vs quantized: temper's suite, pp512 + tg`--tg`, one counted run after one warm-up;
5. chat once on the quantized model with `--effort low` (greedy);
6. KV cache after a `--kv-context`-token prompt (float vs 8-bit vs 4-bit, each measured once after a short
   warm-up): bytes, decode speed, TTFT, peak memory;
7. drafter: greedy chat with the self-drafter (3-bit copy) vs none: acceptance, identical tokens.
A step that fails is recorded with its error and the next one runs; past `--budget` seconds the remaining
steps are skipped (and listed as such).

    python docs/benchmarks/gemma4_gpu.py --work /tmp/g4gpu --out docs/benchmarks/gemma4_gpu.md --shapes e2b
    python docs/benchmarks/gemma4_gpu.py --work /tmp/g4gpu --out docs/benchmarks/gemma4_gpu_31b.md --shapes 31b
    # CPU check of the whole script on tiny shapes (hidden 128, 6 layers, vocab 1024):
    python docs/benchmarks/gemma4_gpu.py --work /tmp/g4tiny --out /tmp/g4tiny/out.md --tiny --bpw 5 --kv-context 512 --tg 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

E2B = {"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "max_position_embeddings": 131072}
G31B = {"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "hidden_size": 5376,
        "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 256, "intermediate_size": 21504,
        "num_kv_shared_layers": 0, "hidden_size_per_layer_input": 0, "sliding_window": 1024,
        "use_double_wide_mlp": False, "max_position_embeddings": 131072}
TINY = {"hidden_size": 128, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
        "global_head_dim": 64, "intermediate_size": 256, "vocab_size": 1024, "vocab_size_per_layer_input": 1024,
        "sliding_window": 32}
TINY_E2B = {**TINY, "num_hidden_layers": 6, "num_kv_shared_layers": 2, "hidden_size_per_layer_input": 16,
            "layer_types": ["sliding_attention", "sliding_attention", "full_attention"] * 2}
STEPS = ("build", "sensitivity", "quantize", "bench bf16", "bench quantized", "chat", "kv", "drafter")


def build(out: Path, config: dict, layers: int | None) -> dict:
    from temper.core.library.synthetic import save_random

    config = dict(config)
    if layers:
        config["num_hidden_layers"] = layers
        pattern = ["sliding_attention"] * 5 + ["full_attention"]
        config["layer_types"] = (pattern * (layers // 6 + 1))[:layers]
        config["layer_types"][-1] = "full_attention"
    if (out / "config.json").exists():
        return json.loads((out / "config.json").read_text())
    return save_random(out, config)


def request(src: Path, dst: Path, args, table: Path | None):
    from temper.core.quant.request import QuantRequest

    return QuantRequest(model=str(src), output=str(dst), overwrite=True, recipe="temper", target_bpw=args.bpw,
                        bits=[2, 3, 4, 5, 6, 8], group_sizes=[64], samples=args.samples, seq_len=args.seq_len,
                        sensitivity_mode="fast", gptq=False, clip=False, evaluate=False,
                        sensitivity=None if table is None else str(table))


def sensitivity(ctx, src: Path, table: Path, args) -> dict:
    from temper.core.quant.sensitivity import run_sensitivity

    req = request(src, table.parent / "unused", args, None)
    t = run_sensitivity(ctx, src, req.scored_candidates(), None, mode="fast", out=table,
                        samples=args.samples, seq_len=args.seq_len)
    return {"mode": t.meta.get("mode"), "tensors": len(t.tensors), "candidates": len(t.candidates),
            "file": str(table)}


def quantize(ctx, src: Path, dst: Path, table: Path, args) -> dict:
    from temper.core.quant.pipeline import quantize as run

    res = run(ctx, request(src, dst, args, table if table.exists() else None))
    summary = res.plan.summary()
    widths = ", ".join(f"{k}: {v['tensors']} tensors" for k, v in summary.get("widths", {}).items())
    return {"bpw": res.verify.real_bpw, "bytes": res.verify.tensor_bytes, "phases": res.seconds,
            "plan": widths + "".join(f"; {n}" for n in summary.get("notes", [])), "from_table": table.exists()}


def bench(ctx, folder: Path, tg: int) -> dict:
    from temper.core.bench.runner import BenchConfig, run_suite
    from temper.core.engine.models import ensure_loaded

    lm = ensure_loaded(ctx.state, folder, keep=1)
    result = run_suite(ctx, lm, BenchConfig(pp=[512], tg=[tg], n=1, bandwidth=False, kv_bits=0))
    st = result.rows[0].stats
    return {"ttft_ms": st["ttft"].mean * 1000, "prefill_tps": st["prefill_tps"].mean,
            "decode_tps": st["decode_tps"].mean, "peak_gb": st["peak_memory"].mean / 1e9,
            "weight_gb": result.model["weight_bytes"] / 1e9}


def kv(ctx, folder: Path, context: int, log) -> dict:
    from temper.core.bench.prompts import PromptMaker
    from temper.core.bench.runner import timed_request
    from temper.core.engine.kv_cache import KVPlan
    from temper.core.engine.kv_config import kv_group_size, n_caches
    from temper.core.engine.models import ensure_loaded

    lm = ensure_loaded(ctx.state, folder, keep=1)
    n, gs = n_caches(lm.model), kv_group_size(lm.model)
    maker = PromptMaker(1000, set(), 1)
    out = {}
    for name, plan in (("float", None), ("8-bit", KVPlan.uniform(n, 8, gs)), ("4-bit", KVPlan.uniform(n, 4, gs))):
        t0 = time.perf_counter()
        timed_request(ctx, lm.model, maker.make(256), 4, plan)  # warm-up: this cache's kernels
        t, _ = timed_request(ctx, lm.model, maker.make(context), 16, plan)
        out[name] = {"kv_mb": t.kv_bytes / 2**20, "decode_tps": t.decode_tps, "ttft_s": t.ttft,
                     "peak_gb": t.peak_memory / 1e9}
        log(f"    kv {name}: {time.perf_counter() - t0:.1f} s")
    return out


def chat(ctx, folder: Path, drafter: str | None, tokens: int):
    from temper.core.engine.generate import ChatRequest, run_chat
    from temper.core.engine.sampling import SamplingSettings

    ctx.state.pop("chat_session", None)
    req = ChatRequest(str(folder), [{"role": "user", "content": "Explain the sliding window in one line."}],
                      SamplingSettings(temperature=0.0, max_tokens=tokens), effort="low", drafter=drafter, kv_bits=0)
    return run_chat(ctx, req)


def drafter(ctx, folder: Path, tokens: int) -> dict:
    plain = chat(ctx, folder, None, tokens)
    spec = chat(ctx, folder, "self", tokens)
    return {"accepted": spec.stats.accepted, "drafted": spec.stats.drafted, "identical": spec.tokens == plain.tokens,
            "tokens": len(plain.tokens), "decode_tps": spec.stats.decode_tps, "plain_tps": plain.stats.decode_tps}


def describe(full: dict, layers: int | None) -> str:
    return (f"{full['num_hidden_layers']} layers" + (" **of 60** (cut to fit the time limit)" if layers else "")
            + f", hidden {full['hidden_size']}, {full['num_attention_heads']} heads / "
            f"{full['num_key_value_heads']} KV heads, head dim {full['head_dim']} (full layers "
            f"{full.get('global_head_dim')}), window {full['sliding_window']}, "
            f"{full.get('num_kv_shared_layers', 0)} KV-shared layers, vocab {full['vocab_size']}")


def render(shape: str, f: dict, args) -> list[str]:
    """The section for one shape from whatever steps it has reached."""
    lines = [f"## {shape.upper()}-shaped: {f.get('desc', '(not built)')}", "",
             "| step | seconds | result |", "|---|---:|---|"]
    for name in STEPS:
        s = f["steps"].get(name) or {"status": "not reached", "seconds": None}
        seconds = "" if s["seconds"] is None else f"{s['seconds']:.1f}"
        lines.append(f"| {name} | {seconds} | {s['status']} |")
    lines.append("")
    q = f.get("quantize")
    if q:
        lines += [f"- quantized at a {args.bpw} bpw budget (recipe `temper`, fast sensitivity on {args.samples}x"
                  f"{args.seq_len} calibration tokens{'' if q['from_table'] else ', table missing: measured again'}"
                  f"; round-to-nearest: GPTQ and clip search off to cap the time): **{q['bpw']:.3f} bpw** real "
                  f"({q['bytes'] / 1e9:.2f} GB of tensors); plan: {q['plan']}", ""]
    rows = [(n, f[n]) for n in ("bf16", "quantized") if f.get(n)]
    if rows:
        lines += [f"| model | weights GB | TTFT ms (pp512) | prefill tok/s | decode tok/s (tg{args.tg}) | peak GB |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {n} | {b['weight_gb']:.2f} | {b['ttft_ms']:.1f} | {b['prefill_tps']:.0f} | "
                  f"{b['decode_tps']:.1f} | {b['peak_gb']:.2f} |" for n, b in rows]
        if len(rows) == 2:
            lines.append(f"| quantized / bf16 | | | | **{f['quantized']['decode_tps'] / f['bf16']['decode_tps']:.2f}x** | |")
        lines.append("")
    c = f.get("chat")
    if c:
        lines += [f"- chat (quantized model, `effort low`, greedy, {c['tokens']} tokens): TTFT "
                  f"{c['ttft_s'] * 1000:.0f} ms (first turn, model load included), decode {c['decode_tps']:.1f} tok/s"
                  + (f"; notes: {'; '.join(c['notes'])}" if c["notes"] else ""), ""]
    k = f.get("kv")
    if k:
        lines += [f"KV cache after a {args.kv_context}-token prompt + 16 decoded tokens (quantized model, one "
                  "measured run each):", "", "| cache | KV MiB | vs float | decode tok/s | TTFT s | peak GB |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {n} | {v['kv_mb']:.1f} | {v['kv_mb'] / k['float']['kv_mb']:.3f}x | {v['decode_tps']:.1f} | "
                  f"{v['ttft_s']:.2f} | {v['peak_gb']:.2f} |" for n, v in k.items()]
        lines.append("")
    d = f.get("drafter")
    if d:
        lines += [f"- self-drafter (3-bit copy, 3 draft tokens) on the quantized model, {d['tokens']} greedy tokens: "
                  f"accepted {d['accepted']}/{d['drafted']} = {d['accepted'] / max(d['drafted'], 1):.1%}; tokens "
                  f"identical to no drafter: **{d['identical']}**; {d['decode_tps']:.1f} tok/s with vs "
                  f"{d['plain_tps']:.1f} without (random weights: acceptance says little about a trained model)", ""]
    return lines


def run_shape(engine, shape: str, args, f: dict, log, save, t_start: float) -> None:
    """The steps for one shape, in order; `f` (this shape's figures) and the .md are updated after each."""
    config, layers = (E2B, None) if shape == "e2b" else (G31B, args.layers_31b)
    if args.tiny:
        config = {**config, **(TINY_E2B if shape == "e2b" else {**TINY, "num_key_value_heads": 2})}
    src, dst, table = args.work / f"{shape}-bf16", args.work / f"{shape}-q", args.work / f"{shape}-sens.json"

    def step(name: str, fn, needs: tuple[str, ...] = ()) -> object:
        missing = [n for n in needs if f["steps"].get(n, {}).get("status", "").split(" ")[0] != "ok"]
        out = None
        if missing:
            f["steps"][name] = {"status": f"skipped: {', '.join(missing)} did not finish", "seconds": None}
        elif time.perf_counter() - t_start > args.budget:
            f["steps"][name] = {"status": f"skipped: past the {args.budget:.0f} s budget", "seconds": None}
        else:
            log(f"{shape} {name} ...")
            t = time.perf_counter()
            try:
                out = engine.run(fn)
                f["steps"][name] = {"status": "ok", "seconds": time.perf_counter() - t}
            except Exception as e:  # recorded and reported; the next steps still run
                traceback.print_exc()
                f["steps"][name] = {"status": f"failed: {type(e).__name__}: {str(e)[:160]}",
                                    "seconds": time.perf_counter() - t}
        log(f"{shape} {name}: {f['steps'][name]['status']}" + ("" if f["steps"][name]["seconds"] is None else
                                                               f" ({f['steps'][name]['seconds']:.1f} s)"))
        save()
        return out

    full = step("build", lambda ctx: build(src, config, layers))
    if full:
        f["desc"] = describe(full, layers)
    sens = step("sensitivity", lambda ctx: sensitivity(ctx, src, table, args), ("build",))
    if sens:
        f["steps"]["sensitivity"]["status"] += (f" ({sens['mode']}, {sens['tensors']} tensors x "
                                                f"{sens['candidates']} candidates)")
    f["quantize"] = step("quantize", lambda ctx: quantize(ctx, src, dst, table, args), ("build",))
    f["bf16"] = step("bench bf16", lambda ctx: bench(ctx, src, args.tg), ("build",))
    f["quantized"] = step("bench quantized", lambda ctx: bench(ctx, dst, args.tg), ("quantize",))
    res = step("chat", lambda ctx: chat(ctx, dst, None, args.chat_tokens), ("quantize",))
    if res is not None:
        f["chat"] = {"ttft_s": res.stats.ttft_s, "decode_tps": res.stats.decode_tps, "tokens": res.stats.tokens,
                     "notes": res.stats.notes}
    f["kv"] = step("kv", lambda ctx: kv(ctx, dst, args.kv_context, log), ("quantize",))
    f["drafter"] = step("drafter", lambda ctx: drafter(ctx, dst, args.chat_tokens), ("quantize",))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shapes", default="e2b,31b")
    ap.add_argument("--layers-31b", type=int, default=6)
    ap.add_argument("--kv-context", type=int, default=8192)
    ap.add_argument("--tg", type=int, default=64, help="bench decode tokens")
    ap.add_argument("--chat-tokens", type=int, default=64)
    ap.add_argument("--bpw", type=float, default=4.5, help="quantization budget (real bits per weight)")
    ap.add_argument("--samples", type=int, default=4, help="sensitivity calibration chunks")
    ap.add_argument("--seq-len", type=int, default=128, help="tokens per calibration chunk")
    ap.add_argument("--budget", type=float, default=480, help="skip the remaining steps past this many seconds")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (hidden 128, 6 layers, vocab 1024) for a CPU check")
    args = ap.parse_args(argv)

    import mlx.core as mx
    from temper.core import atomic
    from temper.core.engine import Engine

    engine = Engine(name="gemma4-gpu")
    t_start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    head = ["# Gemma-4 on a GPU: random-weight E2B- and 31B-shaped models through temper", "",
            f"- command: `python docs/benchmarks/gemma4_gpu.py {' '.join(argv or sys.argv[1:])}`",
            f"- device: {mx.default_device()}, mlx {mx.__version__}; {os.cpu_count()} CPU cores; load average "
            f"{os.getloadavg()[0]:.1f}; time budget {args.budget:.0f} s" + (" (TINY shapes: a CPU check, not figures)"
                                                                              if args.tiny else ""), ""]
    figures: dict = {}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    def save() -> None:
        body = [line for shape, f in figures.items() for line in render(shape, f, args)]
        atomic.write_text(args.out, "\n".join(head + body) + "\n")
        atomic.write_text(args.out.with_suffix(".json"), json.dumps(figures, indent=1, default=str))

    for shape in args.shapes.split(","):
        run_shape(engine, shape, args, figures.setdefault(shape, {"steps": {}}), log, save, t_start)
        save()
        engine.run(lambda ctx: (ctx.state.clear(), mx.clear_cache()))
    print("\n".join(args.out.read_text().splitlines()), flush=True)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

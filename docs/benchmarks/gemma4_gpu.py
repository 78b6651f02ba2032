"""Gemma-4 end to end on a GPU: random-weight E2B-shaped and 31B-shaped models through temper.

For each shape: build the model (random bf16 weights, a small BPE tokenizer), quantize it to 4.5 bpw
through temper's plan -> write -> verify path (recipe `uniform-4`: affine 4-bit g64 with bf16 scales and
biases is 4.5 bpw; the routed sensitivity pass is not run here, see the .md), bench bf16 vs quantized
(temper's suite: pp512+tg128, warm-up not counted), chat once with effort low on the quantized model,
measure the KV cache at a long context (float vs 8-bit vs 4-bit: bytes, decode speed, peak memory), and
decode with the self-drafter (3-bit copy) against no drafter: acceptance and whether the greedy tokens
are identical.

    python docs/benchmarks/gemma4_gpu.py --work /tmp/g4gpu --out docs/benchmarks/gemma4_gpu.md \
        [--shapes e2b,31b] [--layers-31b 6] [--kv-context 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

E2B = {"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "max_position_embeddings": 131072}
G31B = {"model_type": "gemma4_text", "architectures": ["Gemma4ForCausalLM"], "hidden_size": 5376,
        "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 256, "intermediate_size": 21504,
        "num_kv_shared_layers": 0, "hidden_size_per_layer_input": 0, "sliding_window": 1024,
        "use_double_wide_mlp": False, "max_position_embeddings": 131072}


def build(out: Path, config: dict, layers: int | None) -> dict:
    """Random bf16 weights in mlx-lm's layout, a 1024-token BPE tokenizer (the model's vocab stays 262144)."""
    import mlx.core as mx
    from mlx_lm.utils import _get_classes, save_config, save_model
    from temper.core.library.synthetic import train_tokenizer

    config = dict(config)
    if layers:
        config["num_hidden_layers"] = layers
        pattern = ["sliding_attention"] * 5 + ["full_attention"]
        config["layer_types"] = (pattern * (layers // 6 + 1))[:layers]
        config["layer_types"][-1] = "full_attention"
    if (out / "config.json").exists():
        return json.loads((out / "config.json").read_text())
    train_tokenizer(out, vocab_size=1024)
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    config.update(eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"], torch_dtype="bfloat16")
    model_cls, args_cls = _get_classes(config)
    args = args_cls.from_dict(config)
    model = model_cls(args)
    model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    save_model(out, model, donate_model=True)
    full = {**{k: v for k, v in vars(args).items() if not k.startswith("_")}, **config}
    save_config(full, config_path=out / "config.json")
    return full


def quantize(src: Path, dst: Path) -> dict:
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from temper.core.quant.verify import verify
    from temper.core.quant.write import write_quantized

    t0 = time.perf_counter()
    if not (dst / "config.json").exists():
        plan = build_plan("uniform-4", load_inventory(src), RecipeRequest())
        write_quantized(src, plan, dst)
    report = verify(dst)
    return {"bpw": report.real_bpw, "bytes": report.tensor_bytes, "seconds": time.perf_counter() - t0}


def bench(ctx, folder: Path) -> dict:
    from temper.core.bench.runner import BenchConfig, run_suite
    from temper.core.engine.models import ensure_loaded

    lm = ensure_loaded(ctx.state, folder, keep=1)
    result = run_suite(ctx, lm, BenchConfig(pp=[512], tg=[128], n=2, bandwidth=False))
    st = result.rows[0].stats
    return {"ttft_ms": st["ttft"].mean * 1000, "prefill_tps": st["prefill_tps"].mean,
            "decode_tps": st["decode_tps"].mean, "peak_gb": st["peak_memory"].mean / 1e9,
            "weight_gb": result.model["weight_bytes"] / 1e9}


def kv(ctx, folder: Path, context: int) -> dict:
    from temper.core.bench.prompts import PromptMaker
    from temper.core.bench.runner import timed_request
    from temper.core.engine.kv_cache import KVPlan
    from temper.core.engine.kv_config import kv_group_size, n_caches
    from temper.core.engine.models import ensure_loaded

    lm = ensure_loaded(ctx.state, folder, keep=1)
    n, gs = n_caches(lm.model), kv_group_size(lm.model)
    maker = PromptMaker(1000, set(), 1)
    timed_request(ctx, lm.model, maker.make(256), 8)  # warm-up
    out = {}
    for name, plan in (("float", None), ("8-bit", KVPlan.uniform(n, 8, gs)), ("4-bit", KVPlan.uniform(n, 4, gs))):
        timed_request(ctx, lm.model, maker.make(context), 4, plan)  # warm-up at this length (kernels)
        t, _ = timed_request(ctx, lm.model, maker.make(context), 64, plan)
        out[name] = {"kv_mb": t.kv_bytes / 2**20, "decode_tps": t.decode_tps, "ttft_s": t.ttft,
                     "peak_gb": t.peak_memory / 1e9}
    return out


def chat(ctx, folder: Path, drafter: str | None, tokens: int, kv_bits: int | None = None):
    from temper.core.engine.generate import ChatRequest, run_chat
    from temper.core.engine.sampling import SamplingSettings

    ctx.state.pop("chat_session", None)
    request = ChatRequest(str(folder), [{"role": "user", "content": "Explain the sliding window in one line."}],
                          SamplingSettings(temperature=0.0, max_tokens=tokens), effort="low", drafter=drafter,
                          kv_bits=kv_bits)
    return run_chat(ctx, request)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shapes", default="e2b,31b")
    ap.add_argument("--layers-31b", type=int, default=6)
    ap.add_argument("--kv-context", type=int, default=8192)
    ap.add_argument("--chat-tokens", type=int, default=128)
    args = ap.parse_args(argv)

    import mlx.core as mx
    from temper.core.engine import Engine

    engine = Engine(name="gemma4-gpu")
    t_start = time.perf_counter()

    def step(label: str, fn):
        t = time.perf_counter()
        print(f"[{time.perf_counter() - t_start:6.0f} s] {label} ...", flush=True)
        out = engine.run(fn)
        print(f"[{time.perf_counter() - t_start:6.0f} s] {label}: {time.perf_counter() - t:.1f} s", flush=True)
        return out
    figures: dict = {}
    lines = ["# Gemma-4 on a GPU: random-weight E2B- and 31B-shaped models through temper", "",
             f"- command: `python docs/benchmarks/gemma4_gpu.py {' '.join(argv or sys.argv[1:])}`",
             f"- device: {mx.default_device()}, mlx {mx.__version__}; {os.cpu_count()} CPU cores", ""]
    for shape in args.shapes.split(","):
        config, layers = (E2B, None) if shape == "e2b" else (G31B, args.layers_31b)
        src, dst = args.work / f"{shape}-bf16", args.work / f"{shape}-q4"
        t0 = time.perf_counter()
        full = step(f"{shape} build", lambda ctx, src=src, config=config, layers=layers: build(src, config, layers))
        built = time.perf_counter() - t0
        q = step(f"{shape} quantize", lambda ctx, src=src, dst=dst: quantize(src, dst))
        f = figures[shape] = {"build_s": built, "quantize": q}
        f["bf16"] = step(f"{shape} bench bf16", lambda ctx, src=src: bench(ctx, src))
        f["q4"] = step(f"{shape} bench q4", lambda ctx, dst=dst: bench(ctx, dst))
        res = step(f"{shape} chat", lambda ctx, dst=dst: chat(ctx, dst, None, args.chat_tokens))
        f["chat_low"] = {"ttft_s": res.stats.ttft_s, "decode_tps": res.stats.decode_tps, "tokens": res.stats.tokens,
                         "notes": res.stats.notes}
        f["kv"] = step(f"{shape} kv", lambda ctx, dst=dst: kv(ctx, dst, args.kv_context))
        plain = step(f"{shape} greedy", lambda ctx, dst=dst: chat(ctx, dst, None, args.chat_tokens))
        spec = step(f"{shape} drafter", lambda ctx, dst=dst: chat(ctx, dst, "self", args.chat_tokens))
        f["drafter"] = {"accepted": spec.stats.accepted, "drafted": spec.stats.drafted,
                        "identical": spec.tokens == plain.tokens, "tokens": len(plain.tokens),
                        "decode_tps": spec.stats.decode_tps, "plain_tps": plain.stats.decode_tps}
        engine.run(lambda ctx: (ctx.state.clear(), mx.clear_cache()))
        desc = (f"{full['num_hidden_layers']} layers" + (" of 60 (cut to fit disk and time)" if layers else "")
                + f", hidden {full['hidden_size']}, {full['num_attention_heads']} heads / "
                f"{full['num_key_value_heads']} KV heads, head dim {full['head_dim']} (full layers "
                f"{full.get('global_head_dim')}), window {full['sliding_window']}, "
                f"{full.get('num_kv_shared_layers', 0)} KV-shared layers, vocab {full['vocab_size']}")
        lines += [f"## {shape.upper()}-shaped: {desc}", "",
                  f"- built in {built:.0f} s; quantized (uniform-4 through plan -> write -> verify) to "
                  f"**{q['bpw']:.3f} bpw** real ({q['bytes'] / 1e9:.2f} GB of tensors) in {q['seconds']:.0f} s", "",
                  "| model | weights GB | TTFT ms (pp512) | prefill tok/s | decode tok/s (tg128) | peak GB |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in ("bf16", "q4"):
            b = f[name]
            lines.append(f"| {name} | {b['weight_gb']:.2f} | {b['ttft_ms']:.1f} | {b['prefill_tps']:.0f} | "
                         f"{b['decode_tps']:.1f} | {b['peak_gb']:.2f} |")
        lines.append(f"| q4 / bf16 | | | | **{f['q4']['decode_tps'] / f['bf16']['decode_tps']:.2f}x** | |")
        c = f["chat_low"]
        lines += ["", f"- chat (quantized model, `effort low`, greedy, {c['tokens']} tokens): TTFT "
                  f"{c['ttft_s'] * 1000:.0f} ms (first turn, model load included), decode {c['decode_tps']:.1f} tok/s"
                  + (f"; notes: {'; '.join(c['notes'])}" if c["notes"] else ""), "",
                  f"KV cache after a {args.kv_context}-token prompt + 64 decoded tokens (quantized model):", "",
                  "| cache | KV MiB | vs float | decode tok/s | TTFT s | peak GB |", "|---|---:|---:|---:|---:|---:|"]
        base = f["kv"]["float"]
        for name, k in f["kv"].items():
            lines.append(f"| {name} | {k['kv_mb']:.1f} | {k['kv_mb'] / base['kv_mb']:.3f}x | {k['decode_tps']:.1f} | "
                         f"{k['ttft_s']:.2f} | {k['peak_gb']:.2f} |")
        d = f["drafter"]
        lines += ["", f"- self-drafter (3-bit copy, 3 draft tokens) on the quantized model, {d['tokens']} greedy "
                  f"tokens: accepted {d['accepted']}/{d['drafted']} = {d['accepted'] / max(d['drafted'], 1):.1%}; "
                  f"tokens identical to no drafter: **{d['identical']}**; {d['decode_tps']:.1f} tok/s with vs "
                  f"{d['plain_tps']:.1f} without", ""]
        (args.out.with_suffix(".json")).write_text(json.dumps(figures, indent=1))
        args.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

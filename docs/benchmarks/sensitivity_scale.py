"""Sensitivity at real scale: time and peak memory of `temper quantize --bpw 4.5` (default settings) and of the
default sensitivity pass on random-weight models of real shapes. Prints a Markdown report (and writes it to
--out when given).

GPU (device machine, after the MLX-CUDA install and `source docs/benchmarks/device_env.sh TREE`):

    python3 docs/benchmarks/sensitivity_scale.py gpu --work /tmp/scale --out $OUT/sensitivity_gpu.md

  SmolLM2-135M shape (random weights: the demo GGUF cannot travel to that machine with the code), gemma4_text
  in mlx-lm's default (E2B) shape, and the Llama-3-8B shape (sensitivity pass only).

CPU (this machine):

    .venv/bin/python docs/benchmarks/sensitivity_scale.py vocab --work /tmp/scale

  a gemma3-270m-like shape with a 262,144-token vocabulary, bf16: peak RSS of the default quantize.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False}


def build(out: Path, config: dict) -> Path:
    """Random bf16 weights in mlx-lm's layout and a 1024-token BPE tokenizer (the model's vocab stays as asked)."""
    import mlx.core as mx
    from mlx_lm.utils import _get_classes, save_config, save_model
    from temper.core.library.synthetic import train_tokenizer

    if (out / "config.json").exists():
        return out
    train_tokenizer(out, vocab_size=1024)
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    config = dict(config, eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"], torch_dtype="bfloat16")
    model_cls, args_cls = _get_classes(config)
    args = args_cls.from_dict(config)
    model = model_cls(args)
    model.set_dtype(mx.bfloat16)
    mx.eval(model.parameters())
    save_model(out, model, donate_model=True)
    full = {**{k: v for k, v in vars(args).items() if not k.startswith("_") and v is not None}, **config}
    save_config(full, config_path=out / "config.json")
    del model
    mx.clear_cache()
    return out


def quantize(engine, src: Path, out: Path) -> dict:
    """`temper quantize SRC --bpw 4.5 -o OUT --force` (default settings) in this process: wall, peak MLX, phases."""
    import mlx.core as mx
    from temper.core.engine.events import Progress
    from temper.core.quant.pipeline import quantize as run_quantize
    from temper.core.quant.request import QuantRequest

    mx.reset_peak_memory()
    t0 = time.perf_counter()
    req = QuantRequest(model=str(src), target_bpw=4.5, output=str(out), overwrite=True)
    job = engine.submit(lambda ctx: run_quantize(ctx, req))
    said = ""
    for event in job.events():
        if isinstance(event, Progress) and event.phase == "sensitivity" and event.total is None:
            said = event.message
    result = job.result()
    return {"wall": time.perf_counter() - t0, "peak_mlx": mx.get_peak_memory(), "phases": result.seconds,
            "bpw": result.verify.real_bpw if result.verify else None, "mode": said}


def sensitivity(engine, src: Path) -> dict:
    import mlx.core as mx
    from temper.core.quant.candidates import AFFINE_BITS, grid
    from temper.core.quant.sensitivity import run_sensitivity

    mx.reset_peak_memory()
    t0 = time.perf_counter()
    table = engine.run(lambda ctx: run_sensitivity(ctx, src, grid(AFFINE_BITS, (32, 64, 128)), None, mode="auto"))
    return {"wall": time.perf_counter() - t0, "peak_mlx": mx.get_peak_memory(), "meta": table.meta}


def params_of(path: Path) -> int:
    from temper.core.quant.mode import ModelSize

    return ModelSize.of(path).params


def gb(x: float) -> str:
    return f"{x / 1e9:.2f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("gpu", "vocab", "tiny"))
    p.add_argument("--work", type=Path, default=Path("/tmp/scale"))
    p.add_argument("--out", type=Path)
    p.add_argument("--only", default="", help="comma-separated first words of the shapes to run (smollm2,gemma4,llama-3-8b)")
    p.add_argument("--budget", type=float, default=480.0, help="stop starting new models after this many seconds")
    args = p.parse_args()
    os.environ.setdefault("TEMPER_HOME", str(args.work / "home"))
    args.work.mkdir(parents=True, exist_ok=True)
    import mlx.core as mx
    from temper.core.engine import Engine

    start = time.perf_counter()
    engine = Engine()
    lines = ["# Sensitivity and quantization at real scale (default settings)", "",
             f"Command: `{' '.join(['python3', 'docs/benchmarks/sensitivity_scale.py', *sys.argv[1:]])}`; "
             f"mlx {mx.__version__} on {mx.default_device()}; load average before: "
             f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
             "| model | params | what | wall s | peak MLX GB | peak RSS GB | sensitivity mode | real bpw |",
             "|---|---:|---|---:|---:|---:|---|---:|"]

    def row(name: str, path: Path, what: str, r: dict) -> None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        mode = r.get("mode") or f"{r.get('meta', {}).get('mode')} ({r.get('meta', {}).get('mode_reason', '')})"
        mode = mode if len(mode) < 90 else mode[:87] + "..."
        bpw = f"{r['bpw']:.3f}" if r.get("bpw") else "-"
        lines.append(f"| {name} | {params_of(path) / 1e6:.0f}M | {what} | {r['wall']:.1f} | {gb(r['peak_mlx'])} | "
                     f"{gb(rss)} | {mode} | {bpw} |")
        extra = r.get("phases") or r.get("meta", {}).get("seconds")
        lines.append(f"|  |  | phases: {json.dumps({k: round(v, 1) for k, v in (extra or {}).items()})} |  |  |  |  |  |")
        print("\n".join(lines[-2:]), flush=True)

    shapes = {"gpu": [("SmolLM2-135M shape", SMOL, "quantize"), ("gemma4 E2B shape", E2B, "quantize"),
                      ("Llama-3-8B shape", LLAMA8B, "quantize")],
              "vocab": [("gemma3-270m-like, vocab 262144", GEMMA3_270M, "quantize")],
              "tiny": [("tiny", TINY, "quantize"), ("tiny", TINY, "sensitivity")]}[args.what]
    if args.what in ("gpu", "tiny"):        # compile kernels before anything is timed
        warm = engine.run(lambda ctx: build(args.work / "warm", TINY))
        quantize(engine, warm, args.work / "warm-q")
    wanted = {w.strip().lower() for w in args.only.split(",") if w.strip()}
    for name, config, what in shapes:
        if wanted and name.split()[0].lower() not in wanted:
            continue
        if time.perf_counter() - start > args.budget:
            lines.append(f"| {name} | | {what} | skipped: the run's time budget ({args.budget:.0f} s) was spent |")
            continue
        t0 = time.perf_counter()
        src = engine.run(lambda ctx, c=config, n=name: build(args.work / n.split()[0].lower(), c))
        print(f"built {name} in {time.perf_counter() - t0:.0f} s", flush=True)
        if what == "quantize":
            row(name, src, "quantize --bpw 4.5", quantize(engine, src, args.work / (src.name + "-q")))
        else:
            row(name, src, "sensitivity (auto)", sensitivity(engine, src))
    lines += ["", f"Load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}. Peak MLX memory is "
              "mx.get_peak_memory over the whole job (reset before each row); peak RSS is the process's "
              "high-water mark so far (cumulative over rows)."]
    engine.shutdown()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    sys.exit(main())

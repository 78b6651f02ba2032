"""`temper bench` on a GPU for a Llama-3-8B-shaped model at bf16, 8-bit, 4-bit and mixed 4/6-bit.

The models are built on the machine from random weights (core/library/synthetic.build_model with the
Llama-3-8B shape: hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab 128256), then
quantized with mlx-lm's `quantize_model` (affine, group size 64; "mixed" is mlx-lm's mixed_4_6 recipe:
6-bit v_proj/down_proj in the first and last eighth and every third layer, 6-bit lm_head, 4-bit rest).
Random weights decode at the same speed as trained ones: the work per token is the same.

    python docs/benchmarks/bench_gpu.py --out OUT [--variants bf16,q8,q4,mixed] [--pp 512,4096] [--tg 128]
    python docs/benchmarks/bench_gpu.py --report OUT > docs/benchmarks/gpu_h100.md   # table from saved JSON

Each variant's result is saved as OUT/<variant>.json (+ .md) as soon as it is done, and a variant whose
JSON exists is skipped, so an interrupted run can go on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

LLAMA3_8B = {
    "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 14336, "rope_theta": 500000.0, "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
}
VOCAB = 128256
# --tiny: the same pipeline on a toy shape, to check the script on a laptop before spending GPU time.
TINY = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 256, "tie_word_embeddings": False}
SHAPE = {"overrides": LLAMA3_8B, "vocab": VOCAB}
VARIANTS = {"bf16": None, "q8": 8, "q4": 4, "mixed": "mixed_4_6"}
LABELS = {"bf16": "bf16", "q8": "8-bit affine g64", "q4": "4-bit affine g64", "mixed": "mixed 4/6-bit (mlx-lm mixed_4_6)"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_bf16(root: Path) -> Path:
    from temper.core.library.synthetic import build_model

    out = root / "llama3-8b-shape-bf16"
    if not (out / "config.json").exists():
        t = time.perf_counter()
        tmp = root / "tmp-bf16"
        shutil.rmtree(tmp, ignore_errors=True)
        build_model(tmp, "llama", vocab_size=SHAPE["vocab"], dtype="bfloat16", overrides=SHAPE["overrides"])
        tmp.rename(out)
        log(f"built {out.name} in {time.perf_counter() - t:.0f} s")
    return out


def build_quant(src: Path, root: Path, variant: str) -> Path:
    import mlx.core as mx
    from mlx_lm.convert import mixed_quant_predicate_builder
    from mlx_lm.utils import load_model, quantize_model, save_config, save_model

    out = root / f"llama3-8b-shape-{variant}"
    if (out / "config.json").exists():
        return out
    t = time.perf_counter()
    spec = VARIANTS[variant]
    model, config = load_model(src, lazy=True)
    if isinstance(spec, str):
        pred = mixed_quant_predicate_builder(spec, model, group_size=64)
        model, config = quantize_model(model, config, group_size=64, bits=4, mode="affine", quant_predicate=pred)
    else:
        model, config = quantize_model(model, config, group_size=64, bits=spec, mode="affine")
    tmp = root / f"tmp-{variant}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, model, donate_model=True)
    save_config(config, config_path=tmp / "config.json")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, tmp / name)
    del model
    mx.clear_cache()
    tmp.rename(out)
    log(f"built {out.name} in {time.perf_counter() - t:.0f} s")
    return out


def run(args: argparse.Namespace) -> None:
    from temper.cli.bench import bench
    from temper.core.bench.runner import BenchConfig
    from temper.core.engine import get_engine
    from temper.core.engine.models import unload

    engine = get_engine()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.models)
    root.mkdir(parents=True, exist_ok=True)
    config = BenchConfig(pp=args.pp, tg=args.tg, n=args.n, batch=args.batch, batch_pp=args.batch_pp)
    for variant in args.variants:
        if (out / f"{variant}.json").exists():
            log(f"{variant}: result exists, skipped")
            continue
        src = engine.run(lambda ctx: build_bf16(root))
        path = src if variant == "bf16" else engine.run(lambda ctx, s=src, v=variant: build_quant(s, root, v))
        log(f"{variant}: benchmarking {path.name}")
        result = bench(str(path), config, quiet=args.quiet)
        result.model["variant"] = variant
        result.save(out / f"{variant}.json")
        (out / f"{variant}.md").write_text(result.to_markdown())
        print(result.to_markdown(), flush=True)
        engine.run(lambda ctx: unload(ctx.state))
        if variant != "bf16" and not args.keep:
            shutil.rmtree(path, ignore_errors=True)


def report(folder: Path) -> str:
    from temper.core.bench.results import BenchResult, markdown_batch

    results = [(v, BenchResult.load(folder / f"{v}.json")) for v in VARIANTS if (folder / f"{v}.json").exists()]
    if not results:
        raise SystemExit(f"no results in {folder}")
    first = results[0][1]
    bw = first.bandwidth
    lines = [f"Machine: {first.machine.get('chip')} · MLX {first.machine.get('mlx')} ({first.machine.get('device')})"
             f" · mlx-lm {first.machine.get('mlx_lm')} · {first.machine.get('os')}",
             f"Bandwidth: table {bw.get('table_gbs')} GB/s ({bw.get('chip')}; {bw.get('source')}), "
             f"measured copy test {bw.get('measured_gbs', 0):.0f} GB/s", "",
             "| model | size (GB) | bpw | test | TTFT (ms) | pp tok/s | tg tok/s | TPOT (ms) | peak mem (GB) "
             "| bytes/token (GB) | ceiling tok/s | % of ceiling | % of measured-bw ceiling |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    from temper.core.bench.metrics import fmt

    for variant, r in results:
        m = r.model
        for row in r.rows:
            st, rf = row.stats, row.roofline
            lines.append(
                f"| {LABELS[variant]} | {m['weight_bytes'] / 1e9:.2f} | {m['bpw']:.2f} | {row.test} | "
                f"{fmt('ttft', st['ttft'])} | {fmt('prefill_tps', st['prefill_tps'])} | "
                f"{fmt('decode_tps', st['decode_tps'])} | {fmt('tpot', st['tpot'])} | "
                f"{st['peak_memory'].mean / 1e9:.2f} | {rf.bytes_per_token / 1e9:.2f} | "
                f"{rf.ceiling_table or 0:.1f} | {rf.pct_table or 0:.0f}% | {rf.pct_measured or 0:.0f}% |")
    for variant, r in results:
        if r.batch:
            lines += ["", f"Continuous batching, {LABELS[variant]}:", "", markdown_batch(r.batch)]
    return "\n".join(lines) + "\n"


def main() -> None:
    from temper.cli.bench import _ints

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="folder for the JSON/MD results")
    p.add_argument("--models", default="/tmp/temper-gpu-models", help="where to build the models")
    p.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    p.add_argument("--pp", type=_ints, default=[512, 4096])
    p.add_argument("--tg", type=_ints, default=[128])
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--batch", type=_ints, default=[1, 2, 4, 8])
    p.add_argument("--batch-pp", type=int, default=512)
    p.add_argument("--keep", action="store_true", help="keep the quantized models")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--tiny", action="store_true", help="toy shape: check the pipeline, not a benchmark")
    p.add_argument("--report", metavar="FOLDER", help="print the table from saved results and exit")
    args = p.parse_args()
    if args.report:
        print(report(Path(args.report)), end="")
        return
    if args.tiny:
        SHAPE.update(overrides=TINY, vocab=512)
        args.models = args.models + "-tiny"
    if not args.out:
        p.error("--out is required")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}: choose from {list(VARIANTS)}")
    run(args)
    json.dump({"done": args.variants}, sys.stderr)


if __name__ == "__main__":
    main()

"""`temper bench` on a GPU: a model written by temper's quant core (mixed precision) vs uniform 4-bit.

Builds the Llama-3-8B-shaped random-weight bf16 model (as bench_gpu.py does), writes it twice with
temper's own writer (`core/quant/write.write_quantized`, verified against its plan by `verify`):
`uniform-4` (affine 4-bit g64 everywhere) and a recipe that needs no sensitivity pass (default
`unsloth-4`: gate/up 4, down 5, q/k/v 6, embeddings 6, o_proj kept bf16), then runs `temper bench`'s
suite on each. Random weights decode at the same speed as trained ones.

    python docs/benchmarks/bench_gpu_quant.py --out OUT [--recipes uniform-4,unsloth-4] [--pp 512] [-n 2]
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
TINY = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 256, "tie_word_embeddings": False}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="/tmp/temper-gpu-models")
    p.add_argument("--recipes", default="uniform-4,unsloth-4")
    p.add_argument("--pp", default="512")
    p.add_argument("--tg", default="128")
    p.add_argument("-n", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="toy shape: check the pipeline, not a benchmark")
    args = p.parse_args()

    from temper.cli.bench import bench
    from temper.core.bench.runner import BenchConfig
    from temper.core.engine import get_engine
    from temper.core.engine.models import unload
    from temper.core.library.synthetic import build_model
    from temper.core.quant.inventory import load_inventory
    from temper.core.quant.recipes import RecipeRequest, build_plan
    from temper.core.quant.verify import verify
    from temper.core.quant.write import write_quantized

    engine = get_engine()
    out, root = Path(args.out), Path(args.models)
    out.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    shape, vocab = (TINY, 512) if args.tiny else (LLAMA3_8B, 128256)
    src = root / ("tiny-bf16" if args.tiny else "llama3-8b-shape-bf16")
    if not (src / "config.json").exists():
        t = time.perf_counter()
        engine.run(lambda ctx: build_model(src, "llama", vocab_size=vocab, dtype="bfloat16", overrides=shape))
        log(f"built {src.name} in {time.perf_counter() - t:.0f} s")
    config = BenchConfig(pp=[int(x) for x in args.pp.split(",")], tg=[int(x) for x in args.tg.split(",")],
                         n=args.n)
    summary = {}
    for recipe in args.recipes.split(","):
        folder = root / f"{src.name}-{recipe}"

        def write(ctx, recipe=recipe, folder=folder):
            plan = build_plan(recipe, load_inventory(src), RecipeRequest())
            t = time.perf_counter()
            write_quantized(src, plan, folder, force=True)
            wrote = time.perf_counter() - t
            report = verify(folder, plan)
            return plan, report, wrote, time.perf_counter() - t - wrote

        plan, report, wrote, checked = engine.run(write)
        log(f"{recipe}: wrote {report.real_bpw:.3f} bpw in {wrote:.0f} s, verified in {checked:.0f} s")
        result = bench(str(folder), config, quiet=True)
        result.model["variant"] = recipe
        result.save(out / f"{recipe}.json")
        summary[recipe] = {"real_bpw": report.real_bpw, "tensor_bytes": report.tensor_bytes,
                           "widths": plan.summary().get("widths", {}), "write_s": wrote, "verify_s": checked,
                           "verified": report.ok}
        (out / f"{recipe}.md").write_text(result.to_markdown())
        print(result.to_markdown(), flush=True)
        engine.run(lambda ctx: unload(ctx.state))
        shutil.rmtree(folder, ignore_errors=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

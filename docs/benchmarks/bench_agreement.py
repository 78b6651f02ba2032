"""Does `temper bench` measure what an independent stopwatch measures? Same model, same process, same run.

A: `temper bench`'s runner (the function the CLI and the Performance tab call), n counted runs.
B: bare mlx-lm: `stream_generate` timed from the outside with perf_counter (start before the call, the
   first response, the last response), EOS suppressed with a logits processor so every run generates
   exactly tg tokens, also n counted runs after a warm-up. mlx-lm's own `prompt_tps` is shown too.
Both run on the engine thread, alternating run by run (A, B, A, B...) so drift hits both; medians. Each figure must agree
within 5%; the script exits 1 if one does not.

    python docs/benchmarks/bench_agreement.py [--pp 128] [--tg 64] [-n 10] > docs/benchmarks/bench_agreement.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# A small model whose decode step takes milliseconds on a CPU (MLX's CPU backend, bf16), so per-token
# Python overhead on either side is noise, not signal.
SHAPE = {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4,
         "intermediate_size": 1408, "tie_word_embeddings": False}
VOCAB = 4096
# --shape llama3-8b: the GPU table's model (docs/benchmarks/gpu_h100.md), for a machine that has the memory.
SHAPES = {
    "small": (SHAPE, VOCAB),
    "llama3-8b": ({"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                   "num_key_value_heads": 8, "intermediate_size": 14336, "rope_theta": 500000.0,
                   "tie_word_embeddings": False}, 128256),
}
TOLERANCE = 0.05


def bare_mlx_lm(ctx, lm, prompts: list[list[int]], tg: int) -> list[dict[str, float]]:
    import mlx.core as mx
    from mlx_lm.generate import stream_generate

    eos = list(lm.tokenizer.eos_token_ids)

    def no_eos(tokens, logits):
        return mx.put_along_axis(logits, mx.array(eos)[None], mx.array(-1e9, logits.dtype), axis=-1)

    out = []
    for prompt in prompts:
        mx.synchronize()
        start = time.perf_counter()
        first = last = None
        n = 0
        last_response = None
        for response in stream_generate(lm.model, lm.tokenizer, prompt, max_tokens=tg, logits_processors=[no_eos]):
            now = time.perf_counter()
            last_response = response
            first = first or now
            last = now
            n += 1
        out.append({"ttft": first - start, "decode_tps": (n - 1) / (last - first), "e2e": last - start,
                    "generated": n, "mlx_lm_prompt_tps": last_response.prompt_tps,
                    "mlx_lm_generation_tps": last_response.generation_tps})
    return out


def main() -> int:
    from temper.cli.bench import _ints
    from temper.core.bench.prompts import PromptMaker, special_ids, vocab_size
    from temper.core.bench.runner import timed_request
    from temper.core.engine import get_engine
    from temper.core.engine.models import ensure_loaded
    from temper.core.library.synthetic import build_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder (default: a synthetic Llama built in a temp folder)")
    p.add_argument("--shape", choices=list(SHAPES), default="small", help="synthetic model shape")
    p.add_argument("--pp", type=_ints, default=[128])
    p.add_argument("--tg", type=int, default=64)
    p.add_argument("-n", type=int, default=10)
    args = p.parse_args()
    engine = get_engine()
    tmp = Path(tempfile.mkdtemp(prefix="temper-agree-"))
    shape, vocab = SHAPES[args.shape]
    model = Path(args.model) if args.model else engine.run(lambda ctx: build_model(
        tmp / "llama-agree", "llama", vocab_size=vocab, dtype="bfloat16", overrides=shape))
    lm_info = engine.run(lambda ctx: ensure_loaded(ctx.state, model).config)

    def pair(ctx, pp, warmup):
        """One A run and one B run back to back (after one uncounted warm-up of each, the first time)."""
        lm = ensure_loaded(ctx.state, model)
        maker = PromptMaker(vocab_size(lm.model, lm.config, lm.tokenizer), special_ids(lm.tokenizer))
        if warmup:
            timed_request(ctx, lm.model, maker.make(pp), args.tg)
            bare_mlx_lm(ctx, lm, [maker.make(pp)], args.tg)
        r = timed_request(ctx, lm.model, maker.make(pp), args.tg)[0]
        a = {"ttft": r.ttft, "decode_tps": r.decode_tps, "e2e": r.e2e, "generated": r.generated}
        return a, bare_mlx_lm(ctx, lm, [maker.make(pp)], args.tg)[0]

    import mlx.core as mx
    from temper.core.bench.machine import machine_info

    machine = engine.run(lambda ctx: machine_info()["chip"])
    lines = [
        "# `temper bench` vs bare mlx-lm timing, same model, same run",
        "",
        f"Command: `python docs/benchmarks/bench_agreement.py --shape {args.shape} --pp {','.join(map(str, args.pp))} --tg {args.tg}"
        f" -n {args.n}`",
        "",
        f"Model: {f'synthetic Llama ({args.shape}) {shape}, vocab {vocab}, bf16' if not args.model else model}. "
        f"MLX {mx.__version__} ({engine.run(lambda ctx: str(mx.default_device()))}) on {machine}, "
        f"{args.n} counted A/B pairs after one uncounted warm-up of each.",
        "",
        "A = `temper bench`'s runner; B = `mlx_lm.stream_generate` timed with perf_counter from outside, EOS "
        "suppressed by a logits processor. A and B alternate run by run (A, B, A, B...) so load on the machine hits both alike; medians over the counted runs; B/A must be within ±5%.",
        "",
        "| test | metric | A: temper bench | B: bare mlx-lm | B / A | within 5% |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    ok = True
    for pp in args.pp:
        a_runs, b_runs = [], []
        for i in range(args.n):
            a, b = engine.run(lambda ctx, pp=pp, w=(i == 0): pair(ctx, pp, w))
            a_runs.append(a)
            b_runs.append(b)
        assert all(r["generated"] == args.tg for r in a_runs + b_runs), "a run stopped early"
        for metric, label, unit, k in [("ttft", "TTFT", "ms", 1000), ("decode_tps", "tg tok/s", "", 1),
                                       ("e2e", "E2E", "s", 1)]:
            a = statistics.median(r[metric] for r in a_runs)
            b = statistics.median(r[metric] for r in b_runs)
            good = abs(b / a - 1) <= TOLERANCE
            ok &= good
            name = f"{label} ({unit})" if unit else label
            lines.append(f"| pp{pp}+tg{args.tg} | {name} | {a * k:.2f} | {b * k:.2f} | {b / a:.3f} | "
                         f"{'yes' if good else 'NO'} |")
        a_pp = statistics.median(pp / r["ttft"] for r in a_runs)
        b_pp = statistics.median(r["mlx_lm_prompt_tps"] for r in b_runs)
        lines.append(f"| pp{pp}+tg{args.tg} | pp tok/s (B: mlx-lm's own prompt_tps) | {a_pp:.1f} | {b_pp:.1f} | "
                     f"{b_pp / a_pp:.3f} | {'yes' if abs(b_pp / a_pp - 1) <= TOLERANCE else 'NO'} |")
        ok &= abs(b_pp / a_pp - 1) <= TOLERANCE
        g = statistics.median(r["mlx_lm_generation_tps"] for r in b_runs)
        lines.append(f"| pp{pp}+tg{args.tg} | mlx-lm's own generation_tps (info: n tokens / decode time, "
                     f"not n − 1) | | {g:.1f} | | |")
    lines += ["", f"Result: {'all figures agree within 5%' if ok else 'DISAGREEMENT over 5%'}.",
              f"Model config: {lm_info.get('model_type')}, hidden {lm_info.get('hidden_size')}, "
              f"{lm_info.get('num_hidden_layers')} layers."]
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

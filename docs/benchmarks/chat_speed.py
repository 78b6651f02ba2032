"""Chat decode speed: temper's generation path vs bare `mlx_lm.stream_generate`, and the self-drafter.

Both paths run in one process on the same engine thread, same model, same rendered prompt, greedy,
interleaved repetitions; decode tok/s is measured the same way for both: (tokens - 1) / (time of the
last token - time of the first), i.e. TTFT excluded. temper's path is the real one (`chat_job` through
the engine: chat template, prompt-cache session, events per token, stats); its prompt cache is dropped
before each run so both prefill the whole prompt.

    python docs/benchmarks/chat_speed.py                       # synthetic llama (hidden 512, 8 layers, fp32)
    python docs/benchmarks/chat_speed.py --model PATH          # any local model folder
    python docs/benchmarks/chat_speed.py --out docs/benchmarks/chat_speed.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from temper.core.engine import Engine
from temper.core.engine.generate import ChatRequest, TokenEvent, chat_job, render
from temper.core.engine.models import ensure_loaded
from temper.core.engine.sampling import SamplingSettings

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short story about a lighthouse keeper who collects shells."},
]
SYNTHETIC = {"hidden_size": 512, "num_hidden_layers": 8, "intermediate_size": 1408,
             "num_attention_heads": 8, "num_key_value_heads": 4}


def build_synthetic(root: Path, engine: Engine) -> Path:
    from temper.core.library.synthetic import build_model

    out = root / "synthetic-llama-h512-l8"
    engine.run(lambda ctx: build_model(out, "llama", vocab_size=2048, overrides=SYNTHETIC))
    return out


CPU_MS: dict[str, float] = {}  # process CPU time per decoded token of the last run of each path


def bare(ctx, path: Path, prompt: list[int], max_tokens: int) -> tuple[float, list[int]]:
    """mlx-lm's own streaming loop; decode tok/s from the arrival times of its responses."""
    from mlx_lm.generate import stream_generate
    from mlx_lm.sample_utils import make_sampler

    lm = ensure_loaded(ctx.state, path)
    times, cpu, tokens = [], [], []
    for resp in stream_generate(lm.model, lm.tokenizer, prompt, max_tokens=max_tokens,
                                sampler=make_sampler(temp=0.0)):
        times.append(time.perf_counter())
        cpu.append(time.process_time())
        tokens.append(resp.token)
    n = len(times)
    CPU_MS["bare"] = 1000 * (cpu[-1] - cpu[0]) / (n - 1)
    return (n - 1) / (times[-1] - times[0]), tokens


def temper(engine: Engine, path: Path, max_tokens: int, drafter: str | None = None,
           draft_tokens: int = 3):
    engine.run(lambda ctx: ctx.state.pop("chat_session", None))
    request = ChatRequest(str(path), MESSAGES, SamplingSettings(temperature=0.0, max_tokens=max_tokens),
                          effort="none", drafter=drafter, num_draft_tokens=draft_tokens)
    cpu: list[float] = []

    def on_token(event) -> None:  # on the engine thread, as each token is emitted
        if isinstance(event, TokenEvent) and event.token >= 0:
            cpu.append(time.process_time())

    remove = engine.add_listener(on_token)
    job = engine.submit(chat_job(request), kind="chat")
    n = sum(1 for e in job.events() if isinstance(e, TokenEvent) and e.token >= 0)
    result = job.result()
    remove()
    CPU_MS["temper"] = 1000 * (cpu[-1] - cpu[0]) / max(len(cpu) - 1, 1)
    return result.stats, result.tokens, n


def _load() -> str:
    try:
        import os

        return " / ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"
    except (OSError, AttributeError):
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model folder (default: a synthetic llama built on the fly)")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--draft-tokens", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = ap.parse_args(argv)

    import mlx.core as mx

    engine = Engine(name="bench-engine")
    tmp = tempfile.TemporaryDirectory()
    path = args.model or build_synthetic(Path(tmp.name), engine)
    lm = engine.run(lambda ctx: ensure_loaded(ctx.state, path))
    prompt = engine.run(lambda ctx: render(lm.tokenizer, MESSAGES, "none"))
    lines = [f"# Chat decode speed ({time.strftime('%Y-%m-%d')})", "",
             f"- command: `python docs/benchmarks/chat_speed.py {' '.join(argv or sys.argv[1:])}`".rstrip(),
             f"- model: `{path.name}` ({'synthetic llama ' + str(SYNTHETIC) + ', vocab 2048, fp32' if not args.model else 'local folder'})",
             f"- machine: {platform.machine()} {platform.system()}, mlx {mx.__version__} on {mx.default_device()}",
             f"- prompt {len(prompt)} tokens, {args.tokens} new tokens, greedy, {args.reps} interleaved repetitions "
             "(median; first run of each path discarded as warm-up)", ""]

    # warm-up both paths (compile, allocator)
    engine.run(lambda ctx: bare(ctx, path, prompt, 16))
    temper(engine, path, 16)

    bare_tps, temper_tps, ratios, cpu_ratios, cpu_b, cpu_t = [], [], [], [], [], []
    for i in range(args.reps):  # pairs, alternating which path goes first; ratio taken within each pair
        order = ["bare", "temper"] if i % 2 == 0 else ["temper", "bare"]
        pair = {}
        for which in order:
            if which == "bare":
                pair["bare"], bare_tokens = engine.run(lambda ctx: bare(ctx, path, prompt, args.tokens))
            else:
                stats, tokens, _ = temper(engine, path, args.tokens)
                pair["temper"] = stats.decode_tps
        bare_tps.append(pair["bare"])
        temper_tps.append(pair["temper"])
        ratios.append(pair["temper"] / pair["bare"])
        cpu_b.append(CPU_MS["bare"])
        cpu_t.append(CPU_MS["temper"])
        cpu_ratios.append(CPU_MS["bare"] / CPU_MS["temper"])
    same = bare_tokens[: len(tokens)] == tokens[: len(bare_tokens)]
    b, t, r = statistics.median(bare_tps), statistics.median(temper_tps), statistics.median(ratios)
    lines += ["## temper chat vs bare mlx_lm.stream_generate", "",
              "| path | decode tok/s (median) | min | max | tokens |", "|---|---:|---:|---:|---:|",
              f"| mlx_lm.stream_generate | {b:.1f} | {min(bare_tps):.1f} | {max(bare_tps):.1f} | {len(bare_tokens)} |",
              f"| temper chat_job | {t:.1f} | {min(temper_tps):.1f} | {max(temper_tps):.1f} | {len(tokens)} |",
              "", f"**ratio temper / bare: {r:.3f}** (median of {len(ratios)} paired runs; pairs "
              f"{', '.join(f'{x:.3f}' for x in ratios)}; goal >= 0.98); best run / best run: "
              f"{max(temper_tps) / max(bare_tps):.3f}; same greedy tokens: {same}", "",
              "Process CPU time per decoded token (all threads; far less sensitive to other processes than "
              "wall time, since time spent descheduled is not counted):", "",
              "| path | CPU ms / token (median) | min | max |", "|---|---:|---:|---:|",
              f"| mlx_lm.stream_generate | {statistics.median(cpu_b):.2f} | {min(cpu_b):.2f} | {max(cpu_b):.2f} |",
              f"| temper chat_job | {statistics.median(cpu_t):.2f} | {min(cpu_t):.2f} | {max(cpu_t):.2f} |", "",
              f"**CPU-cost ratio bare / temper: {statistics.median(cpu_ratios):.3f}** (median of paired runs: "
              f"{', '.join(f'{x:.3f}' for x in cpu_ratios)}); 1.0 = temper costs what bare mlx-lm costs per "
              "token, the decode speed ratio on a machine with the cores to itself.", ""]

    lines += ["## Self-drafter (the model quantized to affine 3-bit g64)", "",
              "| drafter | draft tokens | decode tok/s | speedup vs no drafter (paired) | acceptance | same greedy output |",
              "|---|---:|---:|---:|---:|---|"]
    temper(engine, path, 8, drafter="self")  # build the self-drafter outside the timing
    base_tokens = temper(engine, path, args.tokens)[1]
    spec_reps = max(2, args.reps // 2)
    for k in args.draft_tokens:
        speedups, tps_all, accs, same_all = [], [], [], True
        for _ in range(spec_reps):
            base = temper(engine, path, args.tokens)[0].decode_tps
            stats, toks, _ = temper(engine, path, args.tokens, drafter="self", draft_tokens=k)
            speedups.append(stats.decode_tps / base)
            tps_all.append(stats.decode_tps)
            accs.append(stats.acceptance or 0.0)
            same_all &= toks == base_tokens
        lines.append(f"| self | {k} | {statistics.median(tps_all):.1f} | {statistics.median(speedups):.2f}x | "
                     f"{statistics.median(accs) * 100:.0f}% | {same_all} |")
    load = _load()
    lines += ["", f"Load average while running: {load}. On a shared machine the spread between runs "
              "(min/max above) is the noise floor: a ratio inside it is not a measured difference.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

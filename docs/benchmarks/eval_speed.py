"""Eval generation speed: the old batched path against the current one, in the same run.

    python docs/benchmarks/eval_speed.py MODEL [--limit 32] [--tasks gsm8k,humaneval] [--md FILE]
    python docs/benchmarks/eval_speed.py MODEL --count-only [--limit N]   # prefill work only, no model run

"before" is what temper's evals did until this change: batch 32, prompts in file order, stop strings only,
HumanEval capped at 384 tokens. "after" is the current default: batch 64, prompts shortest first, GSM8K
also stopping once its "#### <number>" line is complete, HumanEval capped at 300. Both use the shared
few-shot prefix cache and compute in fp32 on a CPU with a fast BLAS (as `temper eval` does). Prints
seconds, generated tokens, tok/s and the ratio, plus how many scored answers the two runs share (the
answer stop cannot change a GSM8K score; batch size and order can only through float rounding).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> int:
    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--tasks", default="gsm8k,humaneval")
    ap.add_argument("--md", type=Path)
    ap.add_argument("--count-only", action="store_true",
                    help="tokens prefilled (with the padding of prefill groups of 8) in file order vs shortest first")
    args = ap.parse_args()
    if args.count_only:
        return count_only(args)

    from temper.core.engine.loader import load
    from temper.core.evals import batched, prompts, tasks
    from temper.core.evals.extract import cut_at_stops, gsm8k_answer
    from temper.core.evals.run import MAX_TOKENS, compute_mode

    loaded = load(args.model, compute=compute_mode())
    model, tok = loaded.model, loaded.tokenizer
    configs = {
        "before": {"batch": 32, "by_length": False, "done": False, "cap": {"gsm8k": 256, "humaneval": 384}},
        "after": {"batch": 64, "by_length": True, "done": True, "cap": MAX_TOKENS},
    }
    lines = [f"# Eval generation speed: {args.model.name}, --limit {args.limit}", "",
             f"Command: `python docs/benchmarks/eval_speed.py {args.model} --limit {args.limit} "
             f"--tasks {args.tasks}`", "", f"Load average at start: {os.getloadavg()}; compute: "
             f"{loaded.extra['compute'].mode}", "",
             "| task | config | seconds | tokens | tok/s | time ratio | same answers |", "|---|---|---:|---:|---:|---:|---:|"]
    for task in args.tasks.split(","):
        items = tasks.problems(task, args.limit)
        if task == "gsm8k":
            ps, stops = [prompts.gsm8k(p) for p in items], prompts.GSM8K_STOPS
        else:
            ps, stops = [prompts.humaneval(p) for p in items], prompts.HUMANEVAL_STOPS
        seen: dict[str, tuple[float, list[str]]] = {}
        for name, c in configs.items():
            t = time.perf_counter()
            outs = batched.generate(model, tok, ps, max_tokens=c["cap"][task], stops=stops, batch=c["batch"],
                                    by_length=c["by_length"],
                                    done=prompts.GSM8K_DONE if (c["done"] and task == "gsm8k") else ())
            dt = time.perf_counter() - t
            n = sum(len(tok.encode(o, add_special_tokens=False)) for o in outs)
            cut = [cut_at_stops(o, stops) for o in outs]
            answers = [gsm8k_answer(x) for x in cut] if task == "gsm8k" else cut
            seen[name] = (dt, answers)
            speed = f"{seen['before'][0] / dt:.2f}x" if name == "after" else ""
            same = (f"{sum(a == b for a, b in zip(answers, seen['before'][1], strict=True))}/{len(items)}"
                    if name == "after" else "")
            row = f"| {task} | {name} | {dt:.1f} | {n} | {n / dt:.1f} | {speed} | {same} |"
            print(row, flush=True)
            lines.append(row)
    lines += ["", f"Load average at end: {os.getloadavg()}"]
    print(lines[-1])
    if args.md:
        args.md.write_text("\n".join(lines) + "\n")
    return 0


def count_only(args: argparse.Namespace) -> int:
    """Prefill work, load-independent: BatchGenerator prefills up to 8 new prompts at a time, right-padded
    to the longest of the group, so the order prompts enter in sets how many pad tokens are computed."""
    from temper.core.engine.loader import open_tokenizer
    from temper.core.evals import prompts, tasks

    tok = open_tokenizer(args.model)

    def padded(lens: list[int], group: int = 8) -> int:
        return sum(max(lens[i:i + group]) * len(lens[i:i + group]) for i in range(0, len(lens), group))

    for task in args.tasks.split(","):
        items = tasks.problems(task, args.limit)
        ps = [prompts.gsm8k(p) for p in items] if task == "gsm8k" else [prompts.humaneval(p) for p in items]
        lens = [len(tok.encode(p.suffix, add_special_tokens=not p.prefix)) for p in ps]
        print(f"{task} n={len(items)}: prompt tokens {sum(lens)}; prefilled incl. padding: file order "
              f"{padded(lens)}, shortest first {padded(sorted(lens))} ({padded(sorted(lens)) / padded(lens):.2f}x)")
    return 0


if __name__ == "__main__":
    from temper.core.exit import exit_now

    exit_now(main())          # not sys.exit: MLX can abort in native teardown (core/exit.py)

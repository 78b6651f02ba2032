"""Eval generation speed: the old batched path against the current one, in the same run.

    python docs/benchmarks/eval_speed.py MODEL [--limit 32] [--tasks gsm8k,humaneval] [--md FILE]
    python docs/benchmarks/eval_speed.py MODEL --count-only [--limit N]   # prefill work only, no model run

"before" is what temper's evals did until session 4: batch 64 for every task, a waiting prompt joining as
soon as one slot is free (one prefill and one cache merge per row), the few-shot prefix copied into every
row. "after" is the current default: the batch per task (run.BATCH: HumanEval all at once), prompts joining
batched.REFILL at a time, GSM8K's prefix kept once per batch and its repetition loops finished by
repetition (session 5: core/evals/prefix_attention.py, core/evals/loops.py). Both stop rows
at their stop strings, order prompts shortest first, use the shared few-shot prefix cache and compute in
fp32 on a CPU with a fast BLAS (as `temper eval` does). Prints wall and process CPU seconds, the load
average, generated tokens, decode steps and the ratio, plus how many completions the two runs share
(batch size and order can change one only through float rounding).
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
    from temper.core.evals.run import BATCH, MAX_TOKENS, compute_mode

    loaded = load(args.model, compute=compute_mode())
    model, tok = loaded.model, loaded.tokenizer
    from temper.core.evals.loops import LOOP

    configs = {
        "before": {"batch": dict.fromkeys(BATCH, 64), "refill": 1, "cascade": False, "loops": None},
        "after": {"batch": BATCH, "refill": batched.REFILL, "cascade": True, "loops": LOOP},
    }
    lines = [f"# Eval generation speed: {args.model.name}, --limit {args.limit}", "",
             f"Command: `python docs/benchmarks/eval_speed.py {args.model} --limit {args.limit} "
             f"--tasks {args.tasks}`", "", f"Load average at start: {os.getloadavg()}; compute: "
             f"{loaded.extra['compute'].mode}", "",
             "| task | config | wall s | CPU s | load | tokens | steps | CPU ratio | same completions |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for task in args.tasks.split(","):
        items = tasks.problems(task, args.limit)
        if task == "gsm8k":
            ps, stops = [prompts.gsm8k(p) for p in items], prompts.GSM8K_STOPS
        else:
            ps, stops = [prompts.humaneval(p) for p in items], prompts.HUMANEVAL_STOPS
        seen: dict[str, tuple[float, list[str]]] = {}
        for name, c in configs.items():
            steps = [0]
            load0, t, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
            outs = batched.generate(model, tok, ps, max_tokens=MAX_TOKENS[task], stops=stops,
                                    batch=c["batch"][task], refill=c["refill"], cascade=c["cascade"],
                                    loops=c["loops"] if task == "gsm8k" else None,
                                    done=prompts.GSM8K_DONE if task == "gsm8k" else (),
                                    check=lambda s=steps: s.__setitem__(0, s[0] + 1))
            dt, dc = time.perf_counter() - t, time.process_time() - cpu
            n = sum(len(tok.encode(o, add_special_tokens=False)) for o in outs)
            seen[name] = (dc, outs)
            ratio = f"{seen['before'][0] / dc:.2f}x" if name == "after" else ""
            same = (f"{sum(a == b for a, b in zip(outs, seen['before'][1], strict=True))}/{len(items)}"
                    if name == "after" else "")
            row = (f"| {task} | {name} | {dt:.1f} | {dc:.1f} | {load0:.1f}–{os.getloadavg()[0]:.1f} | {n} | "
                   f"{steps[0]} | {ratio} | {same} |")
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
    from temper.core.exit import exit_with

    exit_with(main)          # not sys.exit: MLX can abort in native teardown (core/exit.py)

"""Self-drafter acceptance on a real model: how often the 3-bit copy's guesses survive verification.

Timing-free (acceptance and exactness do not depend on machine load). For each prompt: greedy answer
without a drafter, then with the self-drafter at k draft tokens; prints accepted/drafted and whether the
two answers are token-for-token equal.

    python docs/benchmarks/self_drafter_acceptance.py MODEL_FOLDER [--tokens 48] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from temper.core.engine import Engine
from temper.core.engine import generate as G
from temper.core.engine.sampling import SamplingSettings

PROMPTS = ["What is the capital of France? Answer in one sentence.",
           "Write a Python function that returns the square of a number.",
           "List three colors of the rainbow."]


def run(engine: Engine, path: str, prompt: str, tokens: int, drafter: str | None = None, k: int = 2):
    engine.run(lambda ctx: ctx.state.pop("chat_session", None))
    request = G.ChatRequest(path, [{"role": "user", "content": prompt}],
                            SamplingSettings(temperature=0.0, max_tokens=tokens), effort="none",
                            drafter=drafter, num_draft_tokens=k)
    return engine.run(G.chat_job(request))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--draft-tokens", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    engine = Engine(name="acceptance")
    lines = [f"# Self-drafter acceptance on `{Path(args.model).name}`", "",
             f"- command: `python docs/benchmarks/self_drafter_acceptance.py {' '.join(argv or sys.argv[1:])}`",
             f"- greedy, {args.tokens} new tokens per prompt, drafter: the model dequantized and re-quantized "
             "to affine 3-bit g64", "",
             "| draft tokens | prompt | answer starts | accepted / drafted | equal to no-drafter answer |",
             "|---:|---|---|---:|---|"]
    for k in args.draft_tokens:
        acc = drafted = 0
        for prompt in PROMPTS:
            plain = run(engine, args.model, prompt, args.tokens)
            spec = run(engine, args.model, prompt, args.tokens, "self", k)
            acc, drafted = acc + spec.stats.accepted, drafted + spec.stats.drafted
            start = plain.text[:40].replace("\n", " ").replace("|", "\\|")
            lines.append(f"| {k} | {prompt} | `{start}` | {spec.stats.accepted} / {spec.stats.drafted} | "
                         f"{spec.tokens == plain.tokens} |")
        lines.append(f"| {k} | **all** | | **{acc} / {drafted} = {acc / max(drafted, 1):.1%}** | |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

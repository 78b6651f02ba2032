"""temper's own per-token cost in the chat loop, with the model taken out.

mlx-lm's `generate_step` is replaced by a stub that yields ready token ids, so what is timed is only
what temper adds per token: thinking splitter, detokenizer, one TokenEvent through the engine (consumed
by another thread, as the UI does), the cancel check and the live stats. Machine load barely matters:
this is microseconds of Python, compared with the ~1 ms a host-bound GPU token takes.

    python docs/benchmarks/chat_overhead.py MODEL_FOLDER [--tokens 3000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from temper.core.engine import Engine
from temper.core.engine import generate as G
from temper.core.engine.sampling import SamplingSettings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="any local model folder (only its tokenizer and template are used)")
    ap.add_argument("--tokens", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    mlx_generate = sys.modules.get("mlx_lm.generate") or __import__("mlx_lm.generate", fromlist=["x"])

    def stub(prompt, model, **kw):
        rng = random.Random(0)
        for _ in range(args.tokens):
            yield rng.randrange(10, 250), None

    mlx_generate.generate_step = stub
    engine = Engine(name="overhead")
    messages = [{"role": "user", "content": "hi"}]
    per_token = []
    for _ in range(args.reps + 1):
        engine.run(lambda ctx: ctx.state.pop("chat_session", None))
        request = G.ChatRequest(args.model, messages, SamplingSettings(temperature=0.0, max_tokens=args.tokens),
                                effort="none", context_limit=args.tokens * 4)
        job = engine.submit(G.chat_job(request))
        for _ in job.events():
            pass
        per_token.append(1e6 / job.result().stats.decode_tps)
    per_token = per_token[1:]  # the first run loads the model
    print(f"temper chat loop overhead: {statistics.median(per_token):.1f} us/token "
          f"(median of {args.reps} runs of {args.tokens} stub tokens; min {min(per_token):.1f}, max {max(per_token):.1f})")
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quantized KV cache: does greedy output survive it, and how much memory does it save?

1. Agreement (timing-free): for each prompt, 256 greedy tokens with the float cache, then with the 8-bit
   and 4-bit caches (temper's chat path: core/engine/kv_cache.build_cache); the share of positions where
   the token is the same, and the first position that differs.
2. Memory at a context length: the model's own cache layout (make_prompt_cache, then temper's quantized
   caches) filled with `--context` positions of random keys/values in the model's dtype, in chunks of 512
   as a prefill would; bytes held by the cache, float vs 8-bit vs 4-bit. The bytes depend on shapes only,
   so the positions are written directly, without running the model.
3. Optionally (--decode N) decode speed after a prompt of N tokens, float vs 8-bit vs 4-bit.
4. Optionally (--floor) the noise floor of the agreement: the float cache with every key/value multiplied
   by (1 + e), e ~ N(0, 2^-9) (one bf16 rounding step, several times smaller than 8-bit quantization's
   error): where greedy output flips under that, it flips under any lossy cache.

    python docs/benchmarks/kv_cache.py MODEL_FOLDER [--tokens 256] [--context 8192] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

PROMPTS = ["Write a Python function that checks whether a number is prime, and explain it.",
           "Explain in a paragraph why the sky is blue.",
           "List five uses of a hash map, with one sentence each."]


def noisy_cache(model):
    import mlx.core as mx
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    class NoisyKVCache(KVCache):
        def update_and_fetch(self, keys, values):
            def f(x):
                return (x.astype(mx.float32) * (1 + 2**-9 * mx.random.normal(x.shape))).astype(x.dtype)
            return super().update_and_fetch(f(keys), f(values))

    return [NoisyKVCache() if type(c) is KVCache else c for c in make_prompt_cache(model)]


def greedy(model, tok, prompt: str, n: int, plan):
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from temper.core.engine.kv_cache import build_cache

    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
    cache = noisy_cache(model) if plan == "noise" else build_cache(model, plan)
    steps = generate_step(mx.array(ids), model, max_tokens=n, prompt_cache=cache,
                          sampler=lambda lp: mx.argmax(lp, axis=-1))
    return [int(t) for t, _ in steps]


def fill(model, plan, context: int, dtype) -> int:
    """Write `context` random positions into the model's cache; return the bytes the cache holds."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    from temper.core.engine.kv_cache import SharedKV, build_cache

    shapes = []  # (kv heads, head size) per cache, learned from a two-token step
    probe = make_prompt_cache(model)
    model(mx.array([[1, 2]]), cache=probe)
    for c in probe:
        shapes.append((c.keys.shape[1], c.keys.shape[3]) if getattr(c, "keys", None) is not None else None)
    cache = build_cache(model, plan)
    for c, shape in zip(cache, shapes + [None] * (len(cache) - len(shapes)), strict=True):
        if shape is None or isinstance(c, SharedKV):
            continue
        done = 0
        while done < context:
            n = min(512, context - done)
            k = mx.random.normal((1, shape[0], n, shape[1])).astype(dtype)
            c.update_and_fetch(k, k)
            mx.eval(c.keys, c.values)
            done += n
    return sum(c.nbytes for c in cache)


def decode_speed(model, plan, prompt_len: int, n: int = 64) -> float:
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from temper.core.engine.kv_cache import build_cache

    prompt = mx.random.randint(10, 1000, (prompt_len,))
    steps = generate_step(prompt, model, max_tokens=n, prompt_cache=build_cache(model, plan),
                          sampler=lambda lp: mx.argmax(lp, axis=-1))
    t0 = None
    for i, _ in enumerate(steps):
        if i == 0:
            t0 = time.perf_counter()
    return (n - 1) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--decode", type=int, default=0, help="also time decoding after a prompt of N tokens")
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--floor", action="store_true", help="add the bf16-rounding noise floor (see above)")
    ap.add_argument("--only-agreement", action="store_true", help="skip the memory part")
    ap.add_argument("--floor-only", action="store_true", help="agreement of the noise floor alone")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from temper.core.engine.kv_cache import KVPlan
    from temper.core.engine.kv_config import kv_group_size, n_caches

    model, tok = load(args.model)
    n, gs = n_caches(model), kv_group_size(model)
    plans = {"float": None, "8-bit": KVPlan.uniform(n, 8, gs), "4-bit": KVPlan.uniform(n, 4, gs)}
    dtype = next(v.dtype for _, v in tree_flatten(model.parameters())
                 if mx.issubdtype(v.dtype, mx.floating))
    lines = [f"# Quantized KV cache on `{Path(args.model).name}`", "",
             f"- command: `python docs/benchmarks/kv_cache.py {' '.join(argv or sys.argv[1:])}`",
             f"- mlx {mx.__version__} ({mx.default_device()}), model dtype {dtype}, KV group size {gs}, "
             f"{n} caches; load average {os.getloadavg()[0]:.1f}", "",
             f"## Greedy agreement with the float cache ({args.tokens} tokens per prompt)", "",
             "| prompt | cache | same token | first difference |", "|---|---|---:|---:|"]
    variants = ("8-bit", "4-bit") + (("noise 2^-9",) if args.floor else ())
    if args.floor_only:
        variants = ("noise 2^-9",)
    totals = {name: [0, 0] for name in variants}
    for prompt in PROMPTS[: args.prompts]:
        ref = greedy(model, tok, prompt, args.tokens, None)
        for name in variants:
            mx.random.seed(0)
            out = greedy(model, tok, prompt, args.tokens, plans.get(name, "noise"))
            same = sum(a == b for a, b in zip(out, ref, strict=False))
            first = next((i for i, (a, b) in enumerate(zip(out, ref, strict=False)) if a != b), None)
            totals[name][0] += same
            totals[name][1] += len(ref)
            lines.append(f"| {prompt[:48]} | {name} | {same}/{len(ref)} = {same / len(ref):.1%} | "
                         f"{'none' if first is None else first} |")
            print(lines[-1], flush=True)
    for name, (same, total) in totals.items():
        lines.append(f"| **all** | {name} | **{same}/{total} = {same / total:.1%}** | |")
    if not args.only_agreement:
        lines += ["", f"## Cache memory at {args.context} tokens", "",
                  "| cache | bytes | vs float |", "|---|---:|---:|"]
    base = None
    for name, plan in ({} if args.only_agreement else plans).items():
        nbytes = fill(model, plan, args.context, dtype)
        base = base or nbytes
        lines.append(f"| {name} ({dtype if plan is None else name}) | {nbytes / 2**20:.1f} MiB | "
                     f"{nbytes / base:.3f}x |")
        print(lines[-1], flush=True)
    if args.decode:
        lines += ["", f"## Decode speed after a {args.decode}-token prompt (64 tokens)", "",
                  "| cache | tok/s | vs float |", "|---|---:|---:|"]
        decode_speed(model, None, 64, 8)  # warm-up
        base = None
        for name, plan in plans.items():
            tps = decode_speed(model, plan, args.decode)
            base = base or tps
            lines.append(f"| {name} | {tps:.1f} | {tps / base:.2f}x |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

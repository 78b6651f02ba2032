"""KV-cache agreement with the float cache: free-running greedy output and teacher-forced top-1.

For each prompt the float cache decodes `--tokens` greedy tokens (the reference). Then, for each cache variant:
- free run: the variant decodes greedily on its own; share of positions with the same token as the
  reference, and the first position that differs. One flip changes everything after it, so this measure
  is cascaded: a single near-tie early on costs most of the 256 tokens.
- teacher-forced: the variant is fed the reference tokens (both caches see the same text, in one causal
  pass after the prompt); at each position its top-1 is compared with the float cache's on that pass, and KL(float || variant) of the next-token distributions is
  averaged. Not cascaded: it counts the positions where the variant itself picks another token.
  For the positions where the top-1 differs, the reference's own margin (log-prob of its top-1 minus its
  top-2) is reported: small margins are near-ties, which any tiny perturbation flips.

Variants (`--variants`, comma-separated):
  8-bit / 4-bit        temper's cache (core/engine/kv_cache.build_cache; on full-attention layers this is
                       mlx-lm's QuantizedKVCache), group size 64 (or the model's largest that fits)
  8-bit g32            the same at group size 32
  8-bit fp32 fake      keys/values quantized at 8 bits g64 from float32 (float32 scales and biases),
                       dequantized and stored in the float cache: the float attention kernel, no packed path
  mlx-lm 8-bit         mlx-lm's own route (generate_step's kv_bits=8, quantized_kv_start=0): the prompt is
                       attended in float, then the cache is converted with KVCache.to_quantized (full
                       attention only: mlx-lm cannot quantize sliding-window caches)
  noise                the float cache with every key/value multiplied by (1 + e), e ~ N(0, 2^-9): one bf16
                       rounding step, smaller than 8-bit quantization's error (the noise floor)

`--fp32` casts the model to float32 first (weights, activations, cache and logits), separating the ties of
bf16 arithmetic from the error of the cache.

    python docs/benchmarks/kv_agreement.py MODEL [--tokens 256] [--fp32] [--variants ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

PROMPTS = ["Write a Python function that checks whether a number is prime, and explain it.",
           "Explain in a paragraph why the sky is blue.",
           "List five uses of a hash map, with one sentence each."]
VARIANTS = ("8-bit", "8-bit g32", "8-bit fp32 fake", "mlx-lm 8-bit", "noise", "4-bit")


def _wrapped(model, fn):
    """The model's float cache with `fn` applied to every key/value written to full or sliding layers."""
    from mlx_lm.models.cache import KVCache, RotatingKVCache, make_prompt_cache

    class FullWrap(KVCache):
        def update_and_fetch(self, keys, values):
            return super().update_and_fetch(fn(keys), fn(values))

    class RotWrap(RotatingKVCache):
        def update_and_fetch(self, keys, values):
            return super().update_and_fetch(fn(keys), fn(values))

    out = []
    for c in make_prompt_cache(model):
        if type(c) is KVCache:
            out.append(FullWrap())
        elif type(c) is RotatingKVCache:
            out.append(RotWrap(max_size=c.max_size, keep=c.keep))
        else:
            out.append(c)
    return out


def make_cache(model, variant: str, gs: int):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    from temper.core.engine.kv_cache import KVPlan, build_cache
    from temper.core.engine.kv_config import n_caches

    n = n_caches(model)
    if variant in ("float", "mlx-lm 8-bit"):
        return make_prompt_cache(model)
    if variant in ("8-bit", "4-bit"):
        return build_cache(model, KVPlan.uniform(n, int(variant[0]), gs))
    if variant == "8-bit g32":
        return build_cache(model, KVPlan.uniform(n, 8, 32))
    if variant == "8-bit fp32 fake":
        def fake(x):
            q = mx.quantize(x.astype(mx.float32), group_size=gs, bits=8)
            return mx.dequantize(*q, group_size=gs, bits=8).astype(x.dtype)
        return _wrapped(model, fake)
    if variant == "noise":
        return _wrapped(model, lambda x: (x.astype(mx.float32) * (1 + 2**-9 * mx.random.normal(x.shape)))
                        .astype(x.dtype))
    raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def _prefill(model, ids: list[int], variant: str, gs: int):
    """The variant's cache holding all but the last prompt token (as generate_step does)."""
    import mlx.core as mx
    from mlx_lm.generate import maybe_quantize_kv_cache

    mx.random.seed(0)
    cache = make_cache(model, variant, gs)
    if len(ids) > 1:
        model(mx.array(ids[:-1])[None], cache=cache)
        mx.eval([c.state for c in cache])
    if variant == "mlx-lm 8-bit":
        maybe_quantize_kv_cache(cache, 0, gs, 8)
    return cache


def free_run(model, ids: list[int], n: int, variant: str, gs: int) -> list[int]:
    """Greedy tokens, one step at a time."""
    import mlx.core as mx

    cache = _prefill(model, ids, variant, gs)
    tokens, last = [], ids[-1]
    for _ in range(n):
        last = int(mx.argmax(model(mx.array([[last]]), cache=cache)[0, -1]).item())
        tokens.append(last)
    return tokens


def forced(model, ids: list[int], ref: list[int], variant: str, gs: int):
    """(tokens fed, fp32 logits), both (1, len(ref), ...), at each of len(ref) positions when the cache is fed
    the reference tokens: one causal pass (the same arithmetic as decoding them one at a time: position i
    sees positions <= i)."""
    import mlx.core as mx

    cache = _prefill(model, ids, variant, gs)
    x = mx.array([ids[-1], *ref[:-1]])[None]
    logits = model(x, cache=cache).astype(mx.float32)
    mx.eval(logits)
    return x, logits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS))
    ap.add_argument("--first", type=int, default=1, help="start at this prompt (1-based)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--free", help="variants that also run free (default: all; '' for none)")
    ap.add_argument("--fp32", action="store_true", help="cast the model to float32 first")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    from temper.core.accel.preload import ensure_fast_blas

    ensure_fast_blas()  # as the temper command does (before MLX loads): OpenBLAS for fp32 on Linux CPUs
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from temper.core.engine.kv_config import kv_group_size, n_caches
    from temper.core.quant.reference import Reference, log_softmax

    t_start = time.perf_counter()
    model, tok = load(args.model)
    if args.fp32:
        model.set_dtype(mx.float32)
    dtype = next(v.dtype for _, v in tree_flatten(model.parameters()) if mx.issubdtype(v.dtype, mx.floating))
    gs = kv_group_size(model)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    from mlx_lm.models.cache import RotatingKVCache, make_prompt_cache

    refused = ""
    if "mlx-lm 8-bit" in variants and any(isinstance(c, RotatingKVCache) for c in make_prompt_cache(model)):
        variants.remove("mlx-lm 8-bit")  # to_quantized raises NotImplementedError on a RotatingKVCache
        refused = " mlx-lm 8-bit: not run, mlx-lm cannot quantize this model's sliding-window caches."
    free_variants = variants if args.free is None else [v.strip() for v in args.free.split(",") if v.strip()]
    head = [f"# KV-cache agreement on `{Path(args.model).name}` ({'float32 copy' if args.fp32 else dtype})", "",
            f"- command: `python docs/benchmarks/kv_agreement.py {' '.join(argv or sys.argv[1:])}`",
            f"- mlx {mx.__version__} ({mx.default_device()}), model dtype {dtype}, KV group size {gs}, "
            f"{n_caches(model)} caches, {args.tokens} tokens x {args.prompts} prompts; "
            f"load average at start {os.getloadavg()[0]:.1f}.{refused}", "",
            "| prompt | cache | free run: same token | first difference | teacher-forced top-1 | "
            "mean KL | ref margin at flips (median / max) |", "|---|---|---:|---:|---:|---:|---:|"]
    rows: list[str] = []
    totals = {v: [0, 0, 0, 0.0, [], 0] for v in variants}  # free same, forced same, n, KL, margins, n free
    ref_margins: list[float] = []
    for prompt in PROMPTS[args.first - 1: args.first - 1 + args.prompts]:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        ref = free_run(model, ids, args.tokens, "float", gs)
        x, ref_logits = forced(model, ids, ref, "float", gs)
        reference = Reference.from_logits([x], [ref_logits])   # the sensitivity pass's KL reference
        ref_lp = log_softmax(ref_logits)[0]
        ref_top = mx.argmax(ref_lp, axis=-1)
        top2 = mx.topk(ref_lp, 2, axis=-1)
        margins = (mx.max(top2, axis=-1) - mx.min(top2, axis=-1)).tolist()
        ref_margins += margins
        n = len(ref)
        for v in variants:
            free = free_run(model, ids, args.tokens, v, gs) if v in free_variants else None
            lp = log_softmax(forced(model, ids, ref, v, gs)[1])
            flips = mx.array(mx.argmax(lp[0], axis=-1) != ref_top).tolist()
            kl = reference.kl_sum(reference.batches[0], lp)
            fm = [m for m, f in zip(margins, flips, strict=True) if f]
            t = totals[v]
            if free is not None:
                same = sum(a == b for a, b in zip(free, ref, strict=True))
                first = next((i for i, (a, b) in enumerate(zip(free, ref, strict=True)) if a != b), None)
                t[0] += same
                t[5] += n
                free_cells = f"{same}/{n} = {same / n:.1%} | {'none' if first is None else first}"
            else:
                free_cells = "- | -"
            t[1] += n - len(fm)
            t[2] += n
            t[3] += kl
            t[4] += fm
            rows.append(f"| {prompt[:40]} | {v} | {free_cells} | {n - len(fm)}/{n} = {1 - len(fm) / n:.1%} | "
                        f"{kl / n:.2e} | {_margins(fm)} |")
            print(rows[-1], f"({time.perf_counter() - t_start:.0f} s)", flush=True)
    for v, (same, fsame, n, kl, fm, nfree) in totals.items():
        free_cell = f"**{same}/{nfree} = {same / nfree:.1%}**" if nfree else "-"
        rows.append(f"| **all** | {v} | {free_cell} | | **{fsame}/{n} = {fsame / n:.1%}** | "
                    f"{kl / n:.2e} | {_margins(fm)} |")
    small = sum(m < 0.01 for m in ref_margins)
    tail = ["", f"Reference margins (top-1 minus top-2 log-prob of the float cache, all {len(ref_margins)} positions): "
                f"median {statistics.median(ref_margins):.3f}, {small} positions below 0.01 "
                f"({sum(m == 0 for m in ref_margins)} exact ties). Wall time {time.perf_counter() - t_start:.0f} s, "
                f"load average at end {os.getloadavg()[0]:.1f}."]
    text = "\n".join(head + rows + tail) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def _margins(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} / {max(values):.3f}"


if __name__ == "__main__":
    sys.exit(main())
